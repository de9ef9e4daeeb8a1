"""Probe: the decode FP8 GEMV (accelbench/kernels/fp8_gemv.py) on one model's projection shapes:
each kernel's error against the fp64 product of the same FP8 values, and its GB/s of weights beside
a bf16 matmul and cuBLAS FP8 (torch._scaled_mm) with the rows padded to 16, both ways round
(activations x W^T, and W x activations^T: the weight as the wide operand). The GEMV is timed
autotuned and in each of its configurations alone, so one that fails to compile shows.
Every call streams one of several copies of the weight (together over 2x the L2), as a step
streams its layers.
Usage: python3 scripts/probe_fp8_gemv.py [MODEL] [ROWS ...]"""
import sys

import torch
import torch.nn.functional as F
from triton.testing import do_bench_cudagraph

from accelbench.e2e.decode import CONFIGS
from accelbench.fp8_engines import weight_scheme
from accelbench.kernels import fp8_gemv as kernels
from accelbench.quant import MODES, quantize

config = CONFIGS[sys.argv[1] if len(sys.argv) > 1 else "llama3.1-8b"]
row_counts = [int(r) for r in sys.argv[2:]] or [1, 16]
kv = config.kv_heads * config.head_dim
shapes = {"qkv": (config.hidden + 2 * kv, config.hidden), "o": (config.hidden, config.hidden),
          "gate_up": (2 * config.intermediate, config.hidden), "down": (config.hidden, config.intermediate)}
L2_BYTES = 50 * 2**20


def per_call(fn, copies: int) -> float:
    """Seconds per call, as calls captured in one CUDA graph (as the decode step runs them)."""
    return do_bench_cudagraph(lambda: [fn(i) for i in range(copies)], rep=20, return_mode="median") / 1e3 / copies


def rel_err(y: torch.Tensor, ref: torch.Tensor) -> float:
    return ((y.double() - ref).norm() / ref.norm()).item()


torch.manual_seed(0)
for name, (n, k) in shapes.items():
    copies = max(2, -(-2 * L2_BYTES // (n * k)))
    w = [torch.randn(n, k, device="cuda", dtype=torch.bfloat16) * 0.02 for _ in range(copies)]
    for mode_name in ("row", "tensor"):
        mode = MODES[mode_name]
        qw = [quantize(x, weight_scheme(mode)) for x in w]
        per_tensor = mode_name == "tensor"
        for rows in row_counts:
            x = torch.randn(rows, k, device="cuda", dtype=torch.bfloat16)
            qa = quantize(x, mode.a)
            ref = qa.dequantize(torch.float64) @ qw[0].dequantize(torch.float64).t()
            pad = F.pad(qa.q.view(torch.uint8), (0, 0, 0, 16 - rows)).view(qa.q.dtype)
            sa = qa.scale.reshape(()) if per_tensor else F.pad(qa.scale, (0, 0, 0, 16 - rows), value=1.0)
            found = {}
            candidates = {
                "bf16 matmul": (lambda i: F.linear(x, w[i]), None),
                "cuBLAS x.W^T": (lambda i: torch._scaled_mm(
                    pad, qw[i].q.t(), scale_a=sa, scale_b=qw[i].scale.reshape(()) if per_tensor else qw[i].scale.reshape(1, -1),
                    out_dtype=torch.bfloat16)[:rows], ref),
                "cuBLAS W.x^T": (lambda i: torch._scaled_mm(
                    qw[i].q, pad.t(), scale_a=qw[i].scale.reshape(()) if per_tensor else qw[i].scale.reshape(-1, 1),
                    scale_b=sa if per_tensor else sa.reshape(1, -1), out_dtype=torch.bfloat16)[:, :rows].t(), ref),
                "TC GEMV (autotuned)": (lambda i: kernels.fp8_gemv_tc(qa.q, qw[i].q, qa.scale, qw[i].scale,
                                                                       torch.bfloat16), ref),
            }
            for config_ in kernels._CONFIGS:
                def call(i, c=config_):
                    out = torch.empty(rows, n, dtype=torch.bfloat16, device="cuda")
                    kernels._gemv_tc.fn[(-(-n // c.kwargs["BLOCK_N"]),)](
                        qa.q, qw[i].q, qa.scale.reshape(-1).float(), qw[i].scale.reshape(-1).float(), out, rows, n, k,
                        int(not per_tensor), int(not per_tensor), ROWS=kernels.MAX_ROWS,
                        num_warps=c.num_warps, num_stages=c.num_stages, **c.kwargs)
                    return out
                candidates[f"TC {config_.kwargs['BLOCK_N']}x{config_.kwargs['BLOCK_K']} w{config_.num_warps} s{config_.num_stages}"] = (call, ref)
            for label, (fn, reference) in candidates.items():
                try:
                    err = rel_err(fn(0), reference) if reference is not None else float("nan")
                    t = per_call(fn, copies)
                    element = 2 if reference is None else 1
                    found[label] = f"{n * k * element / t / 1e9:5.0f} GB/s {t * 1e6:6.1f} us err {err:.1e}"
                except Exception as exc:  # a configuration that does not compile: say so, go on
                    found[label] = f"failed: {type(exc).__name__}: {str(exc).splitlines()[0][:100] if str(exc) else ''}"
            for label, text in found.items():
                print(f"{name:8s} {n:6d}x{k:<6d} {mode_name:6s} rows {rows:2d}  {label:24s} {text}", flush=True)

"""Probe: the decode FP8 GEMV (accelbench/kernels/fp8_gemv.py) on one model's projection shapes, at
1, 2 and 4 rows: its error against the fp64 product of the same FP8 values, and its GB/s beside a
bf16 matmul and cuBLAS FP8 (torch._scaled_mm, rows padded to 16) on the same shape.
Usage: python3 scripts/probe_fp8_gemv.py [MODEL]"""
import sys

import torch
import torch.nn.functional as F
from triton.testing import do_bench_cudagraph

from accelbench.e2e.decode import CONFIGS
from accelbench.kernels.fp8_gemv import fp8_gemv
from accelbench.quant import MODES, quantize
from accelbench.fp8_engines import weight_scheme

config = CONFIGS[sys.argv[1] if len(sys.argv) > 1 else "llama3.1-8b"]
kv = config.kv_heads * config.head_dim
shapes = {"qkv": (config.hidden + 2 * kv, config.hidden), "o": (config.hidden, config.hidden),
          "gate_up": (2 * config.intermediate, config.hidden), "down": (config.hidden, config.intermediate)}


def timed(fn) -> float:
    """Seconds per call, as calls captured in one CUDA graph (as the decode step runs them, and as
    Fp8Linears.choose_kernels times them): no host overhead in the figure."""
    return do_bench_cudagraph(fn, rep=20, return_mode="median") / 1e3


torch.manual_seed(0)
for name, (n, k) in shapes.items():
    w = torch.randn(n, k, device="cuda", dtype=torch.bfloat16) * 0.02
    for mode_name in ("row", "tensor"):
        mode = MODES[mode_name]
        qw = quantize(w, weight_scheme(mode))
        for rows in (1, 2, 4):
            x = torch.randn(rows, k, device="cuda", dtype=torch.bfloat16)
            qa = quantize(x, mode.a)
            y = fp8_gemv(qa.q, qw.q, qa.scale, qw.scale, torch.bfloat16)
            ref = (qa.dequantize(torch.float64) @ qw.dequantize(torch.float64).t())
            err = ((y.double() - ref).norm() / ref.norm()).item()
            y_wo = fp8_gemv(x, qw.q, None, qw.scale, torch.bfloat16)
            ref_wo = x.double() @ qw.dequantize(torch.float64).t()
            err_wo = ((y_wo.double() - ref_wo).norm() / ref_wo.norm()).item()
            t_w8a8 = timed(lambda: fp8_gemv(qa.q, qw.q, qa.scale, qw.scale, torch.bfloat16))
            t_w8 = timed(lambda: fp8_gemv(x, qw.q, None, qw.scale, torch.bfloat16))
            t_bf16 = timed(lambda: F.linear(x, w))
            padded = F.pad(qa.q.float(), (0, 0, 0, 16 - rows)).to(qa.q.dtype)
            sa = qa.scale.reshape(()) if mode_name == "tensor" else F.pad(qa.scale, (0, 0, 0, 16 - rows), value=1.0)
            sb = qw.scale.reshape(()) if mode_name == "tensor" else qw.scale.reshape(1, -1).contiguous()
            t_cublas = timed(lambda: torch._scaled_mm(padded, qw.q.t(), scale_a=sa, scale_b=sb, out_dtype=torch.bfloat16))
            print(f"{name:8s} {n:6d}x{k:<6d} {mode_name:6s} rows {rows}: rel err W8A8 {err:.1e} W8 {err_wo:.1e} | "
                  f"GEMV W8A8 {n * k / t_w8a8 / 1e9:5.0f} GB/s ({t_w8a8 * 1e6:6.1f} us), W8 {n * k / t_w8 / 1e9:5.0f}, "
                  f"bf16 matmul {2 * n * k / t_bf16 / 1e9:5.0f} ({t_bf16 * 1e6:6.1f} us), "
                  f"cuBLAS FP8 {n * k / t_cublas / 1e9:5.0f} ({t_cublas * 1e6:6.1f} us)", flush=True)

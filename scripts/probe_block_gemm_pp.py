"""EXPERIMENT probe (kept in history only; results in results/crosschecks/h200-gluon-block-gemm.txt,
sections 6-8): variants of the warp-specialized block-scaled GEMM beside the committed one.

Usage: python3 scripts/probe_block_gemm_pp.py N pp|st
  pp: accelbench/kernels/fp8_block_pp.py (each warpgroup's columns as 64-wide MMA pieces, rescaled
      one by one while later pieces run; rs*: A read into registers once a step)
  st: accelbench/kernels/fp8_block_n192.py (the committed design with a register-store epilogue)
"""
from __future__ import annotations

import sys

import torch
import triton.testing

from accelbench.kernels import fp8_block_n192, fp8_block_pp
from accelbench.kernels import fp8_block_ws as ws
from accelbench.quant import E4M3, OperandScheme, quantize
from probe_block_gemm import cublas_block_wise, cublas_tensor_wise
from probe_block_gemm_ws import operands, rel_err


def main(n: int, which: str) -> None:
    mod = fp8_block_pp if which == "pp" else fp8_block_n192
    gemm = mod.block_scaled_gemm_pp if which == "pp" else mod.block_scaled_gemm_n
    print(torch.cuda.get_device_name(), flush=True)
    for m_, n_, k_ in ((1000, 1152, 1024), (300, 384, 512), (4096, 2944, 1152)):
        qa, qw, exact = operands(m_, n_, k_)
        for name in mod.CONFIGS:
            out = torch.full((m_, n_), float("nan"), dtype=torch.bfloat16, device="cuda")
            try:
                gemm(qa.q, qw.q, qa.scale, qw.scale, out, config=name)
                print(f"edge {m_}x{n_}x{k_} {name}: rel.err {rel_err(out, exact):.1e}", flush=True)
            except Exception as exc:
                print(f"edge {name}: failed: {type(exc).__name__}: {str(exc)[:400]}", flush=True)
    qa, qw, exact = operands(n, n, n)
    ta = quantize(qa.dequantize(torch.float32).to(torch.bfloat16), OperandScheme(E4M3, (0, 0)))
    tw = quantize(qw.dequantize(torch.float32).to(torch.bfloat16), OperandScheme(E4M3, (0, 0)))
    tensor_exact = ta.dequantize(torch.float64) @ tw.dequantize(torch.float64).t()
    out = torch.empty(n, n, dtype=torch.bfloat16, device="cuda")
    flops = 2.0 * n**3
    runs = {"cuBLAS tensor-wise": (lambda: cublas_tensor_wise(ta, tw, out), tensor_exact),
            "cuBLAS block-wise": (lambda: cublas_block_wise(qa, qw, out), exact),
            "ws 192x128": (lambda: ws.block_scaled_gemm_ws(qa.q, qw.q, qa.scale, qw.scale, out), exact)}
    for name in mod.CONFIGS:
        runs[name] = ((lambda name=name: gemm(qa.q, qw.q, qa.scale, qw.scale, out, config=name)),
                      exact)
    for rnd in range(2):
        for name, (fn, ref) in runs.items():
            try:
                out.fill_(float("nan"))
                fn()
                err = rel_err(out, ref)
                ms = triton.testing.do_bench(fn, warmup=100, rep=400, return_mode="median")
                print(f"[{rnd}] {name:24s} {flops / ms / 1e9:7.0f} TFLOP/s  rel.err {err:.1e}", flush=True)
            except Exception as exc:
                print(f"[{rnd}] {name}: failed: {type(exc).__name__}: {str(exc)[:400]}", flush=True)


if __name__ == "__main__":
    main(int(sys.argv[1]), sys.argv[2])

"""Probe: the warp-specialized Gluon block-scaled GEMM (accelbench/kernels/fp8_block_ws.py), each
tile configuration timed at M = N = K (default 8192) with triton.testing.do_bench (median, L2
flushed between calls) beside cuBLAS tensor-wise and block-wise and the single-partition Triton
kernel, on the same FP8 operands. Every result is checked against the fp64 product of the
dequantized operands first, and so are a few shapes whose edges do not fill the tiles.

Usage: python3 scripts/probe_block_gemm_ws.py [N]
"""
from __future__ import annotations

import sys

import torch
import triton.testing

from accelbench.kernels import fp8 as single
from accelbench.kernels import fp8_block_ws as ws
from accelbench.quant import E4M3, OperandScheme, quantize
from probe_block_gemm import cublas_block_wise, cublas_tensor_wise  # scripts/, this file's folder


def operands(m: int, n: int, k: int):
    a = torch.randn(m, k, device="cuda").to(torch.bfloat16)
    w = torch.randn(n, k, device="cuda").to(torch.bfloat16)
    qa = quantize(a, OperandScheme(E4M3, (1, 128)))
    qw = quantize(w, OperandScheme(E4M3, (128, 128)))
    exact = qa.dequantize(torch.float64) @ qw.dequantize(torch.float64).t()
    return qa, qw, exact


def rel_err(out: torch.Tensor, exact: torch.Tensor) -> float:
    return ((out.double() - exact).norm() / exact.norm()).item()


def main(n: int) -> None:
    print(torch.cuda.get_device_name(), flush=True)
    for m_, n_, k_ in ((1000, 1152, 1024), (300, 384, 512), (4096, 2944, 1152)):  # N: whole 128-blocks
        qa, qw, exact = operands(m_, n_, k_)
        for name in ws.CONFIGS:
            out = torch.full((m_, n_), float("nan"), dtype=torch.bfloat16, device="cuda")
            ws.block_scaled_gemm_ws(qa.q, qw.q, qa.scale, qw.scale, out, config=name)
            print(f"edge {m_}x{n_}x{k_} {name}: rel.err {rel_err(out, exact):.1e}", flush=True)
    qa, qw, exact = operands(n, n, n)
    ta = quantize(qa.dequantize(torch.float32).to(torch.bfloat16), OperandScheme(E4M3, (0, 0)))
    tw = quantize(qw.dequantize(torch.float32).to(torch.bfloat16), OperandScheme(E4M3, (0, 0)))
    tensor_exact = ta.dequantize(torch.float64) @ tw.dequantize(torch.float64).t()
    out = torch.empty(n, n, dtype=torch.bfloat16, device="cuda")
    flops = 2.0 * n**3

    def report(name, fn, ref):
        out.fill_(float("nan"))
        fn()
        err = rel_err(out, ref)
        ms = triton.testing.do_bench(fn, warmup=100, rep=500, return_mode="median")
        print(f"{name:44s} {flops / ms / 1e9:7.0f} TFLOP/s  rel.err {err:.1e}", flush=True)

    report("cuBLAS tensor-wise", lambda: cublas_tensor_wise(ta, tw, out), tensor_exact)
    report("cuBLAS block-wise", lambda: cublas_block_wise(qa, qw, out), exact)
    report("Triton single-partition (kernels/fp8.py)",
           lambda: single.block_scaled_gemm(qa.q, qw.q.t(), qa.scale, qw.scale.t(), out), exact)
    for name, cfg in ws.CONFIGS.items():
        try:
            report(f"Gluon warp-specialized {name} s{cfg.stages}",
                   lambda name=name: ws.block_scaled_gemm_ws(qa.q, qw.q, qa.scale, qw.scale, out, config=name), exact)
        except Exception as exc:  # a probe: say which configuration failed and go on
            print(f"Gluon {name}: failed: {type(exc).__name__}: {str(exc)[:300]}", flush=True)
    report("cuBLAS tensor-wise (again)", lambda: cublas_tensor_wise(ta, tw, out), tensor_exact)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 8192)

"""Probe: the Triton 1x128 x 128x128 block-scaled GEMM (accelbench/kernels/fp8.py), each of its
autotune configurations timed alone at M = K = N (default 8192) with triton.testing.do_bench
(median, L2 flushed between calls), beside cuBLAS on the same FP8 operands: tensor-wise and
1x128 x 128x128 block-wise torch._scaled_mm. Each result is checked against the fp64 product of
the dequantized operands first. Not part of the suite: it says which tile shape wins and by how
much the kernel trails cuBLAS.

Usage: python3 scripts/probe_block_gemm.py [N]
"""
from __future__ import annotations

import sys

import torch
import triton
import triton.testing

from accelbench.kernels import fp8 as k
from accelbench.quant import E4M3, OperandScheme, quantize


def main(n: int) -> None:
    a = torch.randn(n, n, device="cuda").to(torch.bfloat16)
    w = torch.randn(n, n, device="cuda").to(torch.bfloat16)  # W = B^T, N x K
    qa = quantize(a, OperandScheme(E4M3, (1, 128)))
    qw = quantize(w, OperandScheme(E4M3, (128, 128)))
    ta = quantize(a, OperandScheme(E4M3, (0, 0)))
    tw = quantize(w, OperandScheme(E4M3, (0, 0)))
    exact = (qa.dequantize(torch.float64) @ qw.dequantize(torch.float64).t())
    out = torch.empty(n, n, dtype=torch.bfloat16, device="cuda")
    flops = 2.0 * n**3

    def report(name, fn, ref):
        fn()
        err = ((out.double() - ref).norm() / ref.norm()).item()
        ms = triton.testing.do_bench(fn, warmup=100, rep=500, return_mode="median")
        print(f"{name:48s} {flops / ms / 1e9:7.0f} TFLOP/s  rel.err {err:.1e}", flush=True)

    tensor_exact = ta.dequantize(torch.float64) @ tw.dequantize(torch.float64).t()
    report("cuBLAS tensor-wise", lambda: torch._scaled_mm(ta.q, tw.q.t(), scale_a=ta.scale.reshape(()),
                                                          scale_b=tw.scale.reshape(()), out_dtype=torch.bfloat16,
                                                          out=out), tensor_exact)
    report("cuBLAS block-wise", lambda: torch._scaled_mm(qa.q, qw.q.t(), scale_a=qa.scale.t().contiguous().t(),
                                                         scale_b=qw.scale.t(), out_dtype=torch.bfloat16, out=out),
           exact)
    kernel = k._block_scaled_gemm.fn  # the jitted kernel under the autotuner
    b, sb = qw.q.t(), qw.scale.t()
    for config in k._GEMM_CONFIGS:
        meta = dict(config.kwargs)
        grid = (triton.cdiv(n, meta["BLOCK_M"]) * triton.cdiv(n, 128),)

        def call(meta=meta, grid=grid, config=config):
            kernel[grid](qa.q, b, out, qa.scale, sb, n, n, n, qa.q.stride(0), qa.q.stride(1), b.stride(0),
                         b.stride(1), out.stride(0), out.stride(1), qa.scale.stride(0), qa.scale.stride(1),
                         sb.stride(0), sb.stride(1), num_warps=config.num_warps, num_stages=config.num_stages,
                         **meta)
        report(f"Triton {meta} w{config.num_warps} s{config.num_stages}", call, exact)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 8192)

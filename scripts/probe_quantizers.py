"""Probe: each fused FP8 activation quantizer alone on one GPU, per policy and granularity, on an
M x K bf16 activation (default 8192 x 8192): microseconds per call (median, L2 flushed before
each, by triton.testing.do_bench) and the bandwidth that implies over the bytes it must move (bf16
read once, or twice for per-tensor current scaling, FP8 written once). Not part of the suite: it
says where quantize+GEMM's extra time goes.

Usage: python3 scripts/probe_quantizers.py [M K]
"""
from __future__ import annotations

import sys

import torch
import triton.testing

from accelbench import fused_quant
from accelbench.fp8_engines import policy_state
from accelbench.quant import MODES


def timed_us(fn) -> float:
    """Median microseconds per call, L2 flushed before each (triton.testing.do_bench)."""
    return triton.testing.do_bench(fn, warmup=25, rep=200, return_mode="median") * 1e3


def main(m: int, k: int) -> None:
    a = torch.randn(m, k, device="cuda").to(torch.bfloat16)
    previous = [torch.randn(m, k, device="cuda").to(torch.bfloat16) for _ in range(4)]
    print(f"{torch.cuda.get_device_name()}, activations {m} x {k} bf16")
    for name in ("tensor", "tensor-static", "tensor-delayed", "tensor-pow2", "gaudi2",
                 "row", "row-static", "row-delayed", "row-pow2", "gaudi2-row", "block"):
        mode = MODES[name]
        state = policy_state(mode, previous)
        if state is None:
            fn = lambda: fused_quant.dynamic(a, mode.a)  # noqa: E731
        elif isinstance(state, fused_quant.DelayedHistory):
            fn = lambda: fused_quant.delayed(a, state, mode.a)  # noqa: E731
        else:
            fn = lambda: fused_quant.static(a, state, mode.a)  # noqa: E731
        us = timed_us(fn)
        reads = 2 if (mode.policy == "current" and mode.a.block == (0, 0)) else 1
        moved = m * k * (2 * reads + 1)
        print(f"{name:16s} {us:8.1f} us  {moved / us / 1e3:7.0f} GB/s  ({fused_quant.describe(mode.a, state)})")


if __name__ == "__main__":
    dims = [int(x) for x in sys.argv[1:3]] or [8192, 8192]
    main(*dims)

"""Triton STREAM kernels (copy, mul, add, triad, write; dot and read as reductions).

Element-wise kernels are one kernel specialised by OP; arithmetic is done in fp32 and rounded
once on store, as torch does for bf16. Offsets are int64 so arrays past 2^31 elements work.
Reductions are persistent: each program strides over the array, accumulates in fp32 and
writes one partial; the partials (a few thousand floats) are summed by torch.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

OPS = {"copy": 0, "mul": 1, "add": 2, "triad": 3, "write": 4}

_CONFIGS = [triton.Config({"BLOCK": b}, num_warps=w) for b, w in ((1024, 4), (2048, 8), (4096, 8), (8192, 16))]


@triton.autotune(configs=_CONFIGS, key=["n", "OP"])
@triton.jit
def _elementwise(a_ptr, b_ptr, c_ptr, scalar, n, OP: tl.constexpr, BLOCK: tl.constexpr):
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    if OP == 4:
        x = tl.full([BLOCK], 1.0, tl.float32) * scalar
    else:
        x = tl.load(a_ptr + offs, mask=mask, eviction_policy="evict_first").to(tl.float32)
        if OP == 1:
            x = x * scalar
        elif OP == 2:
            x = x + tl.load(b_ptr + offs, mask=mask, eviction_policy="evict_first").to(tl.float32)
        elif OP == 3:
            x = x + scalar * tl.load(b_ptr + offs, mask=mask, eviction_policy="evict_first").to(tl.float32)
    tl.store(c_ptr + offs, x.to(c_ptr.dtype.element_ty), mask=mask, eviction_policy="evict_first")


@triton.autotune(configs=_CONFIGS, key=["n", "TWO"], reset_to_zero=["out_ptr"])
@triton.jit
def _reduce(a_ptr, b_ptr, out_ptr, n, TWO: tl.constexpr, BLOCK: tl.constexpr):
    pid = tl.program_id(0)
    step = tl.num_programs(0).to(tl.int64) * BLOCK
    acc = tl.zeros([BLOCK], dtype=tl.float32)
    for start in range(pid.to(tl.int64) * BLOCK, n, step):
        offs = start + tl.arange(0, BLOCK)
        mask = offs < n
        x = tl.load(a_ptr + offs, mask=mask, other=0.0, eviction_policy="evict_first").to(tl.float32)
        if TWO:
            x = x * tl.load(b_ptr + offs, mask=mask, other=0.0, eviction_policy="evict_first").to(tl.float32)
        acc += x
    tl.store(out_ptr + pid, tl.sum(acc, axis=0))


def elementwise(op: str, a: torch.Tensor, b: torch.Tensor, c: torch.Tensor, scalar: float) -> torch.Tensor:
    n = c.numel()
    _elementwise[lambda meta: (triton.cdiv(n, meta["BLOCK"]),)](a, b, c, scalar, n, OP=OPS[op])
    return c


def reduction(a: torch.Tensor, b: torch.Tensor | None, partials: torch.Tensor) -> torch.Tensor:
    """sum(a*b) (dot) or sum(a) (read); `partials` is fp32 with one slot per program."""
    n = a.numel()
    grid = lambda meta: (min(partials.numel(), triton.cdiv(n, meta["BLOCK"])),)  # noqa: E731
    partials.zero_()
    _reduce[grid](a, a if b is None else b, partials, n, TWO=b is not None)
    return partials.sum()

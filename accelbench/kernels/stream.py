"""Triton STREAM kernels (copy, mul, add, triad, write; dot and read as reductions).

Element-wise kernels are one kernel specialised by OP; arithmetic is done in fp32 and rounded
once on store, as torch does for bf16. Offsets are int64 so arrays past 2^31 elements work.
Reductions are persistent: each program strides over the array, accumulates in fp32 and
writes one partial; the partials (a few thousand floats) are summed by torch.

Cache-sized arrays are swept `sweeps` times inside one launch (`_swept`): a persistent grid,
each program striding over the whole array in every sweep, loads cached in L2 only (".cg"), so
the figure is L2 bandwidth, not each SM's L1 and not launch overhead. Swept reductions
accumulate in fp64 and divide by `sweeps` (a power of two) before storing their partial.
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


# (BLOCK, programs per SM, warps, pipeline stages): small blocks keep every SM busy on arrays of
# a few MiB; pipelining lets the loads of the next sweep start before this one's arrive, which is
# what keeps a 1 MiB array's loads in flight (all of it fits in flight at once otherwise).
_SWEPT_CONFIGS = [triton.Config({"BLOCK": b, "PER_SM": p, "STAGES": st}, num_warps=w)
                  for b, p, w in ((256, 16, 2), (512, 16, 4), (1024, 8, 4), (2048, 4, 8)) for st in (1, 3)]
REDUCE: tl.constexpr = tl.constexpr(5)


@triton.autotune(configs=_SWEPT_CONFIGS, key=["n", "OP", "sweeps"], reset_to_zero=["out_ptr"])
@triton.jit
def _swept(a_ptr, b_ptr, c_ptr, out_ptr, scalar, n, sweeps, OP: tl.constexpr, TWO: tl.constexpr,
           BLOCK: tl.constexpr, PER_SM: tl.constexpr, STAGES: tl.constexpr):
    pid = tl.program_id(0)
    nprog = tl.num_programs(0)
    per_sweep = tl.cdiv(tl.cdiv(n, BLOCK), nprog)  # blocks this program visits in one sweep
    acc = tl.zeros([BLOCK], dtype=tl.float64)
    # One flat loop over (sweep, block), so the pipeliner can overlap sweeps.
    for it in tl.range(0, sweeps * per_sweep, num_stages=STAGES):
        offs = (pid + (it % per_sweep) * nprog) * BLOCK + tl.arange(0, BLOCK)
        mask = offs < n
        if OP == 4:
            x = tl.full([BLOCK], 1.0, tl.float32) * scalar
        else:
            x = tl.load(a_ptr + offs, mask=mask, other=0.0, cache_modifier=".cg").to(tl.float32)
            if OP == 1:
                x = x * scalar
            if OP == 2:
                x = x + tl.load(b_ptr + offs, mask=mask, other=0.0, cache_modifier=".cg").to(tl.float32)
            if OP == 3:
                x = x + scalar * tl.load(b_ptr + offs, mask=mask, other=0.0, cache_modifier=".cg").to(tl.float32)
            if OP == REDUCE:
                if TWO:
                    x = x * tl.load(b_ptr + offs, mask=mask, other=0.0, cache_modifier=".cg").to(tl.float32)
        if OP == REDUCE:
            acc += x.to(tl.float64)
        else:
            tl.store(c_ptr + offs, x.to(c_ptr.dtype.element_ty), mask=mask)
    if OP == REDUCE:
        tl.store(out_ptr + pid, (tl.sum(acc, axis=0) / sweeps).to(tl.float32))


def _swept_grid(n: int, device: torch.device, limit: int):
    sms = torch.cuda.get_device_properties(device).multi_processor_count
    return lambda meta: (min(limit, triton.cdiv(n, meta["BLOCK"]), sms * meta["PER_SM"]),)


def elementwise(op: str, a: torch.Tensor, b: torch.Tensor, c: torch.Tensor, scalar: float,
                sweeps: int = 1) -> torch.Tensor:
    n = c.numel()
    if sweeps > 1:
        _swept[_swept_grid(n, c.device, 2**31)](a, b, c, c, scalar, n, sweeps, OP=OPS[op], TWO=False)
        return c
    _elementwise[lambda meta: (triton.cdiv(n, meta["BLOCK"]),)](a, b, c, scalar, n, OP=OPS[op])
    return c


def reduction(a: torch.Tensor, b: torch.Tensor | None, partials: torch.Tensor, sweeps: int = 1) -> torch.Tensor:
    """sum(a*b) (dot) or sum(a) (read); `partials` is fp32 with one slot per program."""
    n = a.numel()
    partials.zero_()
    other = a if b is None else b
    if sweeps > 1:
        _swept[_swept_grid(n, a.device, partials.numel())](a, other, a, partials, 0.0, n, sweeps, OP=REDUCE,
                                                           TWO=b is not None)
        return partials.sum()
    grid = lambda meta: (min(partials.numel(), triton.cdiv(n, meta["BLOCK"])),)  # noqa: E731
    _reduce[grid](a, other, partials, n, TWO=b is not None)
    return partials.sum()

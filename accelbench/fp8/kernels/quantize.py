"""Triton FP8 kernels: fused quantizers (current scaling per tensor / row / 1xG block, a given
scale's single cast pass, delayed scaling's scale-from-history and amax-recording cast), and a GEMM with
1x128 (A) x 128x128 (B) block scales applied in the main loop (each 128-deep partial product is
scaled and added to an fp32 accumulator, the DeepSeek-V3 recipe).

Scales are dequantization multipliers (x ~ q * scale), as in accelbench.fp8.reference.
"""
from __future__ import annotations

from typing import Optional

import torch
import triton
import triton.language as tl


@triton.jit
def _round_scale(raw, ROUNDING: tl.constexpr):
    """0 exact; 1 the next power of two up, from the bits (exponent up one unless the mantissa is
    zero: exact where a log2 is not); 2 Gaudi 2's E4M3 set {1/256, 1/16, 1, 16}: the smallest that
    does not saturate, else 16. As accelbench.fp8.reference.round_scale."""
    if ROUNDING == 1:
        bits = raw.to(tl.int32, bitcast=True)
        exponent = bits & 0x7F800000
        raw = tl.where((bits & 0x007FFFFF) != 0, exponent + 0x00800000, exponent).to(tl.float32, bitcast=True)
    elif ROUNDING == 2:
        chosen = tl.where(raw <= 16.0, 16.0, 16.0)
        chosen = tl.where(raw <= 1.0, 1.0, chosen)
        chosen = tl.where(raw <= 0.0625, 0.0625, chosen)
        raw = tl.where(raw <= 0.00390625, 0.00390625, chosen)
    return raw


@triton.jit
def _quantize_groups(x_ptr, q_ptr, s_ptr, n_cols, groups_per_row, group, fmax, ROUNDING: tl.constexpr,
                     BLOCK: tl.constexpr, GROUPS: tl.constexpr):
    """Current scaling per row (group = K) or per 1 x group block: amax, scale, cast in one pass.
    A program takes GROUPS groups of one row; BLOCK is `group` rounded up to a power of two
    (tl.arange needs one), the rest masked. Divisions round to nearest, as torch's do."""
    row = tl.program_id(0)
    g = tl.program_id(1) * GROUPS + tl.arange(0, GROUPS)
    lane = tl.arange(0, BLOCK)
    inside = (g[:, None] < groups_per_row) & (lane[None, :] < group)
    offs = row.to(tl.int64) * n_cols + g[:, None] * group + lane[None, :]
    x = tl.load(x_ptr + offs, mask=inside, other=0.0).to(tl.float32)
    amax = tl.max(tl.abs(x), axis=1)
    amax = tl.where(amax > 0, amax, 1.0)
    scale = _round_scale(tl.div_rn(amax, fmax), ROUNDING)
    q = tl.clamp(tl.div_rn(x, scale[:, None]), -fmax, fmax)
    tl.store(q_ptr + offs, q.to(q_ptr.dtype.element_ty), mask=inside)
    tl.store(s_ptr + row * groups_per_row + g, scale, mask=g < groups_per_row)


@triton.jit
def _block_max(x_ptr, partial_ptr, n, BLOCK: tl.constexpr):
    """Each program's amax of its BLOCK elements, stored (no atomics: a plain store per program,
    reduced by _max_rows)."""
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    x = tl.load(x_ptr + offs, mask=offs < n, other=0.0).to(tl.float32)
    tl.store(partial_ptr + tl.program_id(0), tl.max(tl.abs(x), axis=0))


@triton.jit
def _max_of(p_ptr, n, BLOCK: tl.constexpr):
    """The max of n partial maxima (fp32, non-negative) at p_ptr, by one program."""
    acc = tl.zeros([BLOCK], dtype=tl.float32)
    for start in range(0, n, BLOCK):
        cols = start + tl.arange(0, BLOCK)
        acc = tl.maximum(acc, tl.load(p_ptr + cols, mask=cols < n, other=0.0))
    return tl.max(acc, axis=0)


@triton.jit
def _max_rows(p_ptr, out_ptr, n_cols, BLOCK: tl.constexpr):
    """out[row] = max over a row of partial maxima (rows x n_cols, fp32, non-negative)."""
    row = tl.program_id(0)
    tl.store(out_ptr + row, _max_of(p_ptr + row.to(tl.int64) * n_cols, n_cols, BLOCK))


@triton.jit
def _scale_from_partials(p_ptr, s_ptr, n, fmax, ROUNDING: tl.constexpr, BLOCK: tl.constexpr):
    """Per tensor: the scale from the amax pass's partial maxima (n of them), in one program."""
    amax = _max_of(p_ptr, n, BLOCK)
    amax = tl.where(amax > 0, amax, 1.0)
    tl.store(s_ptr, _round_scale(tl.div_rn(amax, fmax), ROUNDING))


@triton.jit
def _scales_from_history(h_ptr, s_ptr, n, length, slot, fmax, ROUNDING: tl.constexpr, MOST_RECENT: tl.constexpr,
                         BLOCK: tl.constexpr):
    """Scales (n of them) from an amax history of `length` steps (length x n, fp32): its max, or
    the step before `slot` (the most recent)."""
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    inside = offs < n
    if MOST_RECENT:
        amax = tl.load(h_ptr + ((slot + length - 1) % length) * n + offs, mask=inside, other=0.0)
    else:
        amax = tl.zeros([BLOCK], dtype=tl.float32)
        for step in range(0, length):
            amax = tl.maximum(amax, tl.load(h_ptr + step * n + offs, mask=inside, other=0.0))
    amax = tl.where(amax > 0, amax, 1.0)
    tl.store(s_ptr + offs, _round_scale(tl.div_rn(amax, fmax), ROUNDING), mask=inside)


@triton.jit
def _scaled_cast(x_ptr, q_ptr, s_ptr, partial_ptr, n_cols, s_row_stride, s_group_stride, fmax,
                 GROUP: tl.constexpr, BLOCK: tl.constexpr, RECORD: tl.constexpr, FLAT_REVERSED: tl.constexpr):
    """Cast with given scales (per tensor: strides 0; per row; per 1 x GROUP block), in one pass;
    with RECORD, also store this chunk's amax at partial_ptr[row, chunk] (for delayed scaling).
    FLAT_REVERSED (per tensor, as one row): chunks taken last first. An amax pass just read the
    tensor first chunk first, so its end is still in L2 when this pass starts there."""
    if FLAT_REVERSED:  # grid (chunks, 1)
        row = tl.program_id(1)
        chunk = tl.num_programs(0) - 1 - tl.program_id(0)
        chunks = tl.num_programs(0)
    else:  # grid (rows, chunks)
        row = tl.program_id(0)
        chunk = tl.program_id(1)
        chunks = tl.num_programs(1)
    cols = chunk.to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    inside = cols < n_cols
    offs = row.to(tl.int64) * n_cols + cols
    x = tl.load(x_ptr + offs, mask=inside, other=0.0).to(tl.float32)
    scale = tl.load(s_ptr + row * s_row_stride + (cols // GROUP) * s_group_stride, mask=inside, other=1.0)
    q = tl.clamp(tl.div_rn(x, scale), -fmax, fmax)
    tl.store(q_ptr + offs, q.to(q_ptr.dtype.element_ty), mask=inside)
    if RECORD:
        tl.store(partial_ptr + row.to(tl.int64) * chunks + chunk, tl.max(tl.abs(x), axis=0))


CAST_BLOCK = 2048  # elements per program of a cast pass: 16 per thread at 4 warps


def _block_strides(block: tuple[int, int], cols: int) -> tuple[int, int, int]:
    """(scale row stride, scale group stride, group) of a per-tensor, per-row or 1 x G scale grid."""
    if block == (0, 0):
        return 0, 0, CAST_BLOCK
    if block == (1, 0):
        return 1, 0, CAST_BLOCK
    return cols // block[1], 1, block[1]


def scaled_cast(x: torch.Tensor, scale: torch.Tensor, block: tuple[int, int], fp8_dtype: torch.dtype, fmax: float,
                record_amax: Optional[torch.Tensor] = None) -> torch.Tensor:
    """x (row-major 2-D) cast to FP8 with given dequantization scales; with record_amax (a
    per-tensor or per-row buffer), this pass's amax is written into it."""
    rows, cols = x.shape
    assert x.is_contiguous() and scale.is_contiguous()
    if record_amax is not None and block not in ((0, 0), (1, 0)):
        raise ValueError("recording the amax in the cast pass is per tensor or per row only")
    q = torch.empty_like(x, dtype=fp8_dtype)
    s_row, s_group, group = _block_strides(block, cols)
    flat = block == (0, 0)
    if flat:  # one row of rows x cols elements
        rows, cols = 1, rows * cols
    chunks = triton.cdiv(cols, CAST_BLOCK)
    partial = torch.empty(rows, chunks, dtype=torch.float32, device=x.device) if record_amax is not None else scale
    _scaled_cast[(chunks, 1) if flat else (rows, chunks)](
        x, q, scale, partial, cols, s_row, s_group, fmax, GROUP=group, BLOCK=CAST_BLOCK,
        RECORD=record_amax is not None, FLAT_REVERSED=flat, num_warps=4)
    if record_amax is not None:  # per row: each row's chunks; per tensor: all of them
        per_row = block == (1, 0)
        _max_rows[(rows if per_row else 1,)](partial, record_amax, chunks if per_row else rows * chunks, BLOCK=1024)
    return q


def scale_from_history(history: torch.Tensor, slot: int, most_recent: bool, fmax: float, rounding: int) -> torch.Tensor:
    """Scales from an amax history (length x scale shape, the step about to be written at `slot`)."""
    length = history.shape[0]
    n = history[0].numel()
    scale = torch.empty(history.shape[1:], dtype=torch.float32, device=history.device)
    block = 1024
    _scales_from_history[(triton.cdiv(n, block),)](history, scale, n, length, slot, fmax, ROUNDING=rounding,
                                                   MOST_RECENT=most_recent, BLOCK=block)
    return scale


def quantize_current(x: torch.Tensor, block: tuple[int, int], fp8_dtype: torch.dtype, fmax: float, rounding: int):
    """Current scaling per tensor (an amax pass, then one scale-and-cast pass: the global amax must
    exist before any element is cast), per row or per 1 x G block (one pass). Returns (q, scales)
    with scales in the block grid's shape."""
    rows, cols = x.shape
    assert x.is_contiguous()
    if block == (0, 0):
        n = x.numel()
        partial = torch.empty(triton.cdiv(n, 8192), dtype=torch.float32, device=x.device)
        _block_max[(partial.numel(),)](x, partial, n, BLOCK=8192, num_warps=8)
        scale = torch.empty(1, 1, dtype=torch.float32, device=x.device)
        _scale_from_partials[(1,)](partial, scale, partial.numel(), fmax, ROUNDING=rounding, BLOCK=1024)
        return scaled_cast(x, scale, block, fp8_dtype, fmax), scale
    group = cols if block == (1, 0) else block[1]
    assert cols % group == 0
    q = torch.empty_like(x, dtype=fp8_dtype)
    s = torch.empty(rows, cols // group, dtype=torch.float32, device=x.device)
    padded = triton.next_power_of_2(group)
    groups = max(1, CAST_BLOCK // padded)  # about CAST_BLOCK elements per program
    warps = 4 if padded * groups <= 2048 else 8 if padded <= 4096 else 16
    _quantize_groups[(rows, triton.cdiv(cols // group, groups))](
        x, q, s, cols, cols // group, group, fmax, ROUNDING=rounding, BLOCK=padded, GROUPS=groups, num_warps=warps)
    return q, s


# Autotuned per (M, N, K) on first use and cached for the process. Tiles are 128 wide in N, one
# weight-scale block, so each 128-deep partial product is rescaled by one multiply-add per
# element. Probed on an H100 at 8192^3 (scripts/probe_block_gemm.py, in git history: commit 72ec61a): these two lead; 128x256
# tiles (two accumulators), 256x128 and 4-warp 128x128 tiles ran at 154-318 TFLOP/s, spilling.
_GEMM_CONFIGS = [
    triton.Config({"BLOCK_M": 128, "GROUP_M": 8}, num_warps=8, num_stages=4),
    triton.Config({"BLOCK_M": 64, "GROUP_M": 8}, num_warps=4, num_stages=5),
]


@triton.autotune(configs=_GEMM_CONFIGS, key=["M", "N", "K"])
@triton.jit
def _block_scaled_gemm(a_ptr, b_ptr, c_ptr, sa_ptr, sb_ptr, M, N, K,
                       stride_am, stride_ak, stride_bk, stride_bn, stride_cm, stride_cn,
                       stride_sam, stride_sak, stride_sbk, stride_sbn,
                       BLOCK_M: tl.constexpr, GROUP_M: tl.constexpr):
    BLOCK_K: tl.constexpr = 128  # one A scale per row and one B scale per 128x128 block per step
    BLOCK_N: tl.constexpr = 128
    pid = tl.program_id(0)
    num_pid_m = tl.cdiv(M, BLOCK_M)
    num_pid_n = tl.cdiv(N, BLOCK_N)
    group = GROUP_M * num_pid_n
    first_m = (pid // group) * GROUP_M
    size_m = min(num_pid_m - first_m, GROUP_M)
    pid_m = first_m + (pid % group) % size_m
    pid_n = (pid % group) // size_m
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    offs_k = tl.arange(0, BLOCK_K)
    a_ptrs = a_ptr + offs_m[:, None] * stride_am + offs_k[None, :] * stride_ak
    b_ptrs = b_ptr + offs_k[:, None] * stride_bk + offs_n[None, :] * stride_bn
    sa_ptrs = sa_ptr + offs_m * stride_sam
    sb_ptr_tile = sb_ptr + pid_n * stride_sbn
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for kb in range(0, tl.cdiv(K, BLOCK_K)):
        a = tl.load(a_ptrs, mask=offs_m[:, None] < M, other=0.0)
        b = tl.load(b_ptrs, mask=offs_n[None, :] < N, other=0.0)
        sa = tl.load(sa_ptrs + kb * stride_sak, mask=offs_m < M, other=0.0)
        sb = tl.load(sb_ptr_tile + kb * stride_sbk)
        acc += tl.dot(a, b) * (sa * sb)[:, None]
        a_ptrs += BLOCK_K * stride_ak
        b_ptrs += BLOCK_K * stride_bk
    c_ptrs = c_ptr + offs_m[:, None] * stride_cm + offs_n[None, :] * stride_cn
    tl.store(c_ptrs, acc.to(c_ptr.dtype.element_ty), mask=(offs_m[:, None] < M) & (offs_n[None, :] < N))


def block_scaled_gemm(a: torch.Tensor, b: torch.Tensor, scale_a: torch.Tensor, scale_b: torch.Tensor,
                      out: torch.Tensor) -> torch.Tensor:
    """a: M x K fp8 (row-major), b: K x N fp8 (any strides), scale_a: M x K/128,
    scale_b: K/128 x N/128 (N need not fill the tiles: edges are masked); K a multiple of 128."""
    M, K = a.shape
    N = b.shape[1]
    assert K % 128 == 0, "block-scaled GEMM needs K divisible by 128"
    grid = lambda meta: (triton.cdiv(M, meta["BLOCK_M"]) * triton.cdiv(N, 128),)  # noqa: E731
    _block_scaled_gemm[grid](a, b, out, scale_a, scale_b, M, N, K,
                             a.stride(0), a.stride(1), b.stride(0), b.stride(1), out.stride(0), out.stride(1),
                             scale_a.stride(0), scale_a.stride(1), scale_b.stride(0), scale_b.stride(1))
    return out

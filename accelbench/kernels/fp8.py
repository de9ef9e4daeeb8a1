"""Triton FP8 kernels: a fused amax+scale+cast quantizer for row / 1xG blocks, and a GEMM with
1x128 (A) x 128x128 (B) block scales applied in the main loop (each 128-deep partial product is
scaled and added to an fp32 accumulator, the DeepSeek-V3 recipe).

Scales are dequantization multipliers (x ~ q * scale), as in accelbench.quant.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl


@triton.jit
def _quantize_groups(x_ptr, q_ptr, s_ptr, n_cols, groups_per_row, group, fmax, POW2: tl.constexpr,
                     BLOCK: tl.constexpr):
    """One program per (row, group of `group` columns): amax, scale, cast, in one pass.
    BLOCK is `group` rounded up to a power of two (tl.arange needs one); the rest is masked."""
    row = tl.program_id(0)
    g = tl.program_id(1)
    lane = tl.arange(0, BLOCK)
    inside = lane < group
    cols = g * group + lane
    x = tl.load(x_ptr + row.to(tl.int64) * n_cols + cols, mask=inside, other=0.0).to(tl.float32)
    amax = tl.max(tl.abs(x), axis=0)
    amax = tl.where(amax > 0, amax, 1.0)
    scale = amax / fmax
    if POW2:
        scale = tl.exp2(tl.ceil(tl.log2(scale)))
    q = tl.clamp(x / scale, -fmax, fmax)
    tl.store(q_ptr + row.to(tl.int64) * n_cols + cols, q.to(q_ptr.dtype.element_ty), mask=inside)
    tl.store(s_ptr + row * groups_per_row + g, scale)


def quantize_groups(x: torch.Tensor, group: int, fp8_dtype: torch.dtype, fmax: float, pow2: bool = False):
    """Per-row (group = K) or 1 x group block quantization of a row-major 2-D tensor.
    Returns (q, scales) with scales shaped (rows, K // group)."""
    rows, cols = x.shape
    assert cols % group == 0 and x.is_contiguous()
    q = torch.empty_like(x, dtype=fp8_dtype)
    s = torch.empty(rows, cols // group, dtype=torch.float32, device=x.device)
    block = triton.next_power_of_2(group)
    warps = 4 if block <= 1024 else 8 if block <= 4096 else 16
    _quantize_groups[(rows, cols // group)](x, q, s, cols, cols // group, group, fmax, POW2=pow2, BLOCK=block,
                                            num_warps=warps)
    return q, s


@triton.jit
def _amax_kernel(x_ptr, out_ptr, n, BLOCK: tl.constexpr):
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    x = tl.load(x_ptr + offs, mask=offs < n, other=0.0).to(tl.float32)
    tl.atomic_max(out_ptr, tl.max(tl.abs(x), axis=0))  # non-negative floats order like ints


@triton.jit
def _scale_cast_kernel(x_ptr, q_ptr, amax_ptr, s_ptr, n, fmax, POW2: tl.constexpr, BLOCK: tl.constexpr):
    amax = tl.load(amax_ptr)
    amax = tl.where(amax > 0, amax, 1.0)
    scale = amax / fmax
    if POW2:
        scale = tl.exp2(tl.ceil(tl.log2(scale)))
    if tl.program_id(0) == 0:
        tl.store(s_ptr, scale)
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    x = tl.load(x_ptr + offs, mask=mask).to(tl.float32)
    tl.store(q_ptr + offs, tl.clamp(x / scale, -fmax, fmax).to(q_ptr.dtype.element_ty), mask=mask)


def quantize_tensor(x: torch.Tensor, fp8_dtype: torch.dtype, fmax: float, pow2: bool = False):
    """Dynamic per-tensor quantization in two kernels (amax must be global before any cast)."""
    n = x.numel()
    amax = torch.zeros(1, dtype=torch.float32, device=x.device)
    scale = torch.empty(1, dtype=torch.float32, device=x.device)
    q = torch.empty_like(x, dtype=fp8_dtype)
    block = 8192
    grid = (triton.cdiv(n, block),)
    _amax_kernel[grid](x, amax, n, BLOCK=block, num_warps=8)
    _scale_cast_kernel[grid](x, q, amax, scale, n, fmax, POW2=pow2, BLOCK=block, num_warps=8)
    return q, scale.reshape(())


_GEMM_CONFIGS = [
    triton.Config({"BLOCK_M": 128, "BLOCK_N": 128, "GROUP_M": 8}, num_warps=8, num_stages=4),
    triton.Config({"BLOCK_M": 128, "BLOCK_N": 128, "GROUP_M": 8}, num_warps=4, num_stages=4),
    triton.Config({"BLOCK_M": 64, "BLOCK_N": 128, "GROUP_M": 8}, num_warps=4, num_stages=5),
    triton.Config({"BLOCK_M": 128, "BLOCK_N": 64, "GROUP_M": 8}, num_warps=4, num_stages=5),
]


@triton.autotune(configs=_GEMM_CONFIGS, key=["M", "N", "K"])
@triton.jit
def _block_scaled_gemm(a_ptr, b_ptr, c_ptr, sa_ptr, sb_ptr, M, N, K,
                       stride_am, stride_ak, stride_bk, stride_bn, stride_cm, stride_cn,
                       stride_sam, stride_sak, stride_sbk, stride_sbn,
                       BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, GROUP_M: tl.constexpr):
    BLOCK_K: tl.constexpr = 128  # one A scale per row and one B scale per 128x128 tile per step
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
    sb_ptr_tile = sb_ptr + ((pid_n * BLOCK_N) // 128) * stride_sbn
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for kb in range(0, tl.cdiv(K, BLOCK_K)):
        a = tl.load(a_ptrs, mask=offs_m[:, None] < M, other=0.0)
        b = tl.load(b_ptrs, mask=offs_n[None, :] < N, other=0.0)
        sa = tl.load(sa_ptrs + kb * stride_sak, mask=offs_m < M, other=0.0)
        sb = tl.load(sb_ptr_tile + kb * stride_sbk)
        acc += tl.dot(a, b) * (sa[:, None] * sb)
        a_ptrs += BLOCK_K * stride_ak
        b_ptrs += BLOCK_K * stride_bk
    c_ptrs = c_ptr + offs_m[:, None] * stride_cm + offs_n[None, :] * stride_cn
    tl.store(c_ptrs, acc.to(c_ptr.dtype.element_ty), mask=(offs_m[:, None] < M) & (offs_n[None, :] < N))


def block_scaled_gemm(a: torch.Tensor, b: torch.Tensor, scale_a: torch.Tensor, scale_b: torch.Tensor,
                      out: torch.Tensor) -> torch.Tensor:
    """a: M x K fp8 (row-major), b: K x N fp8 (any strides), scale_a: M x K/128,
    scale_b: K/128 x N/128; K must be a multiple of 128 and N of BLOCK_N."""
    M, K = a.shape
    N = b.shape[1]
    assert K % 128 == 0, "block-scaled GEMM needs K divisible by 128"
    grid = lambda meta: (triton.cdiv(M, meta["BLOCK_M"]) * triton.cdiv(N, meta["BLOCK_N"]),)  # noqa: E731
    _block_scaled_gemm[grid](a, b, out, scale_a, scale_b, M, N, K,
                             a.stride(0), a.stride(1), b.stride(0), b.stride(1), out.stride(0), out.stride(1),
                             scale_a.stride(0), scale_a.stride(1), scale_b.stride(0), scale_b.stride(1))
    return out

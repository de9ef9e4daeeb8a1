"""Triton GEMVs for decode at small batch: FP8 weights (N x K, one byte each) times a few activation
rows, fp32 accumulation, dequantization scales applied once per output. Two kernels:

- `fp8_gemv` (at most 4 rows) on CUDA cores: activations FP8 (W8A8) or in the model's dtype
  (weight-only); every weight byte is converted to fp32 and multiplied there.
- `fp8_gemv_tc` (at most 16 rows, W8A8) on tensor cores, with the operands swapped: the weight
  tile is the MMA's wide operand and the activation rows its narrow one, masked up to 16 rows in
  registers (nothing padded in memory). No per-element conversion: at FP8's one byte per weight the
  CUDA-core kernel's conversions and multiply-adds, not memory, can set its pace (on an H100 it
  streamed the 8B projections at 1.6-2.3 TB/s, this one at 1.9-2.9).

Why: at batch 1 a decode step is bound by streaming the weights, and a tensor-core FP8 GEMM pads
the single activation row to 16 and was measured at 0.76x the bf16 step (H100, cuBLAS via
torch._scaled_mm). Serving engines run such tiny-M FP8 products on CUDA cores for the same reason.
The arithmetic is the W8A8 product itself: FP8 x FP8 products are exact in fp32.

Exposed as a torch custom op, so a compiled decode step calls it as one opaque kernel and a CUDA
graph captures it; it is autotuned per (M, N, K) on first use, outside any capture.
"""
from __future__ import annotations

from typing import Optional

import torch
import triton
import triton.language as tl

MAX_ROWS = 4

_CONFIGS = [triton.Config({"BLOCK_N": n, "BLOCK_K": k}, num_warps=w, num_stages=s)
            for n, k in ((4, 512), (8, 256), (8, 512), (16, 256), (16, 512), (32, 128), (32, 256))
            for w in (4, 8) for s in (2, 4)]


@triton.autotune(configs=_CONFIGS, key=["M", "N", "K"])
@triton.jit
def _gemv(a_ptr, w_ptr, sa_ptr, sw_ptr, out_ptr, M, N, K, sa_stride, sw_stride,
          HAS_A_SCALE: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr):
    """One program per BLOCK_N output columns, for every activation row at once, so each weight
    byte is read once; the K loop keeps BLOCK_K-wide partial sums and reduces them at the end."""
    rn = tl.program_id(0) * BLOCK_N + tl.arange(0, BLOCK_N)
    rm = tl.arange(0, BLOCK_M)
    rk = tl.arange(0, BLOCK_K)
    n_in, m_in = rn < N, rm < M
    w_rows = w_ptr + rn.to(tl.int64)[:, None] * K
    a_rows = a_ptr + rm[:, None] * K
    acc = tl.zeros((BLOCK_M, BLOCK_N, BLOCK_K), tl.float32)
    for k0 in range(0, K, BLOCK_K):
        k_in = (k0 + rk) < K
        w = tl.load(w_rows + k0 + rk[None, :], mask=n_in[:, None] & k_in[None, :], other=0.0).to(tl.float32)
        a = tl.load(a_rows + k0 + rk[None, :], mask=m_in[:, None] & k_in[None, :], other=0.0).to(tl.float32)
        acc += w[None, :, :] * a[:, None, :]
    y = tl.sum(acc, axis=2)
    y *= tl.load(sw_ptr + rn * sw_stride, mask=n_in, other=0.0)[None, :]
    if HAS_A_SCALE:
        y *= tl.load(sa_ptr + rm * sa_stride, mask=m_in, other=0.0)[:, None]
    tl.store(out_ptr + rm[:, None] * N + rn[None, :], y.to(out_ptr.dtype.element_ty),
             mask=m_in[:, None] & n_in[None, :])


TC_ROWS = 16  # the tensor-core kernel's activation rows: one MMA N tile
# Probed on an H100 on the Llama-3.1-8B projections at 1 and 16 rows (scripts/probe_fp8_gemv.py):
# 64-row weight tiles lead on every shape; 128 rows on the widest; 32 x 256 and 16 x 256 never led.
_TC_CONFIGS = [triton.Config({"BLOCK_N": n, "BLOCK_K": k}, num_warps=w, num_stages=s)
               for n, k, w, s in ((16, 512, 4, 3), (32, 512, 4, 3), (64, 128, 4, 6), (64, 256, 4, 4),
                                  (64, 512, 4, 3), (128, 256, 8, 3))]
# FP8 products summed on Hopper's tensor cores in reduced precision are promoted into the fp32
# accumulator every this many (as cuBLAS does without fast accumulation).
PROMOTE_EVERY = tl.constexpr(128)


@triton.autotune(configs=_TC_CONFIGS, key=["M", "N", "K"])
@triton.heuristics({"EVEN_K": lambda args: args["K"] % args["BLOCK_K"] == 0})
@triton.jit
def _gemv_tc(a_ptr, w_ptr, sa_ptr, sw_ptr, out_ptr, M, N, K, sa_stride, sw_stride,
             ROWS: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, EVEN_K: tl.constexpr):
    """One program per BLOCK_N weight rows: acc[BLOCK_N, ROWS] += W tile @ A tile^T on tensor cores
    (activation rows past M load as zeros), then both scales, stored transposed into out (M x N).
    The activations come quantized: casting them here instead, bit for bit the same, measured 5x to
    20x slower (H200), every program dividing all 16 rows of every tile again."""
    rn = tl.program_id(0) * BLOCK_N + tl.arange(0, BLOCK_N)
    rm = tl.arange(0, ROWS)
    rk = tl.arange(0, BLOCK_K)
    n_in, m_in = rn < N, rm < M
    w_rows = w_ptr + rn.to(tl.int64)[:, None] * K
    a_rows = a_ptr + rm[:, None] * K
    acc = tl.zeros((BLOCK_N, ROWS), tl.float32)
    for k0 in range(0, K, BLOCK_K):
        if EVEN_K:
            w = tl.load(w_rows + k0 + rk[None, :], mask=n_in[:, None], other=0.0)
            a = tl.load(a_rows + k0 + rk[None, :], mask=m_in[:, None], other=0.0)
        else:
            k_in = (k0 + rk) < K
            w = tl.load(w_rows + k0 + rk[None, :], mask=n_in[:, None] & k_in[None, :], other=0.0)
            a = tl.load(a_rows + k0 + rk[None, :], mask=m_in[:, None] & k_in[None, :], other=0.0)
        acc = tl.dot(w, tl.trans(a), acc, max_num_imprecise_acc=PROMOTE_EVERY)
    acc *= tl.load(sw_ptr + rn * sw_stride, mask=n_in, other=0.0)[:, None]
    acc *= tl.load(sa_ptr + rm * sa_stride, mask=m_in, other=0.0)[None, :]
    tl.store(out_ptr + rm[None, :] * N + rn[:, None], acc.to(out_ptr.dtype.element_ty),
             mask=n_in[:, None] & m_in[None, :])


@torch.library.custom_op("accelbench::fp8_gemv_tc", mutates_args=())
def fp8_gemv_tc(a: torch.Tensor, w: torch.Tensor, a_scale: torch.Tensor, w_scale: torch.Tensor,
                out_dtype: torch.dtype) -> torch.Tensor:
    """(M x K) @ (N x K)^T for M <= TC_ROWS, both FP8 of one type, on tensor cores; dequantization
    scales per tensor or per row (a: M, w: N)."""
    m, k = a.shape
    n = w.shape[0]
    assert m <= TC_ROWS and w.shape[1] == k and a.is_contiguous() and w.is_contiguous()
    out = torch.empty(m, n, dtype=out_dtype, device=a.device)
    a_scale, w_scale = a_scale.reshape(-1).float(), w_scale.reshape(-1).float()
    _gemv_tc[lambda meta: (triton.cdiv(n, meta["BLOCK_N"]),)](
        a, w, a_scale, w_scale, out, m, n, k, int(a_scale.numel() > 1), int(w_scale.numel() > 1), ROWS=TC_ROWS)
    return out


@fp8_gemv_tc.register_fake
def _(a, w, a_scale, w_scale, out_dtype):
    return a.new_empty(a.shape[0], w.shape[0], dtype=out_dtype)


@torch.library.custom_op("accelbench::fp8_gemv", mutates_args=())
def fp8_gemv(a: torch.Tensor, w: torch.Tensor, a_scale: Optional[torch.Tensor], w_scale: torch.Tensor,
             out_dtype: torch.dtype) -> torch.Tensor:
    """(M x K) @ (N x K)^T for M <= MAX_ROWS. `a` is FP8 with per-tensor or per-row `a_scale`, or in
    a float dtype with `a_scale` None; `w` is FP8 with per-tensor or per-row (N) `w_scale`."""
    m, k = a.shape
    n = w.shape[0]
    assert m <= MAX_ROWS and w.shape[1] == k and a.is_contiguous() and w.is_contiguous()
    out = torch.empty(m, n, dtype=out_dtype, device=a.device)
    has_a_scale = a_scale is not None
    w_scale = w_scale.reshape(-1).float()
    a_scale = a_scale.reshape(-1).float() if has_a_scale else w_scale  # not read without HAS_A_SCALE
    _gemv[lambda meta: (triton.cdiv(n, meta["BLOCK_N"]),)](
        a, w, a_scale, w_scale, out, m, n, k, int(a_scale.numel() > 1), int(w_scale.numel() > 1),
        HAS_A_SCALE=has_a_scale, BLOCK_M=triton.next_power_of_2(m))
    return out


@fp8_gemv.register_fake
def _(a, w, a_scale, w_scale, out_dtype):
    return a.new_empty(a.shape[0], w.shape[0], dtype=out_dtype)

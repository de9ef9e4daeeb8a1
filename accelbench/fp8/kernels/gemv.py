"""A Triton GEMV for decode at small batch (W8A8): FP8 weights (N x K, one byte each) times at most
16 FP8 activation rows on tensor cores, with the operands swapped: the weight tile is the MMA's wide
operand and the activation rows its narrow one, masked up to 16 rows in registers (nothing padded
in memory); fp32 accumulation, dequantization scales applied once per output.

Why tensor cores for a matrix-vector product: at FP8's one byte per weight, a GEMV on CUDA cores is
paced by converting every weight to fp32 and multiplying there, not by memory. One such kernel
streamed the 8B projections at 1.5-2.3 TB/s on an H100, this one at 1.8-2.9
(results/crosschecks/h100-fp8-decode-gemv-probe.txt); it lost to this one or to cuBLAS on every
projection on an H100 and an H200, and was removed. cuBLAS, the rows padded to 16 in memory, wins
some shapes on some devices; the decode's kernel choice (e2e/decode/fp8_linear.py) times both.

Exposed as a torch custom op, so a compiled decode step calls it as one opaque kernel and a CUDA
graph captures it; it is autotuned per (M, N, K, K parts) on first use, outside any capture.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

MAX_ROWS = 16  # the tensor-core kernel's activation rows: one MMA N tile
# Probed on an H100 on the Llama-3.1-8B projections at 1 and 16 rows (scripts/probe_fp8_gemv.py, in commit 72ec61a):
# 64-row weight tiles lead on every shape; 128 rows on the widest; 32 x 256 and 16 x 256 never led.
_CONFIGS = [triton.Config({"BLOCK_N": n, "BLOCK_K": k}, num_warps=w, num_stages=s)
               for n, k, w, s in ((16, 512, 4, 3), (32, 512, 4, 3), (64, 128, 4, 6), (64, 256, 4, 4),
                                  (64, 512, 4, 3), (128, 256, 8, 3))]
# FP8 products summed on Hopper's tensor cores in reduced precision are promoted into the fp32
# accumulator every this many (as cuBLAS does without fast accumulation).
PROMOTE_EVERY = tl.constexpr(128)


@triton.autotune(configs=_CONFIGS, key=["M", "N", "K", "SPLIT"])
@triton.heuristics({"EVEN_K": lambda args: args["K"] % (args["BLOCK_K"] * args["SPLIT"]) == 0})
@triton.jit
def _gemv_tc(a_ptr, w_ptr, sa_ptr, sw_ptr, out_ptr, M, N, K, sa_stride, sw_stride,
             ROWS: tl.constexpr, SPLIT: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
             EVEN_K: tl.constexpr):
    """One program per BLOCK_N weight rows and 1/SPLIT of K: acc[BLOCK_N, ROWS] += W tile @ A tile^T
    on tensor cores (activation rows past M load as zeros), then both scales, stored transposed into
    out (SPLIT x M x N: one partial product per part of K).
    The activations come quantized: casting them here instead, bit for bit the same, measured 5x to
    20x slower (H200), every program dividing all 16 rows of every tile again."""
    rn = tl.program_id(0) * BLOCK_N + tl.arange(0, BLOCK_N)
    part = tl.program_id(1)
    rm = tl.arange(0, ROWS)
    rk = tl.arange(0, BLOCK_K)
    n_in, m_in = rn < N, rm < M
    w_rows = w_ptr + rn.to(tl.int64)[:, None] * K
    a_rows = a_ptr + rm[:, None] * K
    acc = tl.zeros((BLOCK_N, ROWS), tl.float32)
    per_part = tl.cdiv(K, SPLIT * BLOCK_K) * BLOCK_K
    for k0 in range(part * per_part, tl.minimum(part * per_part + per_part, K), BLOCK_K):
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
    tl.store(out_ptr + part * M * N + rm[None, :] * N + rn[:, None], acc.to(out_ptr.dtype.element_ty),
             mask=n_in[:, None] & m_in[None, :])


@torch.library.custom_op("accelbench::fp8_gemv_tc", mutates_args=())
def fp8_gemv_tc(a: torch.Tensor, w: torch.Tensor, a_scale: torch.Tensor, w_scale: torch.Tensor,
                out_dtype: torch.dtype, split: int = 1) -> torch.Tensor:
    """(M x K) @ (N x K)^T for M <= MAX_ROWS, both FP8 of one type, on tensor cores; dequantization
    scales per tensor or per row (a: M, w: N). split > 1: K is cut in `split` parts, each its own
    programs, and the partial products come back in fp32 (split x M x N) for the caller to sum,
    which a compiled step fuses into the next kernel: more programs for a shape whose output alone
    leaves SMs idle (N / BLOCK_N below the SM count), no extra pass."""
    m, k = a.shape
    n = w.shape[0]
    assert m <= MAX_ROWS and w.shape[1] == k and a.is_contiguous() and w.is_contiguous()
    out = torch.empty(*((split,) if split > 1 else ()), m, n, dtype=torch.float32 if split > 1 else out_dtype,
                      device=a.device)
    a_scale, w_scale = a_scale.reshape(-1).float(), w_scale.reshape(-1).float()
    _gemv_tc[lambda meta: (triton.cdiv(n, meta["BLOCK_N"]), split)](
        a, w, a_scale, w_scale, out, m, n, k, int(a_scale.numel() > 1), int(w_scale.numel() > 1),
        ROWS=MAX_ROWS, SPLIT=split)
    return out


@fp8_gemv_tc.register_fake
def _(a, w, a_scale, w_scale, out_dtype, split=1):
    shape = ((split,) if split > 1 else ()) + (a.shape[0], w.shape[0])
    return a.new_empty(shape, dtype=torch.float32 if split > 1 else out_dtype)

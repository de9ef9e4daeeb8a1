"""Probe: the Triton 1x128 x 128x128 block-scaled GEMM (accelbench/kernels/fp8.py), each of its
autotune configurations timed alone at M = K = N (default 8192) with triton.testing.do_bench
(median, L2 flushed between calls), beside cuBLAS on the same FP8 operands: tensor-wise and
1x128 x 128x128 block-wise torch._scaled_mm. Each result is checked against the fp64 product of
the dequantized operands first. Not part of the suite: it says which tile shape wins and by how
much the kernel trails cuBLAS.

Two restructurings in plain Triton are timed beside it, kept here as the record of what did not
help (results/crosschecks/h100-triton-block-gemm-restructured.txt; on Hopper the warp-specialized
Gluon kernel, kernels/fp8_block_ws.py and scripts/probe_block_gemm_ws.py, replaced the kernel):
(1) a persistent kernel whose operand tiles arrive by TMA (tensor descriptors), with and without
Triton's automatic warp specialization; (2) the main loop software-pipelined by hand, so each
tile's MMA is issued before the previous tile's partial product is rescaled.

Usage: python3 scripts/probe_block_gemm.py [N]
"""
from __future__ import annotations

import sys

import torch
import triton
import triton.language as tl
import triton.testing

from accelbench.kernels import fp8 as k
from accelbench.quant import E4M3, OperandScheme, quantize


@triton.jit
def _tile(tile_id, num_pid_m, num_pid_n, GROUP_M: tl.constexpr):
    group = GROUP_M * num_pid_n
    first_m = (tile_id // group) * GROUP_M
    size_m = min(num_pid_m - first_m, GROUP_M)
    return first_m + (tile_id % group) % size_m, (tile_id % group) // size_m


@triton.jit
def _persistent_tma(a_desc, w_desc, c_desc, sa_ptr, sb_ptr, M, N, K, stride_sam, stride_sak, stride_sbk, stride_sbn,
                    BLOCK_M: tl.constexpr, GROUP_M: tl.constexpr, NUM_SMS: tl.constexpr, WS: tl.constexpr):
    BLOCK_K: tl.constexpr = 128
    BLOCK_N: tl.constexpr = 128
    num_pid_m = tl.cdiv(M, BLOCK_M)
    num_pid_n = tl.cdiv(N, BLOCK_N)
    k_tiles = tl.cdiv(K, BLOCK_K)
    for tile_id in tl.range(tl.program_id(0), num_pid_m * num_pid_n, NUM_SMS, flatten=True, warp_specialize=WS):
        pid_m, pid_n = _tile(tile_id, num_pid_m, num_pid_n, GROUP_M)
        offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
        acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
        for kb in range(k_tiles):
            a = a_desc.load([pid_m * BLOCK_M, kb * BLOCK_K])
            w = w_desc.load([pid_n * BLOCK_N, kb * BLOCK_K])
            sa = tl.load(sa_ptr + offs_m * stride_sam + kb * stride_sak, mask=offs_m < M, other=0.0)
            sb = tl.load(sb_ptr + kb * stride_sbk + pid_n * stride_sbn)
            acc += tl.dot(a, w.T) * (sa * sb)[:, None]
        c_desc.store([pid_m * BLOCK_M, pid_n * BLOCK_N], acc.to(tl.bfloat16))  # the probe writes bf16


@triton.jit
def _pipelined(a_ptr, b_ptr, c_ptr, sa_ptr, sb_ptr, M, N, K, stride_am, stride_bn, stride_cm, stride_sam, stride_sak,
               stride_sbk, stride_sbn, BLOCK_M: tl.constexpr, GROUP_M: tl.constexpr):
    BLOCK_K: tl.constexpr = 128
    BLOCK_N: tl.constexpr = 128
    pid_m, pid_n = _tile(tl.program_id(0), tl.cdiv(M, BLOCK_M), tl.cdiv(N, BLOCK_N), GROUP_M)
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    offs_k = tl.arange(0, BLOCK_K)
    a_ptrs = a_ptr + offs_m[:, None] * stride_am + offs_k[None, :]
    b_ptrs = b_ptr + offs_k[:, None] + offs_n[None, :] * stride_bn
    sa_ptrs = sa_ptr + offs_m * stride_sam
    sb_tile = sb_ptr + pid_n * stride_sbn
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    prev = tl.dot(tl.load(a_ptrs), tl.load(b_ptrs))
    prev_scale = tl.load(sa_ptrs) * tl.load(sb_tile)
    for kb in range(1, tl.cdiv(K, BLOCK_K)):
        part = tl.dot(tl.load(a_ptrs + kb * BLOCK_K), tl.load(b_ptrs + kb * BLOCK_K))
        acc += prev * prev_scale[:, None]
        prev = part
        prev_scale = tl.load(sa_ptrs + kb * stride_sak) * tl.load(sb_tile + kb * stride_sbk)
    acc += prev * prev_scale[:, None]
    tl.store(c_ptr + offs_m[:, None] * stride_cm + offs_n[None, :], acc.to(c_ptr.dtype.element_ty))


def cublas_tensor_wise(ta, tw, out: torch.Tensor) -> torch.Tensor:
    """torch._scaled_mm with per-tensor scales: the figure the block-scaled kernels are held to."""
    return torch._scaled_mm(ta.q, tw.q.t(), scale_a=ta.scale.reshape(()), scale_b=tw.scale.reshape(()),
                            out_dtype=torch.bfloat16, out=out)


def cublas_block_wise(qa, qw, out: torch.Tensor) -> torch.Tensor:
    """torch._scaled_mm with 1x128 (A, outer-dim-major scales) x 128x128 (W) scales."""
    return torch._scaled_mm(qa.q, qw.q.t(), scale_a=qa.scale.t().contiguous().t(), scale_b=qw.scale.t(),
                            out_dtype=torch.bfloat16, out=out)


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
    report("cuBLAS tensor-wise", lambda: cublas_tensor_wise(ta, tw, out), tensor_exact)
    report("cuBLAS block-wise", lambda: cublas_block_wise(qa, qw, out), exact)
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

    from triton.tools.tensor_descriptor import TensorDescriptor
    sms = torch.cuda.get_device_properties("cuda").multi_processor_count
    sa_m_major = qa.scale.t().contiguous().t()  # the scales cuBLAS takes: loads along M coalesce
    for block_m, warps, stages, ws in ((128, 8, 3, False), (128, 8, 4, False), (128, 8, 3, True), (128, 8, 4, True),
                                       (64, 4, 5, False), (64, 4, 5, True)):
        for sa, layout in ((qa.scale, "scales K-major"), (sa_m_major, "scales M-major")):
            a_desc = TensorDescriptor.from_tensor(qa.q, [block_m, 128])
            w_desc = TensorDescriptor.from_tensor(qw.q, [128, 128])
            c_desc = TensorDescriptor.from_tensor(out, [block_m, 128])
            tiles = triton.cdiv(n, block_m) * triton.cdiv(n, 128)

            def call(a_desc=a_desc, w_desc=w_desc, c_desc=c_desc, sa=sa, block_m=block_m, warps=warps, stages=stages,
                     ws=ws, tiles=tiles):
                _persistent_tma[(min(sms, tiles),)](a_desc, w_desc, c_desc, sa, qw.scale, n, n, n, sa.stride(0),
                                                    sa.stride(1), qw.scale.stride(1), qw.scale.stride(0),
                                                    BLOCK_M=block_m, GROUP_M=8, NUM_SMS=sms, WS=ws, num_warps=warps,
                                                    num_stages=stages)
            try:
                report(f"persistent TMA BM{block_m} w{warps} s{stages} ws={ws} {layout}", call, exact)
            except Exception as exc:
                print(f"persistent TMA BM{block_m} w{warps} s{stages} ws={ws}: failed: {type(exc).__name__}: "
                      f"{str(exc).splitlines()[0][:120] if str(exc) else ''}", flush=True)
    for block_m, warps, stages in ((128, 8, 3), (128, 8, 4), (64, 4, 4)):
        for sa, layout in ((qa.scale, "scales K-major"), (sa_m_major, "scales M-major")):
            def call(sa=sa, block_m=block_m, warps=warps, stages=stages):
                _pipelined[(triton.cdiv(n, block_m) * triton.cdiv(n, 128),)](
                    qa.q, qw.q, out, sa, qw.scale, n, n, n, qa.q.stride(0), qw.q.stride(0), out.stride(0),
                    sa.stride(0), sa.stride(1), qw.scale.stride(1), qw.scale.stride(0), BLOCK_M=block_m, GROUP_M=8,
                    num_warps=warps, num_stages=stages)
            try:
                report(f"pipelined by hand BM{block_m} w{warps} s{stages} {layout}", call, exact)
            except Exception as exc:
                print(f"pipelined by hand BM{block_m} w{warps} s{stages}: failed: {type(exc).__name__}: "
                      f"{str(exc).splitlines()[0][:120] if str(exc) else ''}", flush=True)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 8192)

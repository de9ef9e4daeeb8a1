"""EXPERIMENT (kept in history only; see scripts/probe_block_gemm_pp.py): the warp-specialized
block-scaled GEMM of fp8_block_ws.py with its output stored from registers (no shared-memory C
buffer, so 5 stages fit). Its 192-column form did not compile: Gluon shapes are powers of two."""
from __future__ import annotations

from dataclasses import dataclass

import torch
import triton
from triton.experimental import gluon
from triton.experimental.gluon import language as gl
from triton.experimental.gluon.language.nvidia.hopper import (fence_async_shared, mbarrier, tma, warpgroup_mma,
                                                             warpgroup_mma_wait)
from triton.experimental.gluon.nvidia.hopper import TensorDescriptor

# Globals a Gluon function reads must be constexprs.
GROUP = gl.constexpr(128)  # the scale block: 1x128 for A, 128x128 for W
WARPGROUP_ROWS = gl.constexpr(64)  # rows one warpgroup's MMA covers
BOX = gl.constexpr(64)


@gluon.jit
def _tile_coords(tile, num_pid_m, num_pid_n, GROUP_M: gl.constexpr):
    group = GROUP_M * num_pid_n
    first_m = (tile // group) * GROUP_M
    size_m = gl.minimum(num_pid_m - first_m, GROUP_M)
    return first_m + (tile % group) % size_m, (tile % group) // size_m


@gluon.jit
def _produce(a_desc, w_desc, a_bufs, w_bufs, ready, empty, M, N, K, CONSUMERS: gl.constexpr, BLOCK_N: gl.constexpr,
             GROUP_M: gl.constexpr, STAGES: gl.constexpr):
    BLOCK_M: gl.constexpr = CONSUMERS * WARPGROUP_ROWS
    num_pid_m = gl.cdiv(M, BLOCK_M)
    num_pid_n = gl.cdiv(N, BLOCK_N)
    k_steps = gl.cdiv(K, GROUP)
    count = 0
    for tile in range(gl.program_id(0), num_pid_m * num_pid_n, gl.num_programs(0)):
        pid_m, pid_n = _tile_coords(tile, num_pid_m, num_pid_n, GROUP_M)
        for kb in range(k_steps):
            stage = count % STAGES
            mbarrier.wait(empty.index(stage), ((count // STAGES) & 1) ^ 1)  # barriers start with phase 1 done
            bar = ready.index(stage)
            mbarrier.expect(bar, CONSUMERS * a_desc.block_type.nbytes + (BLOCK_N // BOX) * w_desc.block_type.nbytes)
            for c in gl.static_range(CONSUMERS):
                tma.async_copy_global_to_shared(a_desc, [pid_m * BLOCK_M + c * WARPGROUP_ROWS, kb * GROUP], bar,
                                                a_bufs.index(stage * CONSUMERS + c))
            for j in gl.static_range(BLOCK_N // BOX):
                tma.async_copy_global_to_shared(w_desc, [pid_n * BLOCK_N + j * BOX, kb * GROUP], bar,
                                                w_bufs.index(stage).slice(j * BOX, BOX))
            count += 1


@gluon.jit
def _scales(sa_ptr, sw_ptr, rows, M, N, pid_n, kb, k_steps, stride_sam, stride_sak, stride_swn, stride_swk,
            BLOCK_N: gl.constexpr):
    """Row scales of columns [0, 64), [64, 128) and [128, 192) of the tile."""
    inside = kb < k_steps
    sa = gl.load(sa_ptr + rows * stride_sam + kb * stride_sak, mask=(rows < M) & inside, other=0.0)
    n0 = pid_n * BLOCK_N
    b0 = n0 // GROUP
    sw0 = gl.load(sw_ptr + b0 * stride_swn + kb * stride_swk, mask=inside, other=0.0)
    sw1 = gl.load(sw_ptr + (b0 + 1) * stride_swn + kb * stride_swk, mask=inside & ((b0 + 1) * GROUP < N), other=0.0)
    s0 = sa * sw0
    if BLOCK_N == GROUP:
        return s0, s0, s0
    swmid = gl.where(n0 % GROUP == 0, sw0, sw1)
    return s0, sa * swmid, sa * sw1


@gluon.jit
def _a_tile(a_bufs, ready, count, STAGES: gl.constexpr, CONSUMERS: gl.constexpr, WARPGROUP: gl.constexpr):
    """This warpgroup's A tile of the count-th stage to be filled, once it has arrived."""
    stage = count % STAGES
    mbarrier.wait(ready.index(stage), (count // STAGES) & 1)
    return a_bufs.index(stage * CONSUMERS + WARPGROUP)


@gluon.jit
def _w_tile(w_bufs, count, STAGES: gl.constexpr):
    return w_bufs.index(count % STAGES).permute((1, 0))  # K x N, K-major: what an FP8 MMA takes


@gluon.jit
def _retire(part, acc, scale, cols, empty, count, STAGES: gl.constexpr, sa_ptr, sw_ptr, rows, M, N, pid_n, next_kb,
            k_steps, stride_sam, stride_sak, stride_swn, stride_swk, BLOCK_N: gl.constexpr):
    mbarrier.arrive(empty.index(count % STAGES), count=1)
    s0, smid, s1 = scale
    s2d = gl.where(cols < BOX, s0[:, None], gl.where(cols < 2 * BOX, smid[:, None], s1[:, None]))
    acc = acc + part * s2d
    scale = _scales(sa_ptr, sw_ptr, rows, M, N, pid_n, next_kb, k_steps, stride_sam, stride_sak, stride_swn,
                    stride_swk, BLOCK_N)
    return acc, scale, count + 1


@gluon.jit
def _consume(a_bufs, w_bufs, ready, empty, c_ptr, stride_cm, sa_ptr, sw_ptr, M, N, K, stride_sam, stride_sak,
             stride_swn, stride_swk, WARPGROUP: gl.constexpr, CONSUMERS: gl.constexpr, BLOCK_N: gl.constexpr,
             GROUP_M: gl.constexpr, STAGES: gl.constexpr):
    BLOCK_M: gl.constexpr = CONSUMERS * WARPGROUP_ROWS
    layout: gl.constexpr = gl.NVMMADistributedLayout(version=[3, 0], warps_per_cta=[4, 1],
                                                     instr_shape=[16, BLOCK_N, 32])
    row_layout: gl.constexpr = gl.SliceLayout(1, layout)
    col_layout: gl.constexpr = gl.SliceLayout(0, layout)
    num_pid_m = gl.cdiv(M, BLOCK_M)
    num_pid_n = gl.cdiv(N, BLOCK_N)
    k_steps = gl.cdiv(K, GROUP)
    fresh = M < 0
    part = gl.zeros([WARPGROUP_ROWS, BLOCK_N], gl.float32, layout)
    cols = gl.arange(0, BLOCK_N, layout=col_layout)[None, :]
    count = 0
    for tile in range(gl.program_id(0), num_pid_m * num_pid_n, gl.num_programs(0)):
        pid_m, pid_n = _tile_coords(tile, num_pid_m, num_pid_n, GROUP_M)
        row0 = pid_m * BLOCK_M + WARPGROUP * WARPGROUP_ROWS
        rows = row0 + gl.arange(0, WARPGROUP_ROWS, layout=row_layout)
        acc = gl.zeros([WARPGROUP_ROWS, BLOCK_N], gl.float32, layout)
        scale = _scales(sa_ptr, sw_ptr, rows, M, N, pid_n, 0, k_steps, stride_sam, stride_sak, stride_swn, stride_swk,
                        BLOCK_N)
        for kb in range(k_steps):
            stage = count % STAGES
            mbarrier.wait(ready.index(stage), (count // STAGES) & 1)
            part = warpgroup_mma(a_bufs.index(stage * CONSUMERS + WARPGROUP), w_bufs.index(stage).permute((1, 0)),
                                 part, use_acc=fresh, is_async=True)
            part = warpgroup_mma_wait(0, deps=(part, ))
            acc, scale, count = _retire(part, acc, scale, cols, empty, count, STAGES, sa_ptr, sw_ptr, rows, M, N,
                                        pid_n, kb + 1, k_steps, stride_sam, stride_sak, stride_swn, stride_swk,
                                        BLOCK_N)
        out_cols = pid_n * BLOCK_N + cols
        gl.store(c_ptr + rows[:, None] * stride_cm + out_cols, acc.to(c_ptr.dtype.element_ty),
                 mask=(rows[:, None] < M) & (out_cols < N))


@gluon.jit
def _block_scaled_gemm_n(a_desc, w_desc, c_ptr, stride_cm, sa_ptr, sw_ptr, M, N, K, stride_sam, stride_sak,
                         stride_swn, stride_swk, CONSUMERS: gl.constexpr, BLOCK_N: gl.constexpr, GROUP_M: gl.constexpr,
                         STAGES: gl.constexpr, CONSUMER_REGS: gl.constexpr, PRODUCER_REGS: gl.constexpr):
    a_bufs = gl.allocate_shared_memory(a_desc.dtype, [STAGES * CONSUMERS] + a_desc.block_type.shape, a_desc.layout)
    w_bufs = gl.allocate_shared_memory(w_desc.dtype, [STAGES, BLOCK_N, GROUP], w_desc.layout)
    ready = gl.allocate_shared_memory(gl.int64, [STAGES, 1], mbarrier.MBarrierLayout())
    empty = gl.allocate_shared_memory(gl.int64, [STAGES, 1], mbarrier.MBarrierLayout())
    for i in gl.static_range(STAGES):
        mbarrier.init(ready.index(i), count=1)
        mbarrier.init(empty.index(i), count=CONSUMERS)
    gl.static_assert(CONSUMERS == 3, "three consumer warpgroups")
    gl.warp_specialize([
        (_consume, (a_bufs, w_bufs, ready, empty, c_ptr, stride_cm, sa_ptr, sw_ptr, M, N, K, stride_sam, stride_sak,
                    stride_swn, stride_swk, gl.constexpr(0), CONSUMERS, BLOCK_N, GROUP_M, STAGES)),
        (_consume, (a_bufs, w_bufs, ready, empty, c_ptr, stride_cm, sa_ptr, sw_ptr, M, N, K, stride_sam, stride_sak,
                    stride_swn, stride_swk, gl.constexpr(1), CONSUMERS, BLOCK_N, GROUP_M, STAGES)),
        (_consume, (a_bufs, w_bufs, ready, empty, c_ptr, stride_cm, sa_ptr, sw_ptr, M, N, K, stride_sam, stride_sak,
                    stride_swn, stride_swk, gl.constexpr(2), CONSUMERS, BLOCK_N, GROUP_M, STAGES)),
        (_produce, (a_desc, w_desc, a_bufs, w_bufs, ready, empty, M, N, K, CONSUMERS, BLOCK_N, GROUP_M, STAGES)),
    ], [4, 4, 1], [CONSUMER_REGS, CONSUMER_REGS, PRODUCER_REGS])


@dataclass(frozen=True)
class TileConfig:
    consumers: int
    block_n: int
    stages: int
    consumer_regs: int
    group_m: int = 8
    producer_regs: int = 24

    @property
    def block_m(self) -> int:
        return self.consumers * WARPGROUP_ROWS.value

    @property
    def maxnreg(self) -> int:
        return 65536 // ((self.consumers + 1) * 128) // 8 * 8


CONFIGS = {
    "st192x128s5": TileConfig(consumers=3, block_n=128, stages=5, consumer_regs=160),
    "st192x128s5g4": TileConfig(consumers=3, block_n=128, stages=5, consumer_regs=160, group_m=4),
    "st192x128s4": TileConfig(consumers=3, block_n=128, stages=4, consumer_regs=160),
}

_GLUON_DTYPES = {torch.float8_e4m3fn: gl.float8e4nv, torch.float8_e5m2: gl.float8e5, torch.bfloat16: gl.bfloat16,
                 torch.float16: gl.float16, torch.float32: gl.float32}


def _descriptor(t, block):
    layout = gl.NVMMASharedLayout(swizzle_byte_width=128, element_bitwidth=t.element_size() * 8)
    return TensorDescriptor.from_tensor(t, block, layout)


def kernel_args(a, w, scale_a, scale_w, out, cfg):
    M, K = a.shape
    N = w.shape[0]
    return ([_descriptor(a, [WARPGROUP_ROWS.value, GROUP.value]), _descriptor(w, [BOX.value, GROUP.value]), out,
             out.stride(0), scale_a, scale_w, M, N, K, scale_a.stride(0), scale_a.stride(1), scale_w.stride(0),
             scale_w.stride(1)],
            dict(CONSUMERS=cfg.consumers, BLOCK_N=cfg.block_n, GROUP_M=cfg.group_m, STAGES=cfg.stages,
                 CONSUMER_REGS=cfg.consumer_regs, PRODUCER_REGS=cfg.producer_regs))


def block_scaled_gemm_n(a, w, scale_a, scale_w, out, config="n128x192"):
    M, K = a.shape
    N = w.shape[0]
    assert K % GROUP.value == 0
    cfg = CONFIGS[config]
    tiles = triton.cdiv(M, cfg.block_m) * triton.cdiv(N, cfg.block_n)
    sms = torch.cuda.get_device_properties(a.device).multi_processor_count
    args, const = kernel_args(a, w, scale_a, scale_w, out, cfg)
    _block_scaled_gemm_n[(min(sms, tiles),)](*args, **const, num_warps=4, maxnreg=cfg.maxnreg)
    return out


KERNEL = _block_scaled_gemm_n

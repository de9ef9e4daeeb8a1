"""EXPERIMENT (kept in history only; see scripts/probe_block_gemm_pp.py): block-scaled FP8 GEMM, each warpgroup's columns in 64-wide pieces whose MMAs
ping-pong between two scratch accumulators, so a warpgroup rescales one piece while its next
piece's MMA runs."""
from __future__ import annotations

from dataclasses import dataclass

import torch
import triton
from triton.experimental import gluon
from triton.experimental.gluon import language as gl
from triton.experimental.gluon.language.nvidia.hopper import (fence_async_shared, mbarrier, tma, warpgroup_mma,
                                                             warpgroup_mma_wait)
from triton.experimental.gluon.nvidia.hopper import TensorDescriptor

GROUP = gl.constexpr(128)
WARPGROUP_ROWS = gl.constexpr(64)
PIECE = gl.constexpr(64)


@gluon.jit
def _tile_coords(tile, num_pid_m, num_pid_n, GROUP_M: gl.constexpr):
    group = GROUP_M * num_pid_n
    first_m = (tile // group) * GROUP_M
    size_m = gl.minimum(num_pid_m - first_m, GROUP_M)
    return first_m + (tile % group) % size_m, (tile % group) // size_m


@gluon.jit
def _produce(a_desc, w_desc, a_bufs, w_bufs, ready, empty, M, N, K, CONSUMERS: gl.constexpr, PIECES: gl.constexpr,
             GROUP_M: gl.constexpr, STAGES: gl.constexpr):
    BLOCK_M: gl.constexpr = CONSUMERS * WARPGROUP_ROWS
    BLOCK_N: gl.constexpr = PIECES * PIECE
    num_pid_m = gl.cdiv(M, BLOCK_M)
    num_pid_n = gl.cdiv(N, BLOCK_N)
    k_steps = gl.cdiv(K, GROUP)
    count = 0
    for tile in range(gl.program_id(0), num_pid_m * num_pid_n, gl.num_programs(0)):
        pid_m, pid_n = _tile_coords(tile, num_pid_m, num_pid_n, GROUP_M)
        for kb in range(k_steps):
            _load_stage(a_desc, w_desc, a_bufs, w_bufs, ready, empty, count, pid_m * BLOCK_M, pid_n * BLOCK_N,
                        kb * GROUP, CONSUMERS, PIECES, STAGES)
            count += 1


@gluon.jit
def _load_stage(a_desc, w_desc, a_bufs, w_bufs, ready, empty, count, m0, n0, k0, CONSUMERS: gl.constexpr,
                PIECES: gl.constexpr, STAGES: gl.constexpr):
    stage = count % STAGES
    mbarrier.wait(empty.index(stage), ((count // STAGES) & 1) ^ 1)
    bar = ready.index(stage)
    mbarrier.expect(bar, CONSUMERS * a_desc.block_type.nbytes + PIECES * w_desc.block_type.nbytes)
    for c in gl.static_range(CONSUMERS):
        tma.async_copy_global_to_shared(a_desc, [m0 + c * WARPGROUP_ROWS, k0], bar,
                                        a_bufs.index(stage * CONSUMERS + c))
    for j in gl.static_range(PIECES):
        tma.async_copy_global_to_shared(w_desc, [n0 + j * PIECE, k0], bar, w_bufs.index(stage * PIECES + j))


@gluon.jit
def _scales(sa_ptr, sw_ptr, rows, M, N, pid_n, kb, k_steps, stride_sam, stride_sak, stride_swn, stride_swk,
            PIECES: gl.constexpr):
    """Per piece, scale_a[rows, kb] * scale_w[its 128-column block, kb] (zeros past the last step)."""
    inside = kb < k_steps
    sa = gl.load(sa_ptr + rows * stride_sam + kb * stride_sak, mask=(rows < M) & inside, other=0.0)
    out = ()
    for j in gl.static_range(PIECES):
        col0 = pid_n * (PIECES * PIECE) + j * PIECE
        sw = gl.load(sw_ptr + (col0 // GROUP) * stride_swn + kb * stride_swk, mask=inside & (col0 < N), other=0.0)
        out = out + (sa * sw, )
    return out


@gluon.jit
def _issue(a, w_bufs, count, piece: gl.constexpr, part, fresh, STAGES: gl.constexpr, PIECES: gl.constexpr):
    b = w_bufs.index((count % STAGES) * PIECES + piece).permute((1, 0))
    return warpgroup_mma(a, b, part, use_acc=fresh, is_async=True)


@gluon.jit
def _pinned(x):
    """x through an instruction the compiler may not move: the rescale that made x stays ahead
    of the next MMA, which overwrites the registers it read."""
    return gl.inline_asm_elementwise("mov.b32 $0, $1;", "=r,r", [x], dtype=gl.float32, is_pure=False, pack=1)


@gluon.jit
def _step(a_bufs, w_bufs, ready, empty, accs, parts, scales, count, fresh, ONE, PIECES: gl.constexpr, STAGES: gl.constexpr,
          CONSUMERS: gl.constexpr, WARPGROUP: gl.constexpr, A_REGS: gl.constexpr):
    """One 128-deep step: every piece's MMA issued, then each piece rescaled as soon as it is done,
    while the later pieces' MMAs run."""
    stage = count % STAGES
    mbarrier.wait(ready.index(stage), (count // STAGES) & 1)
    a = a_bufs.index(stage * CONSUMERS + WARPGROUP)
    if A_REGS:  # A read from shared memory once, not once a piece
        a = a.load(gl.DotOperandLayout(operand_index=0, parent=parts[0].type.layout, k_width=4))
    issued = ()
    for j in gl.static_range(PIECES):
        issued = issued + (_issue(a, w_bufs, count, j, parts[j], fresh, STAGES, PIECES), )
    parts = ()
    for j in gl.static_range(PIECES):
        done = warpgroup_mma_wait(PIECES - 1 - j, deps=(issued[j], ))
        if j + 1 == PIECES:
            mbarrier.arrive(empty.index(count % STAGES), count=1)
        acc = accs[j]
        if j + 1 < PIECES:
            # A loop of one trip that ptxas cannot see through: it would otherwise sink this
            # rescale past the next wait, and no MMA would run beside it.
            for trip in range(ONE):
                # + trip (zero) keeps the multiply inside the loop, fused with the add
                acc = acc + done * (scales[j] + trip.to(gl.float32))[:, None]
        else:
            acc = acc + done * scales[j][:, None]
        acc = _pinned(acc)
        accs = accs[:j] + (acc, ) + accs[j + 1:]
        parts = parts + (done, )
    return accs, parts


@gluon.jit
def _consume(a_bufs, w_bufs, ready, empty, c_desc, c_bufs, sa_ptr, sw_ptr, M, N, K, stride_sam, stride_sak,
             stride_swn, stride_swk, ONE, WARPGROUP: gl.constexpr, CONSUMERS: gl.constexpr, PIECES: gl.constexpr,
             GROUP_M: gl.constexpr, STAGES: gl.constexpr, A_REGS: gl.constexpr):
    BLOCK_M: gl.constexpr = CONSUMERS * WARPGROUP_ROWS
    BLOCK_N: gl.constexpr = PIECES * PIECE
    layout: gl.constexpr = gl.NVMMADistributedLayout(version=[3, 0], warps_per_cta=[4, 1],
                                                     instr_shape=[16, PIECE, 32])
    row_layout: gl.constexpr = gl.SliceLayout(1, layout)
    num_pid_m = gl.cdiv(M, BLOCK_M)
    num_pid_n = gl.cdiv(N, BLOCK_N)
    k_steps = gl.cdiv(K, GROUP)
    fresh = M < 0
    parts = (gl.zeros([WARPGROUP_ROWS, PIECE], gl.float32, layout), ) * PIECES
    count = 0
    for tile in range(gl.program_id(0), num_pid_m * num_pid_n, gl.num_programs(0)):
        pid_m, pid_n = _tile_coords(tile, num_pid_m, num_pid_n, GROUP_M)
        row0 = pid_m * BLOCK_M + WARPGROUP * WARPGROUP_ROWS
        rows = row0 + gl.arange(0, WARPGROUP_ROWS, layout=row_layout)
        accs = (gl.zeros([WARPGROUP_ROWS, PIECE], gl.float32, layout), ) * PIECES
        scales = _scales(sa_ptr, sw_ptr, rows, M, N, pid_n, 0, k_steps, stride_sam, stride_sak, stride_swn,
                         stride_swk, PIECES)
        for kb in range(k_steps):
            accs, parts = _step(a_bufs, w_bufs, ready, empty, accs, parts, scales, count, fresh, ONE, PIECES, STAGES,
                                CONSUMERS, WARPGROUP, A_REGS)
            count += 1
            scales = _scales(sa_ptr, sw_ptr, rows, M, N, pid_n, kb + 1, k_steps, stride_sam, stride_sak, stride_swn,
                             stride_swk, PIECES)
        for j in gl.static_range(PIECES):
            c_buf = c_bufs.index(WARPGROUP * PIECES + j)
            if j == 0:
                tma.store_wait(0)
            c_buf.store(accs[j].to(c_desc.dtype))
            fence_async_shared()
            tma.async_copy_shared_to_global(c_desc, [row0, pid_n * BLOCK_N + j * PIECE], c_buf)
    tma.store_wait(0)


@gluon.jit(do_not_specialize=["ONE"])
def _block_scaled_gemm_pp(a_desc, w_desc, c_desc, sa_ptr, sw_ptr, M, N, K, stride_sam, stride_sak, stride_swn,
                          stride_swk, ONE, CONSUMERS: gl.constexpr, PIECES: gl.constexpr, GROUP_M: gl.constexpr,
                          STAGES: gl.constexpr, CONSUMER_REGS: gl.constexpr, PRODUCER_REGS: gl.constexpr,
                          A_REGS: gl.constexpr):
    a_bufs = gl.allocate_shared_memory(a_desc.dtype, [STAGES * CONSUMERS] + a_desc.block_type.shape, a_desc.layout)
    w_bufs = gl.allocate_shared_memory(w_desc.dtype, [STAGES * PIECES] + w_desc.block_type.shape, w_desc.layout)
    c_bufs = gl.allocate_shared_memory(c_desc.dtype, [CONSUMERS * PIECES] + c_desc.block_type.shape, c_desc.layout)
    ready = gl.allocate_shared_memory(gl.int64, [STAGES, 1], mbarrier.MBarrierLayout())
    empty = gl.allocate_shared_memory(gl.int64, [STAGES, 1], mbarrier.MBarrierLayout())
    for i in gl.static_range(STAGES):
        mbarrier.init(ready.index(i), count=1)
        mbarrier.init(empty.index(i), count=CONSUMERS)
    if CONSUMERS == 2:
        gl.warp_specialize([
            (_consume, (a_bufs, w_bufs, ready, empty, c_desc, c_bufs, sa_ptr, sw_ptr, M, N, K, stride_sam, stride_sak,
                        stride_swn, stride_swk, ONE, gl.constexpr(0), CONSUMERS, PIECES, GROUP_M, STAGES, A_REGS)),
            (_consume, (a_bufs, w_bufs, ready, empty, c_desc, c_bufs, sa_ptr, sw_ptr, M, N, K, stride_sam, stride_sak,
                        stride_swn, stride_swk, ONE, gl.constexpr(1), CONSUMERS, PIECES, GROUP_M, STAGES, A_REGS)),
            (_produce, (a_desc, w_desc, a_bufs, w_bufs, ready, empty, M, N, K, CONSUMERS, PIECES, GROUP_M, STAGES)),
        ], [4, 1], [CONSUMER_REGS, PRODUCER_REGS])
    else:
        gl.static_assert(CONSUMERS == 3, "two or three consumer warpgroups")
        gl.warp_specialize([
            (_consume, (a_bufs, w_bufs, ready, empty, c_desc, c_bufs, sa_ptr, sw_ptr, M, N, K, stride_sam, stride_sak,
                        stride_swn, stride_swk, ONE, gl.constexpr(0), CONSUMERS, PIECES, GROUP_M, STAGES, A_REGS)),
            (_consume, (a_bufs, w_bufs, ready, empty, c_desc, c_bufs, sa_ptr, sw_ptr, M, N, K, stride_sam, stride_sak,
                        stride_swn, stride_swk, ONE, gl.constexpr(1), CONSUMERS, PIECES, GROUP_M, STAGES, A_REGS)),
            (_consume, (a_bufs, w_bufs, ready, empty, c_desc, c_bufs, sa_ptr, sw_ptr, M, N, K, stride_sam, stride_sak,
                        stride_swn, stride_swk, ONE, gl.constexpr(2), CONSUMERS, PIECES, GROUP_M, STAGES, A_REGS)),
            (_produce, (a_desc, w_desc, a_bufs, w_bufs, ready, empty, M, N, K, CONSUMERS, PIECES, GROUP_M, STAGES)),
        ], [4, 4, 1], [CONSUMER_REGS, CONSUMER_REGS, PRODUCER_REGS])


@dataclass(frozen=True)
class TileConfig:
    consumers: int
    pieces: int
    stages: int
    consumer_regs: int
    group_m: int = 8
    producer_regs: int = 24
    a_regs: bool = False

    @property
    def block_m(self) -> int:
        return self.consumers * WARPGROUP_ROWS.value

    @property
    def block_n(self) -> int:
        return self.pieces * PIECE.value

    @property
    def maxnreg(self) -> int:
        return 65536 // ((self.consumers + 1) * 128) // 8 * 8


CONFIGS = {
    "pp192x128": TileConfig(consumers=3, pieces=2, stages=4, consumer_regs=160),
    "pp128x192": TileConfig(consumers=2, pieces=3, stages=4, consumer_regs=240),
    "rs192x128": TileConfig(consumers=3, pieces=2, stages=4, consumer_regs=160, a_regs=True),
    "rs128x192": TileConfig(consumers=2, pieces=3, stages=4, consumer_regs=240, a_regs=True),
    "rs128x128": TileConfig(consumers=2, pieces=2, stages=6, consumer_regs=240, a_regs=True),
}

_GLUON_DTYPES = {torch.float8_e4m3fn: gl.float8e4nv, torch.float8_e5m2: gl.float8e5, torch.bfloat16: gl.bfloat16,
                 torch.float16: gl.float16, torch.float32: gl.float32}


def _descriptor(t: torch.Tensor, block: list[int]) -> TensorDescriptor:
    layout = gl.NVMMASharedLayout.get_default_for(block, _GLUON_DTYPES[t.dtype])
    return TensorDescriptor.from_tensor(t, block, layout)


def kernel_args(a, w, scale_a, scale_w, out, cfg):
    M, K = a.shape
    N = w.shape[0]
    return ([_descriptor(a, [WARPGROUP_ROWS.value, GROUP.value]), _descriptor(w, [PIECE.value, GROUP.value]),
             _descriptor(out, [WARPGROUP_ROWS.value, PIECE.value]), scale_a, scale_w, M, N, K, scale_a.stride(0),
             scale_a.stride(1), scale_w.stride(0), scale_w.stride(1), 1],
            dict(CONSUMERS=cfg.consumers, PIECES=cfg.pieces, GROUP_M=cfg.group_m, STAGES=cfg.stages,
                 CONSUMER_REGS=cfg.consumer_regs, PRODUCER_REGS=cfg.producer_regs, A_REGS=cfg.a_regs))


def block_scaled_gemm_pp(a, w, scale_a, scale_w, out, config="pp192x128"):
    M, K = a.shape
    N = w.shape[0]
    assert K % GROUP.value == 0
    cfg = CONFIGS[config]
    tiles = triton.cdiv(M, cfg.block_m) * triton.cdiv(N, cfg.block_n)
    sms = torch.cuda.get_device_properties(a.device).multi_processor_count
    args, const = kernel_args(a, w, scale_a, scale_w, out, cfg)
    _block_scaled_gemm_pp[(min(sms, tiles),)](*args, **const, num_warps=4, maxnreg=cfg.maxnreg)
    return out
KERNEL = _block_scaled_gemm_pp

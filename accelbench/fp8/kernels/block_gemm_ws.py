"""A warp-specialized 1x128 (A) x 128x128 (W) block-scaled FP8 GEMM for Hopper, written in Gluon
(Triton's explicit-layout language, triton.experimental.gluon).

Why a second kernel: in the single-partition Triton kernel (kernels/quantize.py) all warps wait on
each 128-deep MMA together and then rescale its partial product together, so the tensor cores
idle during every rescale; restructured in Triton (TMA, persistence, automatic warp
specialization, a hand-pipelined loop) it stayed at 0.63-0.65x of cuBLAS tensor-wise
(results/crosschecks/h100-triton-block-gemm-restructured.txt). Here, in the shape of DeepSeek's
DeepGEMM:

- persistent: one CTA per SM walks the output tiles, (64 x CONSUMERS) x 128, grouped along M so
  neighbouring CTAs share operand tiles in L2;
- a producer warp streams the tiles of A (one 64-row box per consumer) and W (128 x 128) by TMA
  into STAGES shared-memory buffers, running ahead into the next tile while the consumers store;
- CONSUMERS warpgroups (2 or 3) own 64 rows each. Each step: an MMA of its rows by the 128
  columns over 128 of K into a scratch accumulator, a wait for that MMA alone, then
  acc += scratch * (scale_a[row] * scale_w); scales are fetched one step ahead. Each warpgroup
  waits on its own MMAs and mbarriers only (no CTA-wide barrier), so one's rescale can run while
  another's MMA keeps the tensor cores busy;
- the tile leaves through shared memory and a TMA store.

Every 128-deep partial product is rescaled into fp32, as in the single-partition kernel: the same
arithmetic, the same results up to the order of fp32 additions.

Measured (scripts/probe_block_gemm_ws.py in commit 72ec61a, H200, 8192^3): 192x128 tiles ran at 1027-1057
TFLOP/s against cuBLAS tensor-wise 1219-1289 and block-wise 1115-1134 (0.80-0.84x tensor-wise).
What is left: the warpgroups share the tensor cores and start each step on the same stage, so
their rescales still coincide in part;
overlapping a warpgroup's own rescale with its next MMA needs a second scratch accumulator, which
ptxas spilled (128x128 tiles, 384 TFLOP/s); starting each warpgroup one MMA after the one before
did not help (1037 against 1056); and wider tiles do not fit the register file (128x256: spilled,
497 TFLOP/s), nor can a tile be 192 columns wide (Gluon shapes are powers of two). Overlapping a
warpgroup's own rescale by splitting its columns into two 64-wide MMAs ran slower (923-1007),
with A in registers too (904-1019): ptxas serializes wgmma when one stays in flight across the
rescale of another, so each step still ends waiting for all of its MMAs, and the narrower MMAs
cost more than the overlap they bought. An H100 gives the same ratio (0.80x). Probes: results/crosschecks/h200-gluon-block-gemm.txt.

Scales are dequantization multipliers (x ~ q * scale), as in accelbench.fp8.reference.
"""
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


@gluon.jit
def _tile_coords(tile, num_pid_m, num_pid_n, GROUP_M: gl.constexpr):
    group = GROUP_M * num_pid_n
    first_m = (tile // group) * GROUP_M
    size_m = gl.minimum(num_pid_m - first_m, GROUP_M)
    return first_m + (tile % group) % size_m, (tile % group) // size_m


@gluon.jit
def _produce(a_desc, w_desc, a_bufs, w_bufs, ready, empty, M, N, K, CONSUMERS: gl.constexpr, GROUP_M: gl.constexpr,
             STAGES: gl.constexpr):
    BLOCK_M: gl.constexpr = CONSUMERS * WARPGROUP_ROWS
    num_pid_m = gl.cdiv(M, BLOCK_M)
    num_pid_n = gl.cdiv(N, GROUP)
    k_steps = gl.cdiv(K, GROUP)
    count = 0
    for tile in range(gl.program_id(0), num_pid_m * num_pid_n, gl.num_programs(0)):
        pid_m, pid_n = _tile_coords(tile, num_pid_m, num_pid_n, GROUP_M)
        for kb in range(k_steps):
            stage = count % STAGES
            mbarrier.wait(empty.index(stage), ((count // STAGES) & 1) ^ 1)  # barriers start with phase 1 done
            bar = ready.index(stage)
            mbarrier.expect(bar, CONSUMERS * a_desc.block_type.nbytes + w_desc.block_type.nbytes)
            for c in gl.static_range(CONSUMERS):
                tma.async_copy_global_to_shared(a_desc, [pid_m * BLOCK_M + c * WARPGROUP_ROWS, kb * GROUP], bar,
                                                a_bufs.index(stage * CONSUMERS + c))
            tma.async_copy_global_to_shared(w_desc, [pid_n * GROUP, kb * GROUP], bar, w_bufs.index(stage))
            count += 1


@gluon.jit
def _scales(sa_ptr, sw_ptr, rows, M, pid_n, kb, k_steps, stride_sam, stride_sak, stride_swn, stride_swk):
    """scale_a[rows, kb] * scale_w[pid_n, kb]: what step kb's partial product is multiplied by
    (zeros past the last step, so the loop can fetch one step ahead)."""
    inside = kb < k_steps
    sa = gl.load(sa_ptr + rows * stride_sam + kb * stride_sak, mask=(rows < M) & inside, other=0.0)
    sw = gl.load(sw_ptr + pid_n * stride_swn + kb * stride_swk, mask=inside, other=0.0)
    return sa * sw


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
def _retire(part, acc, scale, empty, count, STAGES: gl.constexpr, sa_ptr, sw_ptr, rows, M, pid_n, next_kb, k_steps,
            stride_sam, stride_sak, stride_swn, stride_swk):
    """A finished step: its stage released, its product rescaled into acc, the next step's scales
    fetched."""
    mbarrier.arrive(empty.index(count % STAGES), count=1)
    acc = acc + part * scale[:, None]
    scale = _scales(sa_ptr, sw_ptr, rows, M, pid_n, next_kb, k_steps, stride_sam, stride_sak, stride_swn, stride_swk)
    return acc, scale, count + 1


@gluon.jit
def _consume(a_bufs, w_bufs, ready, empty, c_desc, c_bufs, sa_ptr, sw_ptr, M, N, K, stride_sam, stride_sak,
             stride_swn, stride_swk, WARPGROUP: gl.constexpr, CONSUMERS: gl.constexpr, GROUP_M: gl.constexpr,
             STAGES: gl.constexpr):
    BLOCK_M: gl.constexpr = CONSUMERS * WARPGROUP_ROWS
    layout: gl.constexpr = gl.NVMMADistributedLayout(version=[3, 0], warps_per_cta=[4, 1],
                                                     instr_shape=[16, GROUP, 32])
    row_layout: gl.constexpr = gl.SliceLayout(1, layout)
    num_pid_m = gl.cdiv(M, BLOCK_M)
    num_pid_n = gl.cdiv(N, GROUP)
    k_steps = gl.cdiv(K, GROUP)
    # The scratch accumulator is carried through the loops and overwritten in place: each MMA
    # discards its input (`fresh` is false, which the compiler cannot know), so ptxas keeps the
    # scratch in one register block and finishes the rescale that reads it before the next MMA
    # writes it. With a constant False it gave MMAs new blocks to overlap them: more registers
    # than there are, and spills.
    fresh = M < 0
    part = gl.zeros([WARPGROUP_ROWS, GROUP], gl.float32, layout)
    count = 0
    for tile in range(gl.program_id(0), num_pid_m * num_pid_n, gl.num_programs(0)):
        pid_m, pid_n = _tile_coords(tile, num_pid_m, num_pid_n, GROUP_M)
        row0 = pid_m * BLOCK_M + WARPGROUP * WARPGROUP_ROWS
        rows = row0 + gl.arange(0, WARPGROUP_ROWS, layout=row_layout)
        acc = gl.zeros([WARPGROUP_ROWS, GROUP], gl.float32, layout)
        scale = _scales(sa_ptr, sw_ptr, rows, M, pid_n, 0, k_steps, stride_sam, stride_sak, stride_swn, stride_swk)
        for kb in range(k_steps):
            part = warpgroup_mma(_a_tile(a_bufs, ready, count, STAGES, CONSUMERS, WARPGROUP),
                                 _w_tile(w_bufs, count, STAGES), part, use_acc=fresh, is_async=True)
            part = warpgroup_mma_wait(0, deps=(part, ))
            acc, scale, count = _retire(part, acc, scale, empty, count, STAGES, sa_ptr, sw_ptr, rows, M, pid_n,
                                        kb + 1, k_steps, stride_sam, stride_sak, stride_swn, stride_swk)
        # The tile leaves through shared memory and a TMA store (a store from registers needs a
        # 64-bit address an element). A store is waited for only when its buffer is needed again,
        # so it overlaps the next tile's main loop.
        c_buf = c_bufs.index(WARPGROUP)
        tma.store_wait(0)
        c_buf.store(acc.to(c_desc.dtype))
        fence_async_shared()
        tma.async_copy_shared_to_global(c_desc, [row0, pid_n * GROUP], c_buf)
    tma.store_wait(0)


@gluon.jit
def _block_scaled_gemm_ws(a_desc, w_desc, c_desc, sa_ptr, sw_ptr, M, N, K, stride_sam, stride_sak, stride_swn,
                          stride_swk, CONSUMERS: gl.constexpr, GROUP_M: gl.constexpr, STAGES: gl.constexpr,
                          CONSUMER_REGS: gl.constexpr, PRODUCER_REGS: gl.constexpr):
    # A arrives as one 64-row box per consumer warpgroup (TMA boxes are powers of two; 192 is not).
    a_bufs = gl.allocate_shared_memory(a_desc.dtype, [STAGES * CONSUMERS] + a_desc.block_type.shape, a_desc.layout)
    w_bufs = gl.allocate_shared_memory(w_desc.dtype, [STAGES] + w_desc.block_type.shape, w_desc.layout)
    c_bufs = gl.allocate_shared_memory(c_desc.dtype, [CONSUMERS] + c_desc.block_type.shape, c_desc.layout)
    ready = gl.allocate_shared_memory(gl.int64, [STAGES, 1], mbarrier.MBarrierLayout())
    empty = gl.allocate_shared_memory(gl.int64, [STAGES, 1], mbarrier.MBarrierLayout())
    for i in gl.static_range(STAGES):
        mbarrier.init(ready.index(i), count=1)
        mbarrier.init(empty.index(i), count=CONSUMERS)  # every consumer warpgroup releases a stage
    # The partitions are listed out: Gluon builds the list when compiling, from literals only.
    if CONSUMERS == 2:
        gl.warp_specialize([
            (_consume, (a_bufs, w_bufs, ready, empty, c_desc, c_bufs, sa_ptr, sw_ptr, M, N, K, stride_sam, stride_sak,
                        stride_swn, stride_swk, gl.constexpr(0), CONSUMERS, GROUP_M, STAGES)),
            (_consume, (a_bufs, w_bufs, ready, empty, c_desc, c_bufs, sa_ptr, sw_ptr, M, N, K, stride_sam, stride_sak,
                        stride_swn, stride_swk, gl.constexpr(1), CONSUMERS, GROUP_M, STAGES)),
            (_produce, (a_desc, w_desc, a_bufs, w_bufs, ready, empty, M, N, K, CONSUMERS, GROUP_M, STAGES)),
        ], [4, 1], [CONSUMER_REGS, PRODUCER_REGS])
    else:
        gl.static_assert(CONSUMERS == 3, "two or three consumer warpgroups")
        gl.warp_specialize([
            (_consume, (a_bufs, w_bufs, ready, empty, c_desc, c_bufs, sa_ptr, sw_ptr, M, N, K, stride_sam, stride_sak,
                        stride_swn, stride_swk, gl.constexpr(0), CONSUMERS, GROUP_M, STAGES)),
            (_consume, (a_bufs, w_bufs, ready, empty, c_desc, c_bufs, sa_ptr, sw_ptr, M, N, K, stride_sam, stride_sak,
                        stride_swn, stride_swk, gl.constexpr(1), CONSUMERS, GROUP_M, STAGES)),
            (_consume, (a_bufs, w_bufs, ready, empty, c_desc, c_bufs, sa_ptr, sw_ptr, M, N, K, stride_sam, stride_sak,
                        stride_swn, stride_swk, gl.constexpr(2), CONSUMERS, GROUP_M, STAGES)),
            (_produce, (a_desc, w_desc, a_bufs, w_bufs, ready, empty, M, N, K, CONSUMERS, GROUP_M, STAGES)),
        ], [4, 4, 1], [CONSUMER_REGS, CONSUMER_REGS, PRODUCER_REGS])


@dataclass(frozen=True)
class TileConfig:
    """A tile of 64 rows per consumer warpgroup by 128 columns. Registers a thread: the consumer
    workers and the producer are given theirs (multiples of 8); the first consumer, the default
    partition, gets what is left of `maxnreg` times all the warps."""
    consumers: int
    stages: int
    consumer_regs: int
    group_m: int = 8
    producer_regs: int = 24

    @property
    def block_m(self) -> int:
        return self.consumers * WARPGROUP_ROWS.value

    @property
    def maxnreg(self) -> int:  # the register file (64K) over all threads, the producer's warpgroup too
        return 65536 // ((self.consumers + 1) * 128) // 8 * 8


# Probed on an H200 at 8192^3 (scripts/probe_block_gemm_ws.py in commit 72ec61a): 192x128 1027-1057 TFLOP/s,
# 128x128 964-985. Three consumers fill the 64K registers (160 a thread); a fourth
# (256 rows) would leave 122, less than an accumulator and a scratch one need.
CONFIGS = {
    "192x128": TileConfig(consumers=3, stages=4, consumer_regs=160),
    "128x128": TileConfig(consumers=2, stages=6, consumer_regs=240),
}
DEFAULT_CONFIG = "192x128"

_GLUON_DTYPES = {torch.float8_e4m3fn: gl.float8e4nv, torch.float8_e5m2: gl.float8e5, torch.bfloat16: gl.bfloat16,
                 torch.float16: gl.float16, torch.float32: gl.float32}


def _descriptor(t: torch.Tensor, block: list[int]) -> TensorDescriptor:
    layout = gl.NVMMASharedLayout.get_default_for(block, _GLUON_DTYPES[t.dtype])
    return TensorDescriptor.from_tensor(t, block, layout)


def block_scaled_gemm_ws(a: torch.Tensor, w: torch.Tensor, scale_a: torch.Tensor, scale_w: torch.Tensor,
                         out: torch.Tensor, config: str = DEFAULT_CONFIG) -> torch.Tensor:
    """a: M x K fp8 row-major, w: N x K fp8 row-major (W = B^T), scale_a: M x K/128,
    scale_w: N/128 x K/128 (any strides), out: M x N (row-major, rows 16-byte aligned); K a
    multiple of 128. Edges of M and N are handled (TMA pads loads with zeros, clips stores)."""
    M, K = a.shape
    N = w.shape[0]
    assert K % GROUP.value == 0, "block-scaled GEMM needs K divisible by 128"
    assert a.stride(1) == 1 and w.stride(1) == 1 and out.stride(1) == 1
    cfg = CONFIGS[config]
    tiles = triton.cdiv(M, cfg.block_m) * triton.cdiv(N, GROUP.value)
    sms = torch.cuda.get_device_properties(a.device).multi_processor_count
    _block_scaled_gemm_ws[(min(sms, tiles),)](
        _descriptor(a, [WARPGROUP_ROWS.value, GROUP.value]), _descriptor(w, [GROUP.value, GROUP.value]),
        _descriptor(out, [WARPGROUP_ROWS.value, GROUP.value]), scale_a, scale_w, M, N, K, scale_a.stride(0),
        scale_a.stride(1), scale_w.stride(0), scale_w.stride(1), CONSUMERS=cfg.consumers, GROUP_M=cfg.group_m,
        STAGES=cfg.stages, CONSUMER_REGS=cfg.consumer_regs, PRODUCER_REGS=cfg.producer_regs, num_warps=4,
        maxnreg=cfg.maxnreg)
    return out

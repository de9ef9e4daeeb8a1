"""Collectives over torch.distributed, in nccl-tests' conventions (docs/metrics.md, Collectives).

Each operation below is a small declaration on one common harness, as in nccl-tests: its
per-rank buffers for a message of S bytes, its bus-bandwidth factor, the call, and the value
every output element must hold. S is the size nccl-tests prints (all_gather: the output;
reduce_scatter: the input; the others: the buffer). algbw = S / t, busbw = algbw x factor,
with t the slowest rank's time for each call (the harness exchanges it after each batch).

Correctness before timing: inputs are filled from rank and element index with small integers,
so every sum is exact in bf16 and fp32 whatever order the library adds in (partial sums stay
within +-256 for up to 256 ranks), and every rank compares its whole output, element for
element, with the same formula evaluated independently. A wrong element on any rank fails the
case on every rank. Outputs start as NaN, so an element never written fails too.

The calls are timed back to back without cache flushes, as nccl-tests times them. With
`--graphs on`, where the backend has graphs, the collective is replayed from a captured graph
(checked first, like every graph); auto never captures one, because capturing a
torch.distributed collective hangs or desynchronizes ranks on some PyTorch/NCCL versions.
"""
from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Callable, Optional

import torch

from accelbench.backends.base import Backend
from accelbench.benchmark import Benchmark, Case, Work, Workload
from accelbench.distributed import placement_from_env
from accelbench.errors import CaseSkipped
from accelbench.microbench.membw import human_bytes, pow2_range
from accelbench.accuracy import EXACT_CHUNK, exact_check
from accelbench.records import Accuracy, Metric
from accelbench.stats import SampleStats
from accelbench.view import OverviewRow, Plot, TableView

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}
SIZES = {"quick": (2**10, 2**16, 2**22), "standard": pow2_range(10, 30, 1), "full": pow2_range(10, 30, 1)}
CHUNK = EXACT_CHUNK  # elements filled (and checked, accuracy.exact_check) at once


def values(rank: int | torch.Tensor, index: torch.Tensor, world: int, reducing: bool) -> torch.Tensor:
    """The integer rank `rank` puts at element `index` (int64; `rank` may vary per element).
    Periods 17 and 241 are prime, so an output shifted by a power-of-two chunk differs from the
    expected one."""
    if reducing:
        amplitude = max(1, min(8, 256 // world))
        return (index * 5 + rank * 3) % (2 * amplitude + 1) - amplitude
    return (index * 7 + rank * 101) % 241 - 120


@dataclass(frozen=True)
class Layout:
    """What one case looks like from one rank."""

    rank: int
    world: int
    count: int  # elements of the message (S / element size)
    peer: Optional[int] = None  # point-to-point: the receiving rank (rank 0 sends)


class Op(ABC):
    name: str
    reducing = False  # its output sums inputs (chooses the value range that keeps sums exact)
    in_place = False  # torch's call overwrites its input: the harness restores it before checks

    def factor(self, world: int) -> float:
        """nccl-tests' bus-bandwidth factor for `world` ranks."""
        return 1.0

    def counts(self, lay: Layout) -> tuple[int, int]:
        """(input, output) elements on this rank; 0 where the rank holds no such buffer."""
        return lay.count, lay.count

    def input_value(self, lay: Layout, index: torch.Tensor) -> torch.Tensor:
        return values(lay.rank, index, lay.world, self.reducing)

    @abstractmethod
    def expected(self, lay: Layout, index: torch.Tensor) -> torch.Tensor:
        """What output element `index` must hold on this rank."""

    @abstractmethod
    def call(self, dist: Any, inp: torch.Tensor, out: torch.Tensor, lay: Layout) -> None:
        """The collective itself, on this rank's buffers."""


def _sum_over_ranks(lay: Layout, index: torch.Tensor) -> torch.Tensor:
    return sum(values(r, index, lay.world, True) for r in range(lay.world))


class AllReduce(Op):
    name, reducing, in_place = "all_reduce", True, True

    def factor(self, world: int) -> float:
        return 2 * (world - 1) / world

    def expected(self, lay, index):
        return _sum_over_ranks(lay, index)

    def call(self, dist, inp, out, lay):
        dist.all_reduce(inp)


class AllGather(Op):
    name = "all_gather"  # S = the gathered output

    def factor(self, world: int) -> float:
        return (world - 1) / world

    def counts(self, lay):
        return lay.count // lay.world, lay.count

    def expected(self, lay, index):
        chunk = lay.count // lay.world
        return values(index // chunk, index % chunk, lay.world, False)

    def call(self, dist, inp, out, lay):
        # torch 2.13 renamed the call (the old name warns); earlier versions have only the old one.
        (getattr(dist, "all_gather_single", None) or dist.all_gather_into_tensor)(out, inp)


class ReduceScatter(Op):
    name, reducing = "reduce_scatter", True  # S = the input

    def factor(self, world: int) -> float:
        return (world - 1) / world

    def counts(self, lay):
        return lay.count, lay.count // lay.world

    def expected(self, lay, index):
        return _sum_over_ranks(lay, lay.rank * (lay.count // lay.world) + index)

    def call(self, dist, inp, out, lay):
        (getattr(dist, "reduce_scatter_single", None) or dist.reduce_scatter_tensor)(out, inp)


class AllToAll(Op):
    name = "all_to_all"

    def factor(self, world: int) -> float:
        return (world - 1) / world

    def expected(self, lay, index):
        # Chunk r of this rank's output is chunk `rank` of rank r's input.
        chunk = lay.count // lay.world
        return values(index // chunk, lay.rank * chunk + index % chunk, lay.world, False)

    def call(self, dist, inp, out, lay):
        dist.all_to_all_single(out, inp)


class Broadcast(Op):
    name, in_place = "broadcast", True  # from rank 0

    def expected(self, lay, index):
        return values(0, index, lay.world, False)

    def call(self, dist, inp, out, lay):
        dist.broadcast(inp, src=0)


class SendRecv(Op):
    """Rank 0 sends S bytes to one peer (on its node, or on another node); the other ranks idle."""

    name = "sendrecv"

    def counts(self, lay):
        return (lay.count if lay.rank == 0 else 0), (lay.count if lay.rank == lay.peer else 0)

    def expected(self, lay, index):
        return values(0, index, lay.world, False)

    def call(self, dist, inp, out, lay):
        # Batched, so NCCL does not serialize it as a collective of the whole group.
        ops = [dist.P2POp(dist.isend, inp, lay.peer)] if lay.rank == 0 else \
            [dist.P2POp(dist.irecv, out, 0)] if lay.rank == lay.peer else []
        for request in dist.batch_isend_irecv(ops) if ops else []:
            request.wait()


OPS: dict[str, Op] = {op.name: op for op in (AllReduce(), AllGather(), ReduceScatter(), AllToAll(), Broadcast(), SendRecv())}
PAIRS = ("intra", "inter")  # sendrecv: a peer on rank 0's node, or on the next node


class Collectives(Benchmark):
    headline_metrics = ("busbw",)
    summary_groups = ("op", "dtype")
    overview = (OverviewRow("all_reduce bus bandwidth (largest size every device ran)", "busbw", (("op", "all_reduce"),),
                            same=("dtype", "bytes"), compare_on=("op", "dtype", "bytes"), largest="bytes", order=60),)
    table = TableView(("busbw", "algbw", "link_util", "time"))
    plots = (Plot("Collectives: bus bandwidth vs message size (nccl-tests conventions; t = slowest rank)", x="bytes",
                  y=("busbw",), series=("dtype",), panels="op", marks=("link_bandwidth",),
                  x_label="message size S (bytes)", y_labels=("busbw (GB/s)",)),)
    name = "collectives"
    description = ("all_reduce, all_gather, reduce_scatter, all_to_all, broadcast, send/recv across ranks: "
                   "algbw and busbw (nccl-tests conventions)")
    distributed = True

    def cases(self, suite: str) -> list[Case]:
        out = []
        for op in OPS:
            for pair in (PAIRS if op == "sendrecv" else (None,)):
                for dtype in DTYPES:
                    for size in SIZES[suite]:
                        label = f"{op}-{pair}" if pair else op
                        params = {"op": label, "dtype": dtype, "bytes": size}
                        out.append(Case(f"{label}/{dtype}/{human_bytes(size)}", params))
        return out

    @staticmethod
    def _layout(case: Case, world: int, rank: int) -> tuple[Op, Layout]:
        name, _, pair = case.params["op"].partition("-")
        op = OPS[name]
        count = case.params["bytes"] // DTYPES[case.params["dtype"]].itemsize
        if name in ("all_gather", "reduce_scatter", "all_to_all"):
            count -= count % world  # nccl-tests' rounding: equal chunks per rank
        return op, Layout(rank, world, count, _peer(pair, world) if pair else None)

    def device_bytes(self, case: Case, backend: Backend) -> Optional[int]:
        placement = placement_from_env()
        op, lay = self._layout(case, placement.world_size, placement.rank)
        inp, out = op.counts(lay)
        scratch = 4 * min(CHUNK, max(inp, out)) * 8  # int64 index, values and comparison chunks
        return (inp + (0 if op.in_place else out)) * DTYPES[case.params["dtype"]].itemsize + scratch

    def prepare(self, case: Case, backend: Backend) -> Workload:
        import torch.distributed as dist
        if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() < 2:
            raise CaseSkipped("collectives need 2 or more ranks (bench run --nproc N, or under torchrun / srun)")
        placement = placement_from_env()
        world, rank = dist.get_world_size(), dist.get_rank()
        op, lay = self._layout(case, world, rank)
        pair = case.params["op"].partition("-")[2]
        if pair and lay.peer is None:
            raise CaseSkipped("no pair of ranks across two nodes: every rank is on one node" if pair == "inter"
                              else "no two ranks share a node")
        dtype, device = DTYPES[case.params["dtype"]], backend.device
        n_in, n_out = op.counts(lay)
        inp = torch.empty(n_in, dtype=dtype, device=device)
        out = inp if op.in_place else torch.full((n_out,), math.nan, dtype=dtype, device=device)

        def reset() -> None:
            fill(inp, lambda index: op.input_value(lay, index))

        reset()

        def run() -> Optional[torch.Tensor]:
            op.call(dist, inp, out, lay)
            return out

        def check(result: torch.Tensor) -> Accuracy:
            return exact_check(result, lambda index: op.expected(lay, index).to(result.dtype),
                               "exact values from rank and index")

        size_bytes = lay.count * dtype.itemsize
        nodes = -(-world // placement.local_world_size)
        factor = op.factor(world)
        spec = backend.spec()
        # The datasheet link applies inside one node: across nodes the network is the limit.
        link = spec.link_bandwidth_Bps if spec and spec.link_bandwidth_Bps and (nodes == 1 or pair == "intra") else None

        def bus_metrics(stats: SampleStats) -> list[Metric]:
            busbw = size_bytes / stats.median * factor
            out_ = [Metric("busbw", busbw / 1e9, "GB/s", f"nccl-tests busbw: algbw x {factor:.3g}")]
            if link:
                out_.append(Metric("link_util", 100.0 * busbw / link, "%",
                                   f"of the datasheet's {spec.link} per direction"))
            return out_

        # A device whose graphs cannot hold a collective (Gaudi lazy mode without lazy collectives) times it eagerly.
        graphs_refused = backend.graph_collectives_unavailable()
        return Workload(run=run, check=check, work=Work(bytes=size_bytes, memory="interconnect"),
                        working_set_bytes=(n_in + n_out) * dtype.itemsize, reset=reset if op.in_place else None,
                        graphs_on_request=True, graph_safe=graphs_refused is None,
                        no_flush_reason="collectives are timed back to back, as nccl-tests times them",
                        extra_metrics=bus_metrics,
                        facts={"ranks": world, "nodes": nodes, "bus_factor": factor, "message_bytes": size_bytes,
                               **({"peer": lay.peer} if lay.peer is not None else {}),
                               **({"graphs_refused": graphs_refused} if graphs_refused else {})})


def _peer(pair: str, world: int) -> Optional[int]:
    local = placement_from_env().local_world_size
    if pair == "intra":
        return 1 if local >= 2 and world >= 2 else None
    return local if world > local else None


def fill(buffer: torch.Tensor, value_at: Callable[[torch.Tensor], torch.Tensor]) -> None:
    for start in range(0, buffer.numel(), CHUNK):
        index = torch.arange(start, min(start + CHUNK, buffer.numel()), device=buffer.device)
        buffer[start:start + CHUNK] = value_at(index).to(buffer.dtype)

"""Host<->device transfers: H2D and D2H from pinned and pageable host memory, and D2D.

Bytes: a host<->device copy moves the buffer once over the link, so bytes = buffer size (the
nvbandwidth convention); a device-to-device copy reads and writes device memory, so it is
counted the BabelStream way, 2 x buffer size, like membw's copy. Each copy's destination is
checked to equal its random source, bit for bit, before timing.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from accelbench.backends.base import Backend
from accelbench.benchmark import Benchmark, Case, Work, Workload
from accelbench.errors import CaseSkipped
from accelbench.microbench.membw import human_bytes, pow2_range
from accelbench.accuracy import exact_check
from accelbench.view import OverviewRow, Plot, TableView


@dataclass(frozen=True)
class Direction:
    src_on_device: bool
    dst_on_device: bool
    link_copies: int  # bytes counted per buffer byte


DIRECTIONS = {"h2d": Direction(False, True, 1), "d2h": Direction(True, False, 1), "d2d": Direction(True, True, 2)}
SIZES = {"quick": pow2_range(20, 26, 6), "standard": pow2_range(20, 30, 2), "full": pow2_range(16, 32, 1)}


class Transfer(Benchmark):
    name = "transfer"
    summary_groups = ("direction", "host_memory")
    overview = (OverviewRow("pinned host-to-device copy", "gbps", (("direction", "h2d"), ("pinned", True)),
                            same=("bytes",), compare_on=("direction", "host_memory", "bytes"), order=50),)
    table = TableView(("gbps", "bw_util", "time"), names=(("bw_util", "of datasheet bw"),))
    plots = (Plot("Host-device transfers", x="bytes", y=("gbps",), series=("direction", "host_memory"),
                  x_label="buffer size (bytes)", y_labels=("GB/s",)),)
    description = "Host<->device copies (pinned, pageable) and device-to-device: GB/s"

    def cases(self, suite: str) -> list[Case]:
        out = []
        for direction in DIRECTIONS:
            for host_memory in (("pinned", "pageable") if direction != "d2d" else ("device",)):
                for size in SIZES[suite]:
                    out.append(Case(f"{direction}/{host_memory}/{human_bytes(size)}",
                                    {"direction": direction, "host_memory": host_memory, "bytes": size}))
        return out

    def device_bytes(self, case: Case, backend: Backend) -> int:
        d = DIRECTIONS[case.params["direction"]]
        return (int(d.src_on_device) + int(d.dst_on_device)) * case.params["bytes"]

    def prepare(self, case: Case, backend: Backend) -> Workload:
        p = case.params
        if backend.device.type == "cpu":
            raise CaseSkipped("the cpu backend has no separate device memory: nothing to transfer")
        d = DIRECTIONS[p["direction"]]
        pinned = p["host_memory"] == "pinned"
        gen = torch.Generator(device="cpu").manual_seed(p["bytes"] % 2**31)
        source = torch.randint(0, 256, (p["bytes"],), dtype=torch.uint8, generator=gen)
        # Pinned through the backend: how a device pins host memory is its own (Gaudi names the HPU).
        src = source.to(backend.device) if d.src_on_device else (backend.pin(source) if pinned else source)
        if d.dst_on_device:
            dst = torch.empty(p["bytes"], dtype=torch.uint8, device=backend.device)
        else:
            dst = torch.empty(p["bytes"], dtype=torch.uint8)
            dst = backend.pin(dst) if pinned else dst
        # Poisoned with the source's complement: every byte a copy leaves unwritten differs.
        dst.copy_(torch.bitwise_not(source))
        # Pinned copies are asynchronous DMA; pageable ones the runtime stages through a
        # pinned bounce buffer. non_blocking mirrors what a user would write for each.
        non_blocking = pinned

        def run():
            return dst.copy_(src, non_blocking=non_blocking)

        def check(result):
            return exact_check(result.cpu(), lambda index: source[index], "bitwise equality with the random source buffer")

        over_link = not (d.src_on_device and d.dst_on_device)
        return Workload(run=run, check=check,
                        work=Work(bytes=d.link_copies * p["bytes"], memory="link" if over_link else "device"),
                        working_set_bytes=2 * p["bytes"], graph_safe=False,
                        facts={"pinned": pinned} if p["direction"] != "d2d" else {})

"""The backend interface: everything device-specific, and nothing else (docs/extending.md).

A backend adapts one device family to what the harness needs: a device handle, synchronize,
a device-clock timer, memory stats, a cache flush, graph replay, the datasheet entry, a
telemetry reader and the collectives library. Benchmarks and the harness never call a device
API directly. Adding a backend is one new file in this package that subclasses `Backend`.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Optional

import torch

from accelbench.specs import DeviceSpec
from accelbench.telemetry import Telemetry


class TimingEvent(ABC):
    """A point on the device's own clock."""

    @abstractmethod
    def record(self) -> None: ...

    @abstractmethod
    def seconds_until(self, later: "TimingEvent") -> float:
        """Seconds from this event to `later`; valid once the device has synchronized."""


class FrameworkEvent(TimingEvent):
    """A framework's device event (torch.cuda.Event, torch.hpu.Event): recorded on the device's
    stream, `elapsed_time` in milliseconds."""

    def __init__(self, event: Any):
        self.event = event

    def record(self) -> None:
        self.event.record()

    def seconds_until(self, later: "TimingEvent") -> float:
        assert isinstance(later, FrameworkEvent)
        return self.event.elapsed_time(later.event) / 1e3


@dataclass(frozen=True)
class CapturedGraph:
    replay: Callable[[], None]
    output: Any  # what the captured call returned: the buffer each replay writes


@dataclass(frozen=True)
class MemoryStats:
    peak_allocated_bytes: Optional[int]
    total_bytes: Optional[int]


class Backend(ABC):
    name: ClassVar[str]
    # Priority for `--backend auto`: the highest available wins.
    auto_priority: ClassVar[int] = 0
    collectives_backend: ClassVar[str]
    timer_description: ClassVar[str]

    def __init__(self, device_index: int = 0):
        self.device_index = device_index
        self._flush_buffer: Optional[torch.Tensor] = None
        self._launch_overhead_s: dict[bool, float] = {}

    # --- discovery -------------------------------------------------------------------------
    @classmethod
    @abstractmethod
    def unavailable_reason(cls) -> Optional[str]:
        """None when this backend can run here, else one line saying what is missing and how
        to install it."""

    @classmethod
    def select_device(cls, device_index: int) -> None:
        """Choose the device before the backend's software first uses it, for frameworks that fix
        it then (Gaudi's bridge reads HLS_MODULE_ID / HABANA_VISIBLE_MODULES when it takes its card)."""

    @classmethod
    def device_for_rank(cls, local_rank: int) -> int:
        """The device index a rank of a multi-rank run uses: its local rank, one device each."""
        return local_rank

    @classmethod
    def rank_environment(cls) -> dict[str, str]:
        """Variables each rank of a multi-rank run needs before its framework loads (the launcher
        sets them where the user has not)."""
        return {}

    # --- device ------------------------------------------------------------------------------
    @property
    @abstractmethod
    def device(self) -> torch.device: ...

    @abstractmethod
    def device_name(self) -> str: ...

    @abstractmethod
    def device_count(self) -> int: ...

    @abstractmethod
    def synchronize(self) -> None: ...

    @abstractmethod
    def event(self) -> TimingEvent: ...

    def mark_step(self) -> None:
        """Flush queued work to the device where the framework queues lazily (HPU lazy mode)."""

    probes_budget: ClassVar[bool] = False  # budget_probe measures calls (else wall time is judged)

    def budget_probe(self, call: Callable[[], Any]) -> Optional[float]:
        """Seconds one call costs, measured so that a busy host does not move it, for judging the
        call against a suite's per-call budget (admission.py); None where the first call's wall
        time serves (the device does the work, and a busy host barely moves it)."""
        return None

    def hold_queue(self) -> None:
        """Queue a short stretch of device-side waiting (tens of µs) so that the start event
        queued next is recorded behind device work, not on an idle device, where it would
        timestamp at once and put the host's launch of the timed call inside the interval.
        A no-op where the device is synchronous (CPU) or offers no device-side wait."""

    @abstractmethod
    def memory_stats(self) -> MemoryStats: ...

    def reset_peak_memory(self) -> None:
        pass

    def free_memory_bytes(self) -> Optional[int]:
        """Device memory a case may still allocate, or None where unknown."""
        return None

    @abstractmethod
    def cache_bytes(self) -> Optional[int]:
        """Size of the last-level cache that repeated runs would hit (GPU L2, CPU LLC)."""

    @abstractmethod
    def spec(self) -> Optional[DeviceSpec]: ...

    @abstractmethod
    def telemetry(self) -> Telemetry: ...

    @abstractmethod
    def versions(self) -> dict[str, Any]: ...

    def features(self) -> set[str]:
        """Optional capabilities: "graphs", "tf32", "fp16", "bf16", "fp64", "fp8", ..."""
        return set()

    def supports(self, feature: str) -> bool:
        return feature in self.features()

    def emulated_matmul_dtypes(self) -> dict[str, str]:
        """Dtypes whose matrix products this device runs in software only, each with the reason
        (e.g. bf16 on a CPU without avx512_bf16 or AMX). Figures in them are labelled emulated."""
        return {}

    @property
    def reference_device(self) -> torch.device:
        """Where fp64 references are computed: the device itself if it does fp64, else CPU."""
        return self.device if self.supports("fp64") else torch.device("cpu")

    # --- how benchmarks meet the device: inputs, host memory, compilation ----------------------
    def generator(self, seed: int) -> torch.Generator:
        """A seeded generator that draws random inputs on this device (`torch.randn(...,
        generator=g, device=backend.device)`): on the device where the framework has device
        generators, else the framework's own choice (Gaudi's random ops take a CPU generator)."""
        return torch.Generator(device=self.device).manual_seed(seed)

    def pin(self, host: torch.Tensor) -> torch.Tensor:
        """`host` in page-locked memory, for asynchronous copies to and from this device."""
        return host.pin_memory()

    def compile_backend(self) -> Optional[str]:
        """The torch.compile backend that compiles a step for this device where it has no graph
        replay (None: none, or graphs are the way)."""
        return None

    def graph_collectives_unavailable(self) -> Optional[str]:
        """Why a collective cannot run inside a captured graph on this device, or None."""
        return None

    # --- shared mechanics --------------------------------------------------------------------
    def flush_cache(self) -> None:
        """Evict the last-level cache by writing a buffer twice its size."""
        if self._flush_buffer is None:
            size = 2 * (self.cache_bytes() or 64 * 2**20)
            self._flush_buffer = torch.empty(size, dtype=torch.uint8, device=self.device)
        self._flush_buffer.fill_(1)
        self.mark_step()

    def capture_graph(self, fn: Callable[[], Any]) -> Optional[CapturedGraph]:
        """`fn` captured as a device graph (its replay, and the output each replay writes), or
        None if this backend has no graphs."""
        return None

    def launch_overhead_s(self, replayed: bool) -> float:
        """What one more launch costs back to back: `replayed` in a graph (where the backend has
        graphs), else issued eagerly from the host. 100 launches of a one-element kernel, timed on
        the device's clock, once per backend and way. Used to state how much of a many-launch
        figure is launch overhead."""
        replayed = replayed and self.supports("graphs")
        if replayed not in self._launch_overhead_s:
            x = torch.zeros(1, device=self.device)
            launches = 100

            def tiny() -> torch.Tensor:
                for _ in range(launches):
                    x.add_(1.0)
                return x

            graph = self.capture_graph(tiny) if replayed else None
            call = graph.replay if graph is not None else tiny
            for _ in range(3):
                call()
                self.mark_step()
            self.synchronize()
            start, end = self.event(), self.event()
            start.record()
            call()
            self.mark_step()
            end.record()
            self.synchronize()
            self._launch_overhead_s[replayed] = start.seconds_until(end) / launches
        return self._launch_overhead_s[replayed]

    def collectives_unavailable(self) -> Optional[str]:
        """None when the collectives library (`collectives_backend`) can be used, else why not."""
        import torch.distributed as dist
        if not dist.is_available():
            return "torch.distributed is not built into this PyTorch"
        available = {"nccl": dist.is_nccl_available, "gloo": dist.is_gloo_available}.get(self.collectives_backend)
        if available is not None and not available():
            return f"{self.collectives_backend} is not available in this PyTorch build"
        return None

    def release_memory(self) -> None:
        """Return cached device memory between cases, so one case's leftovers cannot make the
        next one run out of memory."""

    def is_out_of_memory(self, exc: BaseException) -> bool:
        """Whether `exc` says the device ran out of memory (a case that does not fit is skipped
        with its numbers, not failed)."""
        return isinstance(exc, torch.OutOfMemoryError)

    def close(self) -> None:
        self._flush_buffer = None

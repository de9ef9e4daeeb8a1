"""CPU backend: host clock after a (no-op) synchronize, LLC from sysfs, estimated peaks."""
from __future__ import annotations

import platform
import time
from typing import Any, Optional

import torch

from accelbench.backends.base import Backend, MemoryStats, TimingEvent
from accelbench.specs import DeviceSpec, estimate_cpu_spec, read_cpu_info
from accelbench.telemetry import Telemetry
from accelbench.telemetry.rapl import open_rapl


class HostClockEvent(TimingEvent):
    def __init__(self) -> None:
        self.ns: Optional[int] = None

    def record(self) -> None:
        self.ns = time.perf_counter_ns()

    def seconds_until(self, later: "TimingEvent") -> float:
        assert isinstance(later, HostClockEvent) and self.ns is not None and later.ns is not None
        return (later.ns - self.ns) / 1e9


def read_llc_bytes() -> Optional[int]:
    """Largest cache level of cpu0 from sysfs ("32768K" -> bytes)."""
    best = None
    for index in range(8):
        try:
            with open(f"/sys/devices/system/cpu/cpu0/cache/index{index}/size") as f:
                text = f.read().strip()
        except OSError:
            continue
        scale = {"K": 2**10, "M": 2**20, "G": 2**30}.get(text[-1:], 1)
        digits = text[:-1] if text[-1:] in "KMG" else text
        if digits.isdigit():
            best = max(best or 0, int(digits) * scale)
    return best


class CpuBackend(Backend):
    name = "cpu"
    auto_priority = 0
    collectives_backend = "gloo"
    timer_description = "perf_counter_ns after synchronize"

    def __init__(self, device_index: int = 0):
        super().__init__(device_index)
        self._telemetry: Optional[Telemetry] = None
        self._spec: Optional[DeviceSpec] = None

    @classmethod
    def unavailable_reason(cls) -> Optional[str]:
        return None

    @property
    def device(self) -> torch.device:
        return torch.device("cpu")

    def device_name(self) -> str:
        return read_cpu_info().model

    def device_count(self) -> int:
        return 1

    def synchronize(self) -> None:
        pass  # CPU ops are synchronous

    def event(self) -> TimingEvent:
        return HostClockEvent()

    def memory_stats(self) -> MemoryStats:
        return MemoryStats(None, None)

    def cache_bytes(self) -> Optional[int]:
        return read_llc_bytes()

    def spec(self) -> Optional[DeviceSpec]:
        if self._spec is None:
            self._spec = estimate_cpu_spec(read_cpu_info(cores=torch.get_num_threads()))
        return self._spec

    def telemetry(self) -> Telemetry:
        if self._telemetry is None:
            self._telemetry = open_rapl()
        return self._telemetry

    def versions(self) -> dict[str, Any]:
        return {"torch": torch.__version__, "python": platform.python_version(),
                "threads": torch.get_num_threads()}

    def features(self) -> set[str]:
        return {"fp64", "fp16", "bf16"}

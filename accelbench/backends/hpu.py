"""Intel Gaudi (HPU) backend, through Intel's PyTorch bridge `habana_frameworks.torch`.

Written to Intel's documented API and tested with a stand-in module (tests/standin); not yet
run on Gaudi hardware. What it relies on:
- `import habana_frameworks.torch` registers `torch.hpu`; `habana_frameworks.torch.core`
  (htcore) gives `mark_step()`, which flushes the lazy-mode graph to the device but does not
  wait for it: waiting is `torch.hpu.synchronize()`.
- PT_HPU_LAZY_MODE is read by the bridge at import: "1" lazy (ops are queued until
  mark_step), "0" eager. It is read here before the import and recorded with the run.
- Timing: `torch.hpu.Event(enable_timing=True)`, `elapsed_time` in ms, like CUDA events.
- Memory: `torch.hpu.max_memory_allocated`, `reset_peak_memory_stats`, `memory_stats()["Limit"]`.
- Graphs: `habana_frameworks.torch.hpu.HPUGraph` captured on an `hpu.Stream`, then `replay()`.
- Collectives: HCCL, made available to torch.distributed by importing
  `habana_frameworks.torch.distributed.hccl`.
"""
from __future__ import annotations

import importlib
import importlib.util
import os
import platform
import re
from typing import Any, Callable, Optional

import torch

from accelbench.backends.base import Backend, FrameworkEvent, MemoryStats, TimingEvent
from accelbench.errors import BackendUnavailable
from accelbench.specs import DeviceSpec, lookup_spec
from accelbench.telemetry import Telemetry
from accelbench.telemetry.hlml import open_gaudi_telemetry

INSTALL_HINT = ("install the Intel Gaudi software stack and its PyTorch bridge "
                "(https://docs.habana.ai/en/latest/Installation_Guide/) or run in Intel's Gaudi PyTorch container")
# On-chip SRAM acting as the last-level cache (Intel Gaudi 2 / Gaudi 3 white papers).
SRAM_BYTES = {2: 48 * 2**20, 3: 96 * 2**20}


def gaudi_software_missing() -> Optional[str]:
    if importlib.util.find_spec("habana_frameworks") is None:
        return f"Intel Gaudi software not found (habana_frameworks.torch is not importable): {INSTALL_HINT}"
    return None


def lazy_mode_requested() -> bool:
    """PT_HPU_LAZY_MODE as the bridge will read it; unset means lazy on the Gaudi software
    releases this was written against."""
    return os.environ.get("PT_HPU_LAZY_MODE", "1") != "0"


def bridge():
    """(habana_frameworks.torch, its core module), imported on first use."""
    ht = importlib.import_module("habana_frameworks.torch")
    htcore = importlib.import_module("habana_frameworks.torch.core")
    return ht, htcore


class HpuBackend(Backend):
    name = "hpu"
    auto_priority = 10
    collectives_backend = "hccl"
    timer_description = "HPU events"
    device_type = "hpu"  # the torch device type the bridge registers (tests' stand-in runs on "cpu")

    def __init__(self, device_index: int = 0):
        super().__init__(device_index)
        self.lazy = lazy_mode_requested()  # before the import, which fixes the mode
        self.ht, self.htcore = bridge()
        if not torch.hpu.is_available():
            raise BackendUnavailable(self.no_device_message())
        if device_index >= torch.hpu.device_count():
            raise BackendUnavailable(f"HPU {device_index} does not exist ({torch.hpu.device_count()} visible)")
        self._telemetry: Optional[Telemetry] = None

    @staticmethod
    def no_device_message() -> str:
        return ("Intel Gaudi software is installed but no HPU is visible (torch.hpu.is_available() is False): "
                "check `hl-smi`, the habanalabs driver and HABANA_VISIBLE_DEVICES")

    @classmethod
    def unavailable_reason(cls) -> Optional[str]:
        missing = gaudi_software_missing()
        if missing:
            return missing
        try:
            bridge()
        except Exception as exc:  # a broken install is as unusable as a missing one
            return f"habana_frameworks.torch failed to import ({type(exc).__name__}: {exc}): {INSTALL_HINT}"
        if not torch.hpu.is_available():
            return cls.no_device_message()
        return None

    @property
    def device(self) -> torch.device:
        return torch.device(self.device_type, self.device_index)

    def device_name(self) -> str:
        return str(torch.hpu.get_device_name(self.device_index))

    @property
    def generation(self) -> Optional[int]:
        match = re.search(r"gaudi\s*-?(\d)|hl-(\d)\d\d", self.device_name(), re.IGNORECASE)
        return int(match.group(1) or match.group(2)) if match else None

    def device_count(self) -> int:
        return torch.hpu.device_count()

    def synchronize(self) -> None:
        torch.hpu.synchronize()

    def event(self) -> TimingEvent:
        return FrameworkEvent(torch.hpu.Event(enable_timing=True))

    def mark_step(self) -> None:
        if self.lazy:
            self.htcore.mark_step()

    def memory_stats(self) -> MemoryStats:
        stats = torch.hpu.memory_stats(self.device_index) or {}
        return MemoryStats(torch.hpu.max_memory_allocated(self.device_index), stats.get("Limit"))

    def reset_peak_memory(self) -> None:
        torch.hpu.reset_peak_memory_stats(self.device_index)

    def cache_bytes(self) -> Optional[int]:
        return SRAM_BYTES.get(self.generation)

    def spec(self) -> Optional[DeviceSpec]:
        return lookup_spec(self.device_name())

    def telemetry(self) -> Telemetry:
        if self._telemetry is None:
            self._telemetry = open_gaudi_telemetry(self.device_index)
        return self._telemetry

    def versions(self) -> dict[str, Any]:
        return {"torch": torch.__version__, "python": platform.python_version(),
                "habana_frameworks": getattr(self.ht, "__version__", None),
                "lazy_mode": self.lazy, "PT_HPU_LAZY_MODE": os.environ.get("PT_HPU_LAZY_MODE", "unset"),
                "gaudi_generation": self.generation}

    def features(self) -> set[str]:
        feats = {"fp16", "bf16", "graphs"}
        if self.generation in (2, 3):
            feats.add("fp8")
        return feats

    def collectives_unavailable(self) -> Optional[str]:
        try:
            importlib.import_module("habana_frameworks.torch.distributed.hccl")
        except Exception as exc:
            return f"habana_frameworks.torch.distributed.hccl failed to import: {exc}"
        return None

    def capture_graph(self, fn: Callable[[], Any]) -> Optional[Callable[[], None]]:
        graph = self.ht.hpu.HPUGraph()
        stream = self.ht.hpu.Stream()
        with self.ht.hpu.stream(stream):
            graph.capture_begin()
            fn()
            graph.capture_end()
        return graph.replay

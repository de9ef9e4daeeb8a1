"""Intel Gaudi (HPU) backend, through Intel's PyTorch bridge `habana_frameworks.torch`.

Written to Intel's documented API (Gaudi software 1.19 and later, where eager mode is the
default) and tested with a strict stand-in module (tests/standin); not yet run on Gaudi
hardware. What it relies on:
- Execution mode: read from the bridge after import (`habana_frameworks.torch.utils.internal.
  is_lazy()`), never guessed from PT_HPU_LAZY_MODE: unset means eager on current releases
  (lazy is a legacy fallback, PT_HPU_LAZY_MODE=1). Lazy mode queues ops until
  `htcore.mark_step()`; eager mode runs them as issued.
- Graphs: `habana_frameworks.torch.hpu.HPUGraph` exists in lazy mode only, so graph replay is
  offered in lazy mode only; in eager mode cases run without graphs and say so.
- Device: the bridge uses one card per process, always device index 0; the card is chosen by
  module ID in HABANA_VISIBLE_MODULES (and HLS_MODULE_ID) before the bridge is imported.
  `--device N` means module N; telemetry opens the HLML handle whose module ID is N.
- Timing: `torch.hpu.Event(enable_timing=True)`, `elapsed_time` in ms, like CUDA events.
- Memory: `torch.hpu.max_memory_allocated`, `reset_peak_memory_stats`, `memory_stats()["Limit"]`.
- Version: from the `habana-torch-plugin` distribution's metadata (the bridge has no __version__).
- Collectives: HCCL, made available to torch.distributed by importing
  `habana_frameworks.torch.distributed.hccl`.
"""
from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import os
import platform
import re
import sys
from typing import Any, Callable, Optional

import torch

from accelbench.backends.base import Backend, CapturedGraph, FrameworkEvent, MemoryStats, TimingEvent
from accelbench.errors import BackendUnavailable
from accelbench.specs import DeviceSpec, lookup_spec
from accelbench.telemetry import Telemetry
from accelbench.telemetry.hlml import open_gaudi_telemetry

INSTALL_HINT = ("install the Intel Gaudi software stack and its PyTorch bridge "
                "(https://docs.habana.ai/en/latest/Installation_Guide/) or run in Intel's Gaudi PyTorch container")
# On-chip SRAM acting as the last-level cache (Intel Gaudi 2 / Gaudi 3 white papers).
SRAM_BYTES = {2: 48 * 2**20, 3: 96 * 2**20}
MODULE_ENV = ("HABANA_VISIBLE_MODULES", "HLS_MODULE_ID")


def gaudi_software_missing() -> Optional[str]:
    if importlib.util.find_spec("habana_frameworks") is None:
        return f"Intel Gaudi software not found (habana_frameworks.torch is not importable): {INSTALL_HINT}"
    return None


def bridge_imported() -> bool:
    return "habana_frameworks.torch" in sys.modules


def select_module(module_id: int) -> None:
    """Make module `module_id` the process's one card. Must run before the bridge is imported:
    the bridge reads HABANA_VISIBLE_MODULES once, at import. Module 0 leaves the choice to the
    bridge's default, or to a HABANA_VISIBLE_MODULES the user set."""
    if module_id == 0:
        return
    wanted = str(module_id)
    if bridge_imported():
        if os.environ.get("HABANA_VISIBLE_MODULES") != wanted:
            raise BackendUnavailable(f"HPU module {module_id} must be chosen before the Gaudi bridge is "
                                     "imported: set HABANA_VISIBLE_MODULES in a new process")
        return
    for var in MODULE_ENV:
        os.environ[var] = wanted


def current_module(default: int) -> int:
    """The module ID this process's card has: what HLS_MODULE_ID / HABANA_VISIBLE_MODULES say."""
    for var in MODULE_ENV:
        first = os.environ.get(var, "").split(",")[0].strip()
        if first.isdigit():
            return int(first)
    return default


def bridge():
    """(habana_frameworks.torch, its core module), imported on first use."""
    ht = importlib.import_module("habana_frameworks.torch")
    htcore = importlib.import_module("habana_frameworks.torch.core")
    return ht, htcore


def bridge_is_lazy() -> bool:
    """The execution mode the imported bridge runs in."""
    try:
        internal = importlib.import_module("habana_frameworks.torch.utils.internal")
        return bool(internal.is_lazy())
    except (ImportError, AttributeError):  # older bridges: the variable, with lazy as their default
        return os.environ.get("PT_HPU_LAZY_MODE", "1") != "0"


def plugin_version() -> Optional[str]:
    try:
        return importlib.metadata.version("habana-torch-plugin")
    except importlib.metadata.PackageNotFoundError:
        return None


class HpuBackend(Backend):
    name = "hpu"
    auto_priority = 10
    collectives_backend = "hccl"
    timer_description = "HPU events"
    device_type = "hpu"  # the torch device type the bridge registers (tests' stand-in runs on "cpu")

    def __init__(self, device_index: int = 0):
        super().__init__(device_index)
        select_module(device_index)
        self.module_id = current_module(device_index)
        self.ht, self.htcore = bridge()
        self.lazy = bridge_is_lazy()
        if not torch.hpu.is_available():
            raise BackendUnavailable(self.no_device_message())
        self._telemetry: Optional[Telemetry] = None

    @classmethod
    def select_device(cls, device_index: int) -> None:
        select_module(device_index)

    @classmethod
    def device_for_rank(cls, local_rank: int) -> int:
        # Intel's bridge maps each rank to a card itself, from the launcher's LOCAL_RANK (Intel Gaudi
        # docs, "Distributed Backend Initialization"): no module is chosen here.
        return 0

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
        return torch.device(self.device_type, 0)  # the process's one card, whichever module it is

    def device_name(self) -> str:
        return str(torch.hpu.get_device_name(0))

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
        stats = torch.hpu.memory_stats(0) or {}
        return MemoryStats(torch.hpu.max_memory_allocated(0), stats.get("Limit"))

    def free_memory_bytes(self) -> Optional[int]:
        stats = torch.hpu.memory_stats(0) or {}
        if "Limit" in stats and "InUse" in stats:
            return int(stats["Limit"]) - int(stats["InUse"])
        return None

    def reset_peak_memory(self) -> None:
        torch.hpu.reset_peak_memory_stats(0)

    def cache_bytes(self) -> Optional[int]:
        return SRAM_BYTES.get(self.generation)

    def spec(self) -> Optional[DeviceSpec]:
        return lookup_spec(self.device_name())

    def telemetry(self) -> Telemetry:
        if self._telemetry is None:
            self._telemetry = open_gaudi_telemetry(self.module_id)
        return self._telemetry

    def versions(self) -> dict[str, Any]:
        return {"torch": torch.__version__, "python": platform.python_version(),
                "habana_torch_plugin": plugin_version(),
                "execution_mode": "lazy" if self.lazy else "eager",
                "PT_HPU_LAZY_MODE": os.environ.get("PT_HPU_LAZY_MODE", "unset"),
                "module_id": self.module_id,
                "HABANA_VISIBLE_MODULES": os.environ.get("HABANA_VISIBLE_MODULES", "unset"),
                "graphs": "HPUGraph (lazy mode)" if self.lazy else
                "none: HPUGraph exists in lazy mode only; cases run eagerly, launch overhead included",
                "gaudi_generation": self.generation}

    def features(self) -> set[str]:
        feats = {"fp16", "bf16"}
        if self.lazy:
            feats.add("graphs")
        if self.generation in (2, 3):
            feats.add("fp8")
        return feats

    def collectives_unavailable(self) -> Optional[str]:
        try:
            importlib.import_module("habana_frameworks.torch.distributed.hccl")
        except Exception as exc:
            return f"habana_frameworks.torch.distributed.hccl failed to import: {exc}"
        return None

    def capture_graph(self, fn: Callable[[], Any]) -> Optional[CapturedGraph]:
        if not self.lazy:
            return None
        # Work still queued would be captured into the graph and replayed with it.
        self.mark_step()
        self.synchronize()
        graph = self.ht.hpu.HPUGraph()
        stream = self.ht.hpu.Stream()
        with self.ht.hpu.stream(stream):
            graph.capture_begin()
            output = fn()
            graph.capture_end()
        return CapturedGraph(graph.replay, output)

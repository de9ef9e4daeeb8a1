"""Intel Gaudi (HPU) backend, through Intel's PyTorch bridge `habana_frameworks.torch`.

Written to Intel's documented API and public reports of what breaks, tested with a stand-in bridge
whose tensors report device `hpu` (tests/standin); not yet run on Gaudi hardware. What it relies on:
- Execution mode: read from the bridge after import (`habana_frameworks.torch.utils.internal.
  is_lazy()`), never guessed from PT_HPU_LAZY_MODE, whose default moved: Gaudi software 1.19 and
  1.20 run lazy when it is unset, later lines eager (Intel's docs now call lazy a legacy fallback).
  Lazy mode queues ops until `htcore.mark_step()`; eager mode runs them as issued.
- Loading: from PyTorch 2.5 the bridge registers a device-backend autoload entry point, so
  `import torch` already imports it (in 1.19 whenever PT_HPU_LAZY_MODE is not 1). Nothing here may
  assume the bridge is not yet loaded.
- Graphs: `habana_frameworks.torch.hpu.HPUGraph` exists in lazy mode only, so graph replay is
  offered in lazy mode only. In eager mode the supported way to fuse a step is
  `torch.compile(backend="hpu_backend")`, which the decode graphs engine uses instead. A collective
  inside an HPU graph needs PT_HPU_ENABLE_LAZY_COLLECTIVES=true before the bridge loads: the
  launcher sets it for every rank.
- Device: the bridge drives one card per process, always device index 0. It takes its card when
  the process first uses the device (not at import): HLS_MODULE_ID, else HABANA_VISIBLE_MODULES,
  and under a launcher it sets HLS_MODULE_ID per local rank. `--device N` sets both variables
  while the device is still untaken; telemetry opens the card the bridge says it took.
- Inputs: random draws take a CPU `torch.Generator()` (the bridge has no device generator; its
  random ops accept a CPU one for HPU tensors). Host memory is pinned with `device="hpu"`.
- No fp64: the bridge computes Double as Float, so every fp64 reference is computed on the host.
- Out of memory: the bridge raises a plain RuntimeError naming PT_DEVMEM, recognised here.
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
import warnings
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
# The bridge's plain RuntimeError when device memory runs out ("... PT_DEVMEM Allocation failed ...").
OUT_OF_MEMORY_MARKS = ("PT_DEVMEM", "Allocation failed")
# Collectives inside HPU graphs (lazy mode) need this before the bridge loads.
LAZY_COLLECTIVES = "PT_HPU_ENABLE_LAZY_COLLECTIVES"


def gaudi_software_missing() -> Optional[str]:
    if importlib.util.find_spec("habana_frameworks") is None:
        return f"Intel Gaudi software not found (habana_frameworks.torch is not importable): {INSTALL_HINT}"
    return None


def bridge_imported() -> bool:
    return "habana_frameworks.torch" in sys.modules


def device_taken() -> bool:
    """Whether this process's bridge has already taken its card (after which the module
    variables are no longer read). A bridge without `is_initialized` is taken as having done so."""
    if not bridge_imported() or not hasattr(torch, "hpu"):
        return False
    is_initialized = getattr(torch.hpu, "is_initialized", None)
    return True if is_initialized is None else bool(is_initialized())


def select_module(module_id: int) -> None:
    """Make module `module_id` the process's one card. The bridge reads HLS_MODULE_ID /
    HABANA_VISIBLE_MODULES when it takes its card, on first use of the device, so this works after
    import (the autoload entry point imports the bridge with torch) but not after first use.
    Module 0 leaves the choice to the bridge, or to the variables the user or launcher set."""
    if module_id == 0:
        return
    wanted = str(module_id)
    if device_taken():
        if module_from_environment() != module_id:
            raise BackendUnavailable(f"HPU module {module_id} must be chosen before this process first uses its "
                                     "HPU: set HLS_MODULE_ID (or HABANA_VISIBLE_MODULES) in a new process")
        return
    for var in MODULE_ENV:
        os.environ[var] = wanted


def module_from_environment() -> Optional[int]:
    """The module the bridge takes or took: HLS_MODULE_ID (the bridge sets it per local rank),
    else HABANA_VISIBLE_MODULES where it names one module only; None where it could be any."""
    first = os.environ.get("HLS_MODULE_ID", "").strip()
    if first.isdigit():
        return int(first)
    visible = [m.strip() for m in os.environ.get("HABANA_VISIBLE_MODULES", "").split(",") if m.strip()]
    if len(visible) == 1 and visible[0].isdigit():
        return int(visible[0])
    return None


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
    device_type = "hpu"  # the torch device type the bridge registers

    def __init__(self, device_index: int = 0):
        super().__init__(device_index)
        select_module(device_index)
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

    @classmethod
    def rank_environment(cls) -> dict[str, str]:
        return {LAZY_COLLECTIVES: "true"}

    @property
    def module_id(self) -> Optional[int]:
        """The card's module ID, once the bridge has taken it (None where it cannot be told)."""
        self.synchronize()  # the bridge takes its card on first use: make sure it has
        return module_from_environment()

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
            # The card the bridge took, never a guess: with several cards and no variable saying
            # which, the bridge may have taken any free one.
            self._telemetry = open_gaudi_telemetry(self.module_id)
        return self._telemetry

    def versions(self) -> dict[str, Any]:
        return {"torch": torch.__version__, "python": platform.python_version(),
                "habana_torch_plugin": plugin_version(),
                "execution_mode": "lazy" if self.lazy else "eager",
                "PT_HPU_LAZY_MODE": os.environ.get("PT_HPU_LAZY_MODE", "unset"),
                "module_id": self.module_id,
                "HABANA_VISIBLE_MODULES": os.environ.get("HABANA_VISIBLE_MODULES", "unset"),
                "HLS_MODULE_ID": os.environ.get("HLS_MODULE_ID", "unset"),
                LAZY_COLLECTIVES: os.environ.get(LAZY_COLLECTIVES, "unset"),
                "graphs": "HPUGraph (lazy mode)" if self.lazy else
                "none: HPUGraph exists in lazy mode only; cases run eagerly, launch overhead included"
                + ("; the decode step compiles with torch.compile(backend='hpu_backend')" if self.compile_backend() else ""),
                "gaudi_generation": self.generation}

    def features(self) -> set[str]:
        feats = {"fp16", "bf16"}
        if self.lazy:
            feats.add("graphs")
        if self.generation in (2, 3):
            feats.add("fp8")
        return feats

    def generator(self, seed: int) -> torch.Generator:
        # "Device type HPU is not supported for torch.Generator() api": the bridge's random ops
        # take a CPU generator and draw on the HPU tensor they fill.
        return torch.Generator().manual_seed(seed)

    def pin(self, host: torch.Tensor) -> torch.Tensor:
        # Pinned for the HPU by name: without a device, the torch Gaudi 1.19 ships pins for CUDA.
        with warnings.catch_warnings():  # torch 2.6+ calls the argument deprecated; Gaudi's torch needs it
            warnings.simplefilter("ignore", DeprecationWarning)
            return host.pin_memory(device=self.device_type)

    def compile_backend(self) -> Optional[str]:
        if self.lazy:
            return None  # lazy mode replays HPU graphs instead
        try:
            from torch._dynamo import list_backends
        except ImportError:
            return None
        return "hpu_backend" if "hpu_backend" in list_backends(exclude_tags=()) else None

    def graph_collectives_unavailable(self) -> Optional[str]:
        if self.lazy and os.environ.get(LAZY_COLLECTIVES, "").lower() not in ("1", "true"):
            return (f"a collective inside an HPU graph needs {LAZY_COLLECTIVES}=true set before the Gaudi bridge "
                    "loads (bench run --nproc sets it for its ranks; set it yourself under torchrun or srun)")
        return None

    def is_out_of_memory(self, exc: BaseException) -> bool:
        text = str(exc)
        return super().is_out_of_memory(exc) or (isinstance(exc, RuntimeError)
                                                 and all(mark in text for mark in OUT_OF_MEMORY_MARKS))

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

"""NVIDIA CUDA backend: CUDA events, L2 from device properties, CUDA graphs, NVML telemetry."""
from __future__ import annotations

import platform
from typing import Any, Callable, Optional

import torch

from accelbench.backends.base import Backend, CapturedGraph, FrameworkEvent, MemoryStats, TimingEvent
from accelbench.specs import DeviceSpec, lookup_spec
from accelbench.telemetry import Telemetry
from accelbench.telemetry.nvml import open_nvml


HOLD_CYCLES = 100_000


class CudaBackend(Backend):
    name = "cuda"
    auto_priority = 20
    collectives_backend = "nccl"
    timer_description = "CUDA events"

    def __init__(self, device_index: int = 0):
        super().__init__(device_index)
        if device_index >= torch.cuda.device_count():
            from accelbench.errors import BackendUnavailable
            raise BackendUnavailable(
                f"CUDA device {device_index} does not exist ({torch.cuda.device_count()} visible)")
        torch.cuda.set_device(device_index)
        self._props = torch.cuda.get_device_properties(device_index)
        self._telemetry: Optional[Telemetry] = None

    @classmethod
    def unavailable_reason(cls) -> Optional[str]:
        if not torch.cuda.is_available():
            if torch.version.cuda is None:
                return ("this PyTorch build has no CUDA support (torch "
                        f"{torch.__version__}); install a CUDA build of torch")
            return "PyTorch was built with CUDA but sees no GPU (driver missing or CUDA_VISIBLE_DEVICES empty)"
        return None

    @property
    def device(self) -> torch.device:
        return torch.device("cuda", self.device_index)

    def device_name(self) -> str:
        return self._props.name

    def device_count(self) -> int:
        return torch.cuda.device_count()

    def synchronize(self) -> None:
        torch.cuda.synchronize(self.device_index)

    def event(self) -> TimingEvent:
        return FrameworkEvent(torch.cuda.Event(enable_timing=True))

    def hold_queue(self) -> None:
        # A spin of HOLD_CYCLES (about 50 µs at 2 GHz): longer than the host takes to queue the start
        # event and the first call behind it.
        torch.cuda._sleep(HOLD_CYCLES)

    def memory_stats(self) -> MemoryStats:
        return MemoryStats(torch.cuda.max_memory_allocated(self.device_index), self._props.total_memory)

    def reset_peak_memory(self) -> None:
        torch.cuda.reset_peak_memory_stats(self.device_index)

    def release_memory(self) -> None:
        torch.cuda.empty_cache()

    def free_memory_bytes(self) -> Optional[int]:
        free, _total = torch.cuda.mem_get_info(self.device_index)
        # Memory our caching allocator holds but does not use is free to this process too.
        return free + torch.cuda.memory_reserved(self.device_index) - torch.cuda.memory_allocated(self.device_index)

    def cache_bytes(self) -> Optional[int]:
        return getattr(self._props, "L2_cache_size", None) or None

    def spec(self) -> Optional[DeviceSpec]:
        return lookup_spec(self.device_name())

    def telemetry(self) -> Telemetry:
        if self._telemetry is None:
            bus = getattr(self._props, "pci_bus_id", None)
            pci = None
            if bus is not None:
                pci = (f"{getattr(self._props, 'pci_domain_id', 0):08x}:{bus:02x}:"
                       f"{getattr(self._props, 'pci_device_id', 0):02x}.0")
            self._telemetry = open_nvml(self.device_index, pci)
        return self._telemetry

    def versions(self) -> dict[str, Any]:
        v = {"torch": torch.__version__, "cuda_runtime": torch.version.cuda,
             "cudnn": torch.backends.cudnn.version(), "python": platform.python_version(),
             "compute_capability": f"{self._props.major}.{self._props.minor}",
             "multiprocessors": self._props.multi_processor_count}
        try:
            import triton
            v["triton"] = triton.__version__
        except ImportError:
            v["triton"] = None
        return v

    def features(self) -> set[str]:
        feats = {"graphs", "fp64", "fp16", "bf16" if torch.cuda.is_bf16_supported() else "", "triton"}
        major, minor = self._props.major, self._props.minor
        if major >= 8:
            feats.add("tf32")
        if (major, minor) >= (8, 9):
            feats.add("fp8")
        if major == 9:  # Hopper's warpgroup MMA and tensor memory accelerator (not in Blackwell's form)
            feats.add("wgmma")
        return feats - {""}

    def capture_graph(self, fn: Callable[[], Any]) -> Optional[CapturedGraph]:
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):  # warm-up on a side stream, as capture requires
            for _ in range(3):
                fn()
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            output = fn()
        return CapturedGraph(graph.replay, output)

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


# CPU flags that give native low-precision matrix products (x86: AVX512-BF16/FP16 and AMX;
# Arm: the BF16 and half-precision SIMD extensions). Without them PyTorch runs bf16/fp16
# matmuls through a slow software path: on an AVX2-only EPYC a bf16 16x4096x4096 product took
# 1.9 s against 0.03 s in fp32.
NATIVE_MATMUL_FLAGS = {"bf16": ("avx512_bf16", "amx_bf16", "bf16"),
                       "fp16": ("avx512_fp16", "amx_fp16", "asimdhp")}


def cpu_capability() -> str:
    try:
        return str(torch.backends.cpu.get_cpu_capability())
    except Exception:  # older PyTorch builds lack the query
        return "unknown"


def emulated_matmul_dtypes(flags: frozenset[str], capability: str) -> dict[str, str]:
    """dtype -> why its matmul is software-emulated, for the dtypes whose native flags are absent."""
    out = {}
    for dtype, native in NATIVE_MATMUL_FLAGS.items():
        if not any(f in flags for f in native):
            out[dtype] = (f"{dtype} matmul is software-emulated on this CPU (PyTorch CPU capability "
                          f"{capability}; no {'/'.join(native)} flag)")
    return out


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

    probes_budget = True

    def budget_probe(self, call):
        """One call on one thread, its CPU time over the threads the timed calls use. A busy
        neighbour stretches wall time, and with several threads also the CPU time spent spinning
        at barriers while a thread waits to be scheduled; one thread's own CPU time stays what
        the work needs, so the same cases fit the budget on an idle and on a busy machine."""
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            start = time.thread_time()
            call()
            return (time.thread_time() - start) / threads
        finally:
            torch.set_num_threads(threads)

    def event(self) -> TimingEvent:
        return HostClockEvent()

    def memory_stats(self) -> MemoryStats:
        return MemoryStats(None, None)

    def free_memory_bytes(self) -> Optional[int]:
        try:
            with open("/proc/meminfo") as f:
                for line in f:
                    if line.startswith("MemAvailable:"):
                        return int(line.split()[1]) * 1024
        except (OSError, ValueError, IndexError):
            pass
        return None

    def emulated_matmul_dtypes(self) -> dict[str, str]:
        return emulated_matmul_dtypes(read_cpu_info().flags, cpu_capability())

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
                "threads": torch.get_num_threads(), "cpu_capability": cpu_capability()}

    def features(self) -> set[str]:
        return {"fp64", "fp16", "bf16"}

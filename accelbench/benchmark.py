"""The benchmark interface (design.md §1) and the registry of benchmarks.

A benchmark declares its cases, builds a `Workload` for one case on one backend (inputs, the
work to time, the check against a reference, the work count) and never times anything
itself. Every `Benchmark` subclass in a module of `accelbench.microbench` or `accelbench.e2e`
is registered: a new benchmark is one new file.
"""
from __future__ import annotations

import importlib
import pkgutil
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Optional

from accelbench.backends.base import Backend
from accelbench.errors import UsageError
from accelbench.records import Accuracy, Metric
from accelbench.stats import SampleStats

SUITES = ("quick", "standard", "full")


@dataclass(frozen=True)
class Case:
    case_id: str
    params: dict[str, Any]
    # The dtypes its matrix products run in: a device that runs one of them in software only
    # (bf16 on an AVX2 CPU) labels the case emulated, and the quick suite leaves it out.
    matmul_dtypes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Work:
    """What one call of the timed function does. FLOPs and bytes are counted here, once."""

    flops: float = 0.0
    bytes: float = 0.0
    tokens: float = 0.0
    flops_dtype: Optional[str] = None  # which datasheet peak the FLOPs are compared against
    # Where the counted bytes move. Only "device" (device memory, working set >= 4x the
    # last-level cache) is compared with the datasheet bandwidth. "cache" is cache bandwidth
    # (the working set fits in, or is near, the last-level cache); "link" crosses the host link
    # (PCIe, NVLink-C2C), for which the spec table holds no peak. "interconnect" is a collective's
    # message moved between devices: its bandwidth is nccl-tests' algbw (bytes / time).
    memory: str = "device"


@dataclass
class Workload:
    run: Callable[[], Any]  # one iteration of the work to time; returns its output
    check: Callable[[Any], Accuracy]  # compares `run()`'s output with a higher-precision reference
    work: Work
    working_set_bytes: int  # bytes the timed call touches: decides whether caches need flushing
    graph_safe: bool = True  # may be captured and replayed as a device graph
    # Captured only where the user asks for graphs (--graphs on), never by auto: collectives, whose
    # capture hangs or desynchronizes ranks on some library versions.
    graphs_on_request: bool = False
    # Kernels one call launches, where many: the case then reports the share of its time that is
    # launch overhead (design.md §2: a figure that includes launch overhead says so).
    launches_per_call: Optional[int] = None
    ceiling: Optional[str] = None  # e.g. "matmul.bf16": the run keeps the best FLOP/s (or B/s) per key
    # The harness flushes the cache when the working set fits in it, unless the case measures
    # cache-resident data on purpose (a bandwidth sweep's cache cliff).
    measures_cache: bool = False
    no_flush_reason: Optional[str] = None  # never flushed, for this reason (collectives run back to back)
    facts: dict[str, Any] = field(default_factory=dict)  # recorded with the case, e.g. l2_bytes
    extra_metrics: Callable[[SampleStats], list[Metric]] = field(default=lambda stats: [])
    baseline_case: Optional[str] = None  # case id in the same run this one's speed-up is relative to
    # Metric name -> (another call on the same inputs, what it is): the metric is this case's time
    # over that call's, the two timed side by side (timing.paired_ratio). E.g. FP8 quantize+GEMM
    # over the GEMM alone: what quantizing costs.
    paired_ratios: dict[str, tuple[Callable[[], Any], str]] = field(default_factory=dict)
    # Restores the inputs a call overwrites in place (an in-place all-reduce), before each call
    # whose output is checked; where None, the output is poisoned instead (see harness.poison).
    reset: Optional[Callable[[], None]] = None
    # Overrides of the suite's timing policy for this case (TimingPolicy field -> value): one decode
    # call of hundreds of steps needs fewer samples and a longer per-call budget than one GEMM.
    timing: dict[str, Any] = field(default_factory=dict)


class Benchmark(ABC):
    name: ClassVar[str]
    description: ClassVar[str]
    # Runs on several ranks at once (collectives, tensor parallelism): `bench run --nproc N`, or
    # under torchrun / srun. A run of one process leaves such benchmarks out, and a run of several
    # ranks runs only them.
    distributed: ClassVar[bool] = False

    @abstractmethod
    def cases(self, suite: str) -> list[Case]:
        """The cases of `suite` (quick / standard / full)."""

    @abstractmethod
    def prepare(self, case: Case, backend: Backend) -> Workload:
        """Build inputs on the backend's device; raise CaseSkipped where the case cannot run."""

    def device_bytes(self, case: Case, backend: Backend) -> Optional[int]:
        """Device memory the case will hold at its peak (inputs, outputs, reference, scratch),
        stated before anything is allocated; None where unknown. The harness skips a case that
        needs more than the device has free."""
        return None


_PACKAGES = ("accelbench.microbench", "accelbench.e2e")


def benchmark_classes() -> dict[str, type[Benchmark]]:
    for package_name in _PACKAGES:
        package = importlib.import_module(package_name)
        for info in pkgutil.iter_modules(package.__path__):
            if not info.name.startswith("_"):
                importlib.import_module(f"{package_name}.{info.name}")
    return {cls.name: cls for cls in _concrete(Benchmark)}


def _concrete(cls: type) -> list[type]:
    out = []
    for sub in cls.__subclasses__():
        # Only a class that names itself registers: a subclass inheriting its parent's name
        # (a variant, a test double) must not replace the parent.
        if "name" in vars(sub) and not getattr(sub, "__abstractmethods__", None):
            out.append(sub)
        out.extend(_concrete(sub))
    return out


def select_benchmarks(names: Optional[list[str]]) -> list[Benchmark]:
    classes = benchmark_classes()
    if not names:
        return [classes[n]() for n in sorted(classes)]
    unknown = [n for n in names if n not in classes]
    if unknown:
        raise UsageError(f"unknown benchmark(s) {', '.join(unknown)}; choose from: {', '.join(sorted(classes))}")
    return [classes[n]() for n in names]


def for_ranks(benchmarks: list[Benchmark], ranks: int, named: bool) -> list[Benchmark]:
    """The benchmarks a run of `ranks` processes runs: distributed ones need several ranks, the
    others run in one process. Asking for one that cannot run is an error; by default the other
    kind is left out."""
    if ranks > 1:
        alone = [b.name for b in benchmarks if not b.distributed]
        if named and alone:
            raise UsageError(f"{', '.join(alone)} run{'s' if len(alone) == 1 else ''} in one process: a run of "
                             f"{ranks} ranks runs only distributed benchmarks "
                             f"({', '.join(sorted(n for n, c in benchmark_classes().items() if c.distributed))})")
        return [b for b in benchmarks if b.distributed]
    together = [b.name for b in benchmarks if b.distributed]
    if named and together:
        raise UsageError(f"{', '.join(together)} need{'s' if len(together) == 1 else ''} 2 or more ranks: add "
                         "--nproc N (ranks on this machine), or start it under torchrun or srun")
    return [b for b in benchmarks if not b.distributed]

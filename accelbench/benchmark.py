"""The benchmark interface and the registry of benchmarks (docs/extending.md).

A benchmark declares its cases, builds a `Workload` for one case on one backend (inputs, the
work to time, the check against a reference, the work count) and never times anything
itself. Every `Benchmark` subclass in a module of `accelbench.microbench` or `accelbench.e2e`
is registered, and so is one in a `.py` file of a folder named in ACCELBENCH_PLUGINS (folders
separated as in PATH): a new benchmark is one new file, in the package or beside it.
"""
from __future__ import annotations

import importlib
import importlib.util
import os
import pkgutil
import sys
from pathlib import Path
from abc import ABC, abstractmethod
from dataclasses import dataclass, field, replace
from typing import Any, Callable, ClassVar, Optional

from accelbench.backends.base import Backend
from accelbench.errors import UsageError
from accelbench.records import Accuracy, Metric, RooflineWork
from accelbench.stats import SampleStats
from accelbench.view import BesideCase, FloorFraction, OverviewRow, Plot, PrefillModel, RecipeCost, StepModel, TableView

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
    # launch overhead (docs/method.md: a figure that includes launch overhead says so).
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
    # whose output is checked; where None, the output is poisoned instead (see call_choice.poison).
    reset: Optional[Callable[[], None]] = None
    # Puts back state a call moves on (delayed scaling's amax history), after a call made only to
    # measure its cost (admission's budget probe), so that the checked call sees what it would have.
    rewind: Optional[Callable[[], None]] = None
    # (kind, amount of work) for predicting one call's time from earlier cases of the same kind
    # (harness: budgets), where `work` counts nothing comparable across cases (decode counts
    # tokens, whose cost depends on the model): e.g. ("eager/bf16/none", bytes read per call).
    budget_work: Optional[tuple[str, float]] = None
    # Overrides of the suite's timing policy for this case (TimingPolicy field -> value): one decode
    # call of hundreds of steps needs fewer samples and a longer per-call budget than one GEMM.
    timing: dict[str, Any] = field(default_factory=dict)


@dataclass
class Observation:
    """What a benchmark found by watching work it does not call itself, one level of a serving
    sweep (clients streaming from a server over a window): the check of what was observed, made
    before any figure is kept, and the figures. The harness records it as a case, with the host's
    other load, the device's state and the energy over `window`."""

    accuracy: Accuracy  # the observed work checked (e.g. every request's tokens against the server's count)
    failure: Optional[str]  # why the observed work did not finish (the server went away); None where it did
    check_failure: str = ""  # what the check found wrong, where `accuracy.passed` is False
    # Why the observation is no figure of the device, though nothing was wrong (the load generator,
    # not the server, was the limit): the case is skipped with this reason.
    skipped: Optional[str] = None
    samples_s: list[float] = field(default_factory=list)  # what compare tests: seconds per unit of work
    metrics: list[Metric] = field(default_factory=list)
    work: Work = field(default_factory=Work)  # counted over `window` (tokens), for energy per unit
    window: Optional[tuple[float, float]] = None  # perf_counter bounds of the steady window
    timer: str = "host clock (perf_counter)"
    warmup: int = 0  # units of work (requests) before the window, not kept
    warmup_s: float = 0.0
    facts: dict[str, Any] = field(default_factory=dict)


@dataclass
class Observed:
    """`prepare`'s answer where the case is observed rather than called: `observe()` does the whole
    measurement (the harness samples the device's counters around it) and returns its Observation."""

    observe: Callable[[], Observation]
    facts: dict[str, Any] = field(default_factory=dict)
    ceiling: Optional[str] = None
    # CPU seconds of the processes that do the observed work besides this one (a server the
    # benchmark started): their load is the case's own, not other load (contention.py).
    work_cpu_s: Optional[Callable[[], float]] = None


class Benchmark(ABC):
    name: ClassVar[str]
    description: ClassVar[str]
    # What a suite leaves out of this benchmark and why, by suite name; `bench list` prints it.
    suite_notes: ClassVar[dict[str, str]] = {}
    # Runs on several ranks at once (collectives, tensor parallelism): `bench run --nproc N`, or
    # under torchrun / srun. A run of one process leaves such benchmarks out, and a run of several
    # ranks runs only them.
    distributed: ClassVar[bool] = False
    # The metrics a case is known by, the first with a value wins: its line in `bench run`'s
    # summary, the figure `bench compare` and `bench history` compare (higher is better; a case
    # with none of them is compared on its time). Recorded in each case (`CaseRecord.headline`).
    headline_metrics: ClassVar[tuple[str, ...]] = ("tflops", "gbps", "tokens_per_s")

    # The parameters that group its cases in `bench run`'s closing summary (one best figure per group).
    summary_groups: ClassVar[tuple[str, ...]] = ("dtype",)
    # The `bench run` options it takes beyond every benchmark's (decode: "weights", "text"), each
    # handed to `configure` before cases are planned; a run option no chosen benchmark takes is refused.
    run_options: ClassVar[tuple[str, ...]] = ()

    def configure(self, option: str, value: Any) -> None:
        """Take the value of one of `run_options`."""
        raise UsageError(f"{self.name} takes no --{option}")

    # Its rows of the report's overview (accelbench.view.OverviewRow), in the order they are shown.
    overview: ClassVar[tuple[OverviewRow, ...]] = ()
    plots: ClassVar[tuple[Plot, ...]] = ()  # its plots in the report (accelbench.view.Plot)
    table: ClassVar[TableView] = TableView()  # its tables' columns in the report
    # Figures derived when a run is read, from the run's ceilings and other cases (view.RunFigures).
    derived: ClassVar[tuple[FloorFraction | StepModel | PrefillModel | BesideCase, ...]] = ()
    # What a precision recipe costs in quality, where this benchmark measures it (view.RecipeCost).
    recipe_cost: ClassVar[Optional[RecipeCost]] = None

    @classmethod
    def roofline_work(cls, params: dict[str, Any], facts: dict[str, Any]) -> Optional[RooflineWork]:
        """The case's point on the roofline (FLOPs over the device-memory bytes they need), from
        its parameters and the facts found preparing it; None where it has none."""
        return None

    def budget_estimate(self, case: Case) -> Optional[tuple[str, float]]:
        """(kind, amount) of one call's work as `Workload.budget_work` will state it, known before
        `prepare` (which may build a model for a minute): a case predicted far over the suite's
        per-call budget is then skipped unbuilt. None: predicted after `prepare` only."""
        return None

    @classmethod
    def view(cls) -> dict[str, Any]:
        """What reports need to show this benchmark, as plain data for run.json's `views`. Overview
        rows are the class's own: a variant registered under another name (a subclass naming
        itself) would otherwise repeat its parent's rows for figures it does not have."""
        rows = vars(cls).get("overview", ())
        return {"headline_metrics": list(cls.headline_metrics),
                "overview": [replace(row, benchmark=cls.name).as_json() for row in rows],
                "plots": [plot.as_json() for plot in cls.plots], "table": cls.table.as_json(),
                "derived": [d.as_json() for d in cls.derived],
                "recipe_cost": replace(cls.recipe_cost, benchmark=cls.name).as_json() if cls.recipe_cost else None}

    def headline_of(self, metrics: list[Metric]) -> str:
        """The first of `headline_metrics` that `metrics` has a value for, else "time"."""
        have = {m.name for m in metrics if m.value is not None}
        return next((name for name in self.headline_metrics if name in have), "time")

    @abstractmethod
    def cases(self, suite: str) -> list[Case]:
        """The cases of `suite` (quick / standard / full)."""

    @abstractmethod
    def prepare(self, case: Case, backend: Backend) -> "Workload | Observed":
        """Build inputs on the backend's device; raise CaseSkipped where the case cannot run."""

    def close(self) -> None:
        """Release what the benchmark kept across its cases (a serving engine it started); called
        once at the end of a run, also an interrupted one."""

    def device_bytes(self, case: Case, backend: Backend) -> Optional[int]:
        """Device memory the case will hold at its peak (inputs, outputs, reference, scratch),
        stated before anything is allocated; None where unknown. The harness skips a case that
        needs more than the device has free."""
        return None


_PACKAGES = ("accelbench.microbench", "accelbench.e2e")
PLUGINS_ENV = "ACCELBENCH_PLUGINS"


_scanned: set[str] = set()  # packages and plugin folders whose modules are imported already


def benchmark_classes() -> dict[str, type[Benchmark]]:
    for package_name in _PACKAGES:
        if package_name not in _scanned:  # a folder is listed once per process: reports ask per case
            package = importlib.import_module(package_name)
            for info in pkgutil.iter_modules(package.__path__):
                if not info.name.startswith("_"):
                    importlib.import_module(f"{package_name}.{info.name}")
            _scanned.add(package_name)
    for folder in filter(None, os.environ.get(PLUGINS_ENV, "").split(os.pathsep)):
        if folder not in _scanned:
            _import_plugins(Path(folder))
            _scanned.add(folder)
    return {cls.name: cls for cls in _concrete(Benchmark)}


def _import_plugins(folder: Path) -> None:
    if not folder.is_dir():
        raise UsageError(f"{PLUGINS_ENV}: {folder} is not a folder")
    for path in sorted(folder.glob("*.py")):
        module_name = f"accelbench_plugin_{path.stem}"
        if path.name.startswith("_") or module_name in sys.modules:
            continue
        spec = importlib.util.spec_from_file_location(module_name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        try:
            spec.loader.exec_module(module)
        except Exception as exc:  # a user's file: say which and why, in one line
            del sys.modules[module_name]
            raise UsageError(f"{PLUGINS_ENV}: {path} failed to import: {type(exc).__name__}: {exc}") from None


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

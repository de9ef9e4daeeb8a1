"""The runner: the one place that checks, warms up, times, measures energy, isolates failures
and writes results, for every benchmark on every backend (design.md §1-3)."""
from __future__ import annotations

import gc
import time
import traceback
from dataclasses import dataclass, field
from typing import Optional, Protocol

from accelbench.backends.base import Backend
from accelbench.benchmark import Benchmark, Case, Workload
from accelbench.energy import energy_window
from accelbench.errors import CaseSkipped
from accelbench.metrics import energy_metrics, performance_metrics
from accelbench.records import THROTTLE_REASONS, CaseRecord, Metric, TimingMethod
from accelbench.stats import SampleStats
from accelbench.store import RunWriter, utc_now
from accelbench.timing import TimingPolicy, sample, warm_up


@dataclass(frozen=True)
class RunOptions:
    policy: TimingPolicy
    energy: bool = True
    energy_window_s: float = 1.0
    graphs: str = "auto"  # auto: replay graphs where launches average under `graph_threshold_s`; on; off
    graph_threshold_s: float = 50e-6


class Progress(Protocol):
    def case_started(self, benchmark: str, case: Case) -> None: ...
    def case_finished(self, record: CaseRecord) -> None: ...


class SilentProgress:
    def case_started(self, benchmark: str, case: Case) -> None:
        pass

    def case_finished(self, record: CaseRecord) -> None:
        pass


@dataclass
class RunSummary:
    records: list[CaseRecord] = field(default_factory=list)

    def count(self, status: str) -> int:
        return sum(1 for r in self.records if r.status == status)


class Runner:
    def __init__(self, backend: Backend, writer: RunWriter, options: RunOptions,
                 progress: Optional[Progress] = None):
        self.backend = backend
        self.writer = writer
        self.options = options
        self.progress = progress or SilentProgress()
        self.telemetry = backend.telemetry()
        self.spec = backend.spec()
        self._medians: dict[str, float] = {}  # case id -> median seconds, for speed-ups

    def run(self, plan: list[tuple[Benchmark, Case]]) -> RunSummary:
        summary = RunSummary()
        for bench, case in plan:
            self.progress.case_started(bench.name, case)
            record = self.run_case(bench, case)
            self.writer.append(record)
            summary.records.append(record)
            self.progress.case_finished(record)
        return summary

    def run_case(self, bench: Benchmark, case: Case) -> CaseRecord:
        record = CaseRecord(benchmark=bench.name, case_id=case.case_id, params=dict(case.params),
                            status="ok", started_at=utc_now())
        start = time.perf_counter()
        workload = None
        try:
            workload = bench.prepare(case, self.backend)
            record.ceiling = workload.ceiling
            record.facts = dict(workload.facts)
            self._measure(workload, record)
        except CaseSkipped as exc:
            record.status, record.reason = "skipped", str(exc)
        except Exception as exc:  # one case's failure never stops the run
            record.status = "failed"
            if self.backend.is_out_of_memory(exc):
                record.reason = f"out of memory: {str(exc).splitlines()[0][:300]}"
            else:
                frame = traceback.extract_tb(exc.__traceback__)[-1]
                record.reason = (f"{type(exc).__name__}: {str(exc).splitlines()[0][:300] if str(exc) else ''}"
                                 f" (at {frame.filename.rsplit('/', 1)[-1]}:{frame.lineno})")
        finally:
            del workload
            gc.collect()
            self.backend.release_memory()
        record.duration_s = time.perf_counter() - start
        return record

    def _measure(self, workload: Workload, record: CaseRecord) -> None:
        backend, opts = self.backend, self.options
        # Correctness first: a wrong result never produces a figure.
        output = workload.run()
        backend.mark_step()
        backend.synchronize()
        record.accuracy = workload.check(output)
        del output
        if not record.accuracy.passed:
            record.status = "failed"
            record.reason = (f"wrong result: relative error {record.accuracy.rel_fro_error:.3g} "
                             f"exceeds tolerance {record.accuracy.tolerance:.3g}")
            return

        record.state_before = self.telemetry.state()
        backend.reset_peak_memory()
        warm_iters, warm_s = warm_up(backend, workload.run, opts.policy)
        per_call_s = warm_s / warm_iters
        call, graphs = workload.run, False
        if self._use_graphs(workload, per_call_s):
            replay = backend.capture_graph(workload.run)
            if replay is not None:
                call, graphs = replay, True
                more_iters, more_s = warm_up(backend, call, opts.policy)
                warm_iters, warm_s = warm_iters + more_iters, warm_s + more_s
                per_call_s = more_s / more_iters
        flush, cache_note = self._cache_decision(workload)
        samples = sample(backend, call, opts.policy, flush, per_call_s)
        record.state_after = self.telemetry.state()
        record.samples_s = samples
        record.stats = SampleStats.from_samples(samples)
        record.method = TimingMethod(timer=backend.timer_description, graphs=graphs, cache=cache_note,
                                     warmup_iters=warm_iters, warmup_s=warm_s)
        record.metrics = performance_metrics(workload.work, record.stats, self.spec)
        record.metrics += workload.extra_metrics(record.stats)
        self._medians[record.case_id] = record.stats.median
        if workload.baseline_case:
            base = self._medians.get(workload.baseline_case)
            record.metrics.append(Metric("speedup", base / record.stats.median if base else None, "x",
                                         f"vs {workload.baseline_case}" if base else
                                         f"baseline {workload.baseline_case} not measured in this run"))
        record.peak_memory_bytes = backend.memory_stats().peak_allocated_bytes
        if opts.energy:
            record.energy = energy_window(backend, call, self.telemetry, opts.energy_window_s,
                                          record.stats.median, self.writer.info.idle_power_w)
            if record.energy is not None:
                record.metrics += energy_metrics(workload.work, record.energy)
        seen = set(record.state_after.throttle_reasons)
        if record.energy is not None:
            seen.update(record.energy.throttle_reasons_seen)
        record.throttled = bool(THROTTLE_REASONS & seen)
        if workload.ceiling:
            per_s, unit = (workload.work.flops, "FLOP/s") if workload.work.flops else (workload.work.bytes, "B/s")
            self.writer.offer_ceiling(workload.ceiling, per_s / record.stats.median, unit, record.case_id)

    def _use_graphs(self, workload: Workload, per_call_s: float) -> bool:
        if not workload.graph_safe or not self.backend.supports("graphs") or self.options.graphs == "off":
            return False
        per_launch_s = per_call_s / max(1, workload.launches_per_call)
        return self.options.graphs == "on" or per_launch_s < self.options.graph_threshold_s

    def _cache_decision(self, workload: Workload) -> tuple[bool, str]:
        working_set, cache = workload.working_set_bytes, self.backend.cache_bytes()
        if workload.measures_cache:
            return False, "not flushed: this case measures cache-resident data on purpose"
        if cache is None:
            return False, "not flushed: cache size unknown"
        ratio = working_set / cache
        if working_set < cache:  # it would fit: repeated calls would measure the cache
            return True, f"flushed before each call (working set {ratio:.2g}x last-level cache)"
        return False, f"not flushed (working set {ratio:.2g}x last-level cache)"

"""The runner: the one place that checks, warms up, times, measures energy, isolates failures
and writes results, for every benchmark on every backend (docs/method.md). Whether a case may run
and whether its call fits the budget is admission.py's; graphs and cache flushing, call_choice.py's;
the timing loops, timing.py's.

A multi-rank run (collectives, tensor parallelism) runs this same code on every rank in
lock-step (`distributed.Group`): what a rank finds while admitting and preparing a case, and
what its check finds, is gathered, so a case is skipped or failed on every rank at once, naming
the rank; once a case's work is running, an exception on any rank cannot be agreed on (the
others wait inside a collective) and ends the run through the group's abort."""
from __future__ import annotations

import gc
import socket
import time
import traceback
from dataclasses import dataclass, field, replace
from typing import Any, Optional, Protocol

from accelbench.admission import Admission
from accelbench.backends.base import Backend
from accelbench.benchmark import Benchmark, Case, Observed, Workload
from accelbench.call_choice import cache_decision, choose_call
from accelbench.contention import OtherLoad
from accelbench.distributed import SOLO, Group
from accelbench.energy import PowerSampler, energy_window, watched_energy
from accelbench.errors import CaseSkipped
from accelbench.metrics import clock_metrics, energy_metrics, launch_overhead_metric, performance_metrics
from accelbench.records import THROTTLE_REASONS, Accuracy, CaseRecord, Metric, TimingMethod
from accelbench.stats import SampleStats
from accelbench.store import RunWriter, utc_now
from accelbench.timing import PAIRED_ROUNDS, REGIMES, Regime, TimingPolicy, cool_down, paired_ratio, sample, warm_up


@dataclass(frozen=True)
class RunOptions:
    policy: TimingPolicy
    energy: bool = True
    energy_window_s: float = 1.0
    graphs: str = "auto"  # auto: replay a graph where it measured faster than eager calls; on; off
    suite: str = "standard"  # named in skip reasons
    skip_emulated: bool = False  # leave out cases whose matmuls the device runs in software
    regimes: tuple[Regime, ...] = (REGIMES["sustained"],)  # each case is measured in each, in this order
    flush_always: bool = False  # flush the cache before every call whatever the working set (as do_bench)


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
                 progress: Optional[Progress] = None, group: Group = SOLO):
        self.backend = backend
        self.writer = writer
        self.options = options
        self.progress = progress or SilentProgress()
        self.group = group
        self._current: Optional[CaseRecord] = None  # the case in progress, for an abort to record
        self._case_load = OtherLoad.start()  # other load on the host since the case in progress started
        self._board = f"{socket.gethostname()} {backend.device}"  # whose energy counter this rank reads
        self.telemetry = backend.telemetry()
        self.spec = backend.spec()
        self._medians: dict[str, float] = {}  # case id -> median seconds, for speed-ups
        self._flush_joules: Optional[float] = None
        self.admission = Admission(backend, options.suite, options.skip_emulated, group)

    def run(self, plan: list[tuple[Benchmark, Case]], repeats: int = 1) -> RunSummary:
        """Every case of the plan in every regime, `repeats` times interleaved (A, B, ..., then
        again), so that a drift of the device over the run spreads over all cases instead of
        landing on a few; a case's regimes follow each other, so they see the same device. A
        case skipped or failed in one round is not run again."""
        summary = RunSummary()
        done_with: set[tuple[str, str]] = set()
        self.group.watch(True)
        for round_ in range(1, repeats + 1):
            for bench, case in plan:
                for regime in self.options.regimes:
                    key = (bench.name, regime.case_id(case.case_id))
                    if key in done_with:
                        continue
                    self.progress.case_started(bench.name, case)
                    record = self.run_case(bench, case, regime)
                    record.repeat = round_ if repeats > 1 else None
                    if record.status != "ok":
                        done_with.add(key)
                    self._current = None
                    self.writer.append(record)
                    summary.records.append(record)
                    self.progress.case_finished(record)
        self.group.watch(False)
        return summary

    def record_abort(self, message: str) -> None:
        """The group is ending the run (a rank stuck or raising): the case in progress is failed
        with the message, and written."""
        record = self._current
        if record is not None:
            record.status, record.reason = "failed", f"run aborted: {message}"
            self.writer.append(record)
            self.progress.case_finished(record)

    def run_case(self, bench: Benchmark, case: Case, regime: Optional[Regime] = None) -> CaseRecord:
        regime = regime or self.options.regimes[0]
        record = CaseRecord(benchmark=bench.name, case_id=regime.case_id(case.case_id), params=dict(case.params),
                            status="ok", started_at=utc_now())
        start = time.perf_counter()
        self._case_load = OtherLoad.start()
        workload = None
        self._current = record
        try:
            self.group.phase(f"{bench.name} {case.case_id}: preparing")
            workload = self._prepare(bench, case, record)
            if isinstance(workload, Observed):
                self.group.phase(f"{bench.name} {case.case_id}: observing")
                self._observe(workload, record)
                record.headline = bench.headline_of(record.metrics)
            elif workload is not None:
                self.group.phase(f"{bench.name} {case.case_id}: measuring")
                self._measure(workload, record, regime)
                record.headline = bench.headline_of(record.metrics)
                record.roofline = bench.roofline_work(record.params, record.facts)
        except CaseSkipped as exc:
            record.status, record.reason = "skipped", str(exc)
        except Exception as exc:  # one case's failure never stops the run
            record.status, record.reason = "failed", self._describe(exc)
            if self.group.world_size > 1:
                self.group.abort(f"rank {self.group.rank} raised {record.reason} in {bench.name} {case.case_id}")
        finally:
            del workload
            gc.collect()
            self.backend.release_memory()
        record.duration_s = time.perf_counter() - start
        return record

    def _describe(self, exc: Exception) -> str:
        if self.backend.is_out_of_memory(exc):
            return f"out of memory: {str(exc).splitlines()[0][:300]}"
        frame = traceback.extract_tb(exc.__traceback__)[-1]
        return (f"{type(exc).__name__}: {str(exc).splitlines()[0][:300] if str(exc) else ''}"
                f" (at {frame.filename.rsplit('/', 1)[-1]}:{frame.lineno})")

    def _prepare(self, bench: Benchmark, case: Case, record: CaseRecord) -> Optional[Workload]:
        """Admit and prepare the case on every rank, then agree: a rank that skipped or failed
        skips or fails the case everywhere (named, where more than one rank runs). None when
        the case does not go on to be measured."""
        workload, outcome = None, ("ok", None)
        try:
            self.admission.admit(bench, case, record)
            self.admission.predict(bench, case, self.options.policy)
            workload = bench.prepare(case, self.backend)
            record.ceiling = workload.ceiling
            record.facts.update(workload.facts)
        except CaseSkipped as exc:
            outcome = ("skipped", str(exc))
        except Exception as exc:
            outcome = ("failed", self._describe(exc))
        outcomes = self.group.gather(outcome)
        for status in ("failed", "skipped"):
            ranks = [r for r, (s, _) in enumerate(outcomes) if s == status]
            if ranks:
                reason = outcomes[ranks[0]][1]
                if len(outcomes) > 1 and len(ranks) < len(outcomes):
                    reason = f"rank {ranks[0]}: {reason}"
                record.status, record.reason = status, reason
                return None
        return workload

    def _agreed_check(self, workload: Workload, output: Any) -> tuple[Accuracy, str]:
        """The check on every rank; a rank whose output is wrong fails the case on every rank.
        Returns the first wrong rank's accuracy (else rank 0's) and where it was wrong."""
        results = self.group.gather(workload.check(output))
        wrong = [r for r, a in enumerate(results) if not a.passed]
        where = f" on rank{'s' if len(wrong) > 1 else ''} {', '.join(map(str, wrong))}" if wrong and len(results) > 1 else ""
        return results[wrong[0] if wrong else 0], where

    def _measure(self, workload: Workload, record: CaseRecord, regime: Regime) -> None:
        backend, opts = self.backend, self.options
        policy = replace(opts.policy, **workload.timing) if workload.timing else opts.policy
        output, first_s = self.admission.first_call(record.benchmark, workload, policy, record.case_id)
        # Correctness first: a wrong result never produces a figure.
        record.accuracy, where = self._agreed_check(workload, output)
        del output
        if not record.accuracy.passed:
            record.status = "failed"
            record.reason = f"wrong result{where}: " + describe_failure(record.accuracy)
            return
        self.admission.confirm_budget(record.benchmark, workload, policy, record.case_id)

        group = self.group
        record.state_before = self.telemetry.state()
        backend.reset_peak_memory()
        calls_load = OtherLoad.start()  # over the case's calls: warm-up through the last sample
        warm_iters, warm_s = warm_up(backend, workload.run, policy, group)
        flush, cache_note = cache_decision(workload, backend.cache_bytes(), opts.flush_always)
        call, graphs, graph_choice, graph_checked = choose_call(
            backend, workload, opts.graphs, flush, warm_s / warm_iters, group,
            lambda output: self._agreed_check(workload, output))
        if call is None:  # the replayed graph computed something else than the checked call
            record.status = "failed"
            record.reason = "wrong result from the replayed graph: " + describe_failure(graph_checked)
            return
        if graphs:
            more_iters, more_s = warm_up(backend, call, policy, group)
            warm_iters, warm_s = warm_iters + more_iters, warm_s + more_s
        per_call_s = warm_s / warm_iters
        sampling = regime.policy(policy)
        if regime.cooldown_s:
            group.leader_decides(True)  # every rank idles from the same moment
            cool_down(regime.cooldown_s)
            more_iters, more_s = warm_up(backend, call, sampling, group)
            warm_iters, warm_s = warm_iters + more_iters, warm_s + more_s
        with PowerSampler(self.telemetry, interval_s=regime.clock_interval_s, power=False) as during_samples:
            samples = sample(backend, call, sampling, flush, per_call_s, group)
        # Where the calls took too few clock ticks to tell (contention.MIN_WINDOW_S), the case from
        # the start of its preparation: a neighbour that loads the machine rarely comes and goes
        # within one case.
        if self.group.world_size == 1:  # several ranks: the others are this run's own work
            record.other_load = calls_load.stop()
            if record.other_load is None:
                record.other_load = self._case_load.stop()
        record.state_after = self.telemetry.state()
        if during_samples.trace.reasons:  # apart from the energy window's: what the figure itself ran under
            record.facts["throttle_during_samples"] = ", ".join(sorted(during_samples.trace.reasons))
        record.samples_s = samples
        record.stats = SampleStats.from_samples(samples)
        record.method = TimingMethod(timer=backend.timer_description, graphs=graphs, cache=cache_note,
                                     warmup_iters=warm_iters, warmup_s=warm_s, graph_choice=graph_choice,
                                     graph_checked=graph_checked.passed if graph_checked is not None else None,
                                     first_call_s=first_s, regime=regime.name,
                                     cooldown_s=regime.cooldown_s or None)
        record.metrics = performance_metrics(workload.work, record.stats, self.spec)
        record.clocks = during_samples.trace.clocks()
        record.metrics += clock_metrics(workload.work, record.stats, record.clocks, self.spec,
                                        record.state_before.sm_clock_max_mhz)
        if workload.launches_per_call:
            record.metrics.append(launch_overhead_metric(workload.launches_per_call,
                                                         backend.launch_overhead_s(replayed=graphs),
                                                         record.stats.median, graphs))
        record.metrics += workload.extra_metrics(record.stats)
        self._medians[record.case_id] = record.stats.median
        self.admission.measured(record.benchmark, workload, record.stats.median, record.case_id)
        if workload.baseline_case:
            baseline = regime.case_id(workload.baseline_case)  # in the same regime
            base = self._medians.get(baseline)
            software = (workload.work.flops_dtype or "").endswith("-emulated")
            note = (f"vs {baseline}" + (" (this case emulated in software: not a hardware speed-up)" if software else "")
                    if base else f"baseline {baseline} not measured in this run")
            record.metrics.append(Metric("speedup", base / record.stats.median if base else None, "x", note))
        for name, (other, what) in workload.paired_ratios.items():
            if graphs:  # timed as the case's own call is: a replayed graph
                captured = backend.capture_graph(other)
                other = captured.replay if captured is not None else other
            ratio = paired_ratio(backend, call, other, flush, per_call_s, group)
            record.metrics.append(Metric(name, ratio, "x", f"time ÷ {what}'s, the two timed in alternating batches "
                                                           f"(median of {PAIRED_ROUNDS} rounds)"))
        record.peak_memory_bytes = backend.memory_stats().peak_allocated_bytes
        if opts.energy:
            record.energy = energy_window(backend, call, self.telemetry, opts.energy_window_s,
                                          record.stats.median, self.writer.info.idle_power_w,
                                          flush=flush, flush_joules=self._flush_energy() if flush else None,
                                          group=group, board=self._board)
            if record.energy is not None:
                record.metrics += energy_metrics(workload.work, record.energy)
        seen = set(record.state_after.throttle_reasons) | during_samples.trace.reasons
        if record.energy is not None:
            seen.update(record.energy.throttle_reasons_seen)
        seen = set().union(*group.gather(sorted(seen)))  # a throttled rank slows every rank
        record.throttle_reasons = sorted(seen)
        record.throttled = bool(THROTTLE_REASONS & seen)
        if workload.ceiling:
            per_s, unit = (workload.work.flops, "FLOP/s") if workload.work.flops else (workload.work.bytes, "B/s")
            self.writer.offer_ceiling(workload.ceiling, per_s / record.stats.median, unit, record.case_id)

    def _observe(self, observed: Observed, record: CaseRecord) -> None:
        """A case the benchmark measures by watching (Observed): the device's state, counters and
        the host's other load around it; its own check decides whether any figure is kept."""
        record.state_before = self.telemetry.state()
        load = OtherLoad.start(also=observed.work_cpu_s)
        with PowerSampler(self.telemetry, interval_s=0.05, counter=self.options.energy) as sampler:
            seen = observed.observe()
        record.other_load = load.stop()  # a level lasts seconds: long enough to tell
        record.state_after = self.telemetry.state()
        record.facts.update(seen.facts)
        record.accuracy = seen.accuracy
        if seen.failure:
            record.status, record.reason = "failed", seen.failure
            return
        if not seen.accuracy.passed:
            record.status, record.reason = "failed", f"wrong result: {seen.check_failure}"
            return
        if seen.skipped:
            record.status, record.reason = "skipped", seen.skipped
            return
        if not seen.samples_s:
            raise CaseSkipped("nothing was observed in the steady window (too few requests)")
        record.metrics = list(seen.metrics)  # only now: a level that failed its check gives no figure
        record.samples_s = seen.samples_s
        record.stats = SampleStats.from_samples(seen.samples_s)
        record.method = TimingMethod(timer=seen.timer, graphs=False, cache="not applicable (a server's work, watched)",
                                     warmup_iters=seen.warmup, warmup_s=seen.warmup_s)
        record.clocks = sampler.trace.clocks()
        if self.options.energy and seen.window is not None:
            record.energy = watched_energy(self.telemetry, sampler.trace, *seen.window,
                                           self.writer.info.idle_power_w)
            if record.energy is not None:
                record.metrics += energy_metrics(seen.work, record.energy)
                if seen.work.tokens:
                    record.metrics.append(Metric("joules_per_token", record.energy.joules / seen.work.tokens, "J/token",
                                                 f"over the {record.energy.window_s:.1f} s steady window"))
        reasons = set(record.state_after.throttle_reasons) | sampler.trace.reasons
        record.throttle_reasons = sorted(reasons)
        record.throttled = bool(THROTTLE_REASONS & reasons)

    def _flush_energy(self) -> Optional[float]:
        """Joules of one cache flush, measured once per run on flushes alone."""
        if self._flush_joules is None:
            self.backend.flush_cache()
            flushes = energy_window(self.backend, self.backend.flush_cache, self.telemetry,
                                    self.options.energy_window_s, 1e-4, None, group=self.group, board=self._board)
            self._flush_joules = flushes.joules / flushes.iterations if flushes else 0.0
        return self._flush_joules

def describe_failure(accuracy) -> str:
    if accuracy.tolerance == 0:  # an exact check (collectives, copies): the error is the share of wrong elements
        return f"{accuracy.rel_fro_error:.3g} of the elements wrong ({accuracy.reference})"
    rel = "not finite" if accuracy.rel_fro_error is None else f"{accuracy.rel_fro_error:.3g}"
    text = f"relative error {rel} (tolerance {accuracy.tolerance:.3g})"
    if accuracy.max_abs_tolerance is not None:
        worst = "not finite" if accuracy.max_abs_error is None else f"{accuracy.max_abs_error:.3g}"
        text += f", largest element error {worst} (tolerance {accuracy.max_abs_tolerance:.3g})"
    return text

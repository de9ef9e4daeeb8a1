"""The runner: the one place that checks, warms up, times, measures energy, isolates failures
and writes results, for every benchmark on every backend (design.md §1-3).

A multi-rank run (collectives, tensor parallelism) runs this same code on every rank in
lock-step (`distributed.Group`): what a rank finds while admitting and preparing a case, and
what its check finds, is gathered, so a case is skipped or failed on every rank at once, naming
the rank; once a case's work is running, an exception on any rank cannot be agreed on (the
others wait inside a collective) and ends the run through the group's abort."""
from __future__ import annotations

import gc
import math
import socket
import time
import traceback
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Optional, Protocol

import torch

from accelbench.backends.base import Backend
from accelbench.benchmark import Benchmark, Case, Workload
from accelbench.distributed import SOLO, Group
from accelbench.energy import PowerSampler, energy_window
from accelbench.errors import CaseSkipped
from accelbench.metrics import clock_metrics, energy_metrics, launch_overhead_metric, performance_metrics
from accelbench.records import THROTTLE_REASONS, Accuracy, CaseRecord, Metric, TimingMethod
from accelbench.stats import SampleStats
from accelbench.store import RunWriter, utc_now
from accelbench.timing import (PAIRED_ROUNDS, REGIMES, Regime, TimingPolicy, cool_down, glance, paired_ratio, sample,
                               timed_call, warm_up)


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


# Graphs remove launch gaps, which only matter for calls of a few milliseconds or less: above
# this, auto mode does not try them.
GRAPH_TRY_BELOW_S = 2e-3
GRAPH_STEADIER_WITHIN = 0.05
NEXT_SUITE = {"quick": "standard", "standard": "full", "full": "full"}
# A case predicted to exceed its per-call budget this many times over is skipped without running
# one call. Rates grow with size, so a prediction from smaller cases errs long: the margin keeps
# cases near the budget measured rather than predicted.
PREDICTION_MARGIN = 4.0


def gib(n: float) -> str:
    return f"{n / 2**30:.1f} GiB"


def seconds(t: float) -> str:
    return f"{t * 1e6:.1f} µs" if t < 1e-3 else f"{t * 1e3:.2f} ms" if t < 1 else f"{t:.2f} s"


def poison(output: Any) -> None:
    """Fill a float output with NaN, so an element a replay forgets to write fails the check."""
    if isinstance(output, torch.Tensor) and output.is_floating_point():
        output.fill_(math.nan)


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
        self._board = f"{socket.gethostname()} {backend.device}"  # whose energy counter this rank reads
        self.telemetry = backend.telemetry()
        self.spec = backend.spec()
        self._medians: dict[str, float] = {}  # case id -> median seconds, for speed-ups
        self._emulated = backend.emulated_matmul_dtypes()
        self._flush_joules: Optional[float] = None
        # Best rate one call reached so far per (benchmark, dtype or "bytes"): (rate, case id).
        self._rates: dict[tuple[str, str], tuple[float, str]] = {}

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
        workload = None
        self._current = record
        try:
            self.group.phase(f"{bench.name} {case.case_id}: preparing")
            workload = self._prepare(bench, case, record)
            if workload is not None:
                self.group.phase(f"{bench.name} {case.case_id}: measuring")
                self._measure(workload, record, regime)
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
            self._admit(bench, case, record)
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

    def _admit(self, bench: Benchmark, case: Case, record: CaseRecord) -> None:
        """Decide, before anything is allocated, whether the case may run here."""
        emulated = [self._emulated[d] for d in case.matmul_dtypes if d in self._emulated]
        if emulated:
            if self.options.skip_emulated:
                raise CaseSkipped(f"{'; '.join(emulated)}: left out of the {self.options.suite} suite "
                                  f"(run it with --suite {NEXT_SUITE[self.options.suite]})")
            record.facts["emulated"] = "; ".join(emulated)
        need = bench.device_bytes(case, self.backend)
        if need:
            record.facts["device_bytes_needed"] = need
            free = self.backend.free_memory_bytes()
            if free is not None and need > free:
                raise CaseSkipped(f"needs {gib(need)} of device memory, {gib(free)} free")

    def _measure(self, workload: Workload, record: CaseRecord, regime: Regime) -> None:
        backend, opts = self.backend, self.options
        rate_key, amount = self._work_amount(record.benchmark, workload)
        policy = replace(opts.policy, **workload.timing) if workload.timing else opts.policy
        output, first_s = self._first_call(workload, policy, rate_key, amount)
        # Correctness first: a wrong result never produces a figure.
        record.accuracy, where = self._agreed_check(workload, output)
        del output
        if not record.accuracy.passed:
            record.status = "failed"
            record.reason = f"wrong result{where}: " + describe_failure(record.accuracy)
            return

        group = self.group
        record.state_before = self.telemetry.state()
        backend.reset_peak_memory()
        warm_iters, warm_s = warm_up(backend, workload.run, policy, group)
        flush, cache_note = self._cache_decision(workload)
        call, graphs, graph_choice, graph_checked = self._choose_call(workload, flush, warm_s / warm_iters)
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
        best = self._rates.get(rate_key)
        if amount and (best is None or amount / record.stats.median > best[0]):
            self._rates[rate_key] = (amount / record.stats.median, record.case_id)
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

    def _first_call(self, workload: Workload, policy: TimingPolicy, rate_key: tuple[str, str],
                    amount: float) -> tuple[Any, float]:
        """The correctness call and its time, within the suite's per-call budget: a case predicted
        far over it is skipped without a call; one whose call (and a second, past any compiling
        or autotuning of the first) is over it is skipped with that time."""
        budget = policy.call_budget_s
        predicted = self._predicted_call_s(rate_key, amount)
        if budget and predicted is not None and predicted[0] > PREDICTION_MARGIN * budget:
            # An emulated bf16 16384^3 product on an AVX2 CPU would take hours: not even once.
            raise self._over_budget(f"one call would take about {predicted[0]:.3g} s (at the best rate a case "
                                    f"of this kind reached in this run, {predicted[1]}'s)", budget)
        output, first_s = timed_call(self.backend, workload.run, self.group)
        if budget and first_s > budget:
            del output
            if workload.reset:
                workload.reset()
            output, again_s = timed_call(self.backend, workload.run, self.group)
            if again_s > budget:
                raise self._over_budget(f"one call took {again_s:.3g} s", budget)
        return output, first_s

    def _over_budget(self, what: str, budget: float) -> CaseSkipped:
        opts = self.options
        return CaseSkipped(f"{what}, over the {opts.suite} suite's per-call budget of {budget:g} s "
                           f"(run it with --suite {NEXT_SUITE[opts.suite]}, or --call-budget 0)")

    @staticmethod
    def _work_amount(benchmark: str, workload: Workload) -> tuple[tuple[str, str], float]:
        work = workload.work
        if work.flops:
            return (benchmark, work.flops_dtype or "flops"), work.flops
        return (benchmark, "bytes"), work.bytes

    def _predicted_call_s(self, key: tuple[str, str], amount: float) -> Optional[tuple[float, str]]:
        """(seconds, the case whose rate it is) for one call of `amount` at the best steady rate
        (work over median) a case of the same benchmark and dtype reached in this run; None before
        the first. Rates grow with size, so this errs long."""
        best = self._rates.get(key)
        if not amount or best is None:
            return None
        return amount / best[0], best[1]

    def _choose_call(self, workload: Workload, flush: bool, per_call_s: float
                     ) -> tuple[Optional[Callable[[], Any]], bool, Optional[str], Any]:
        """(call to time, graphs?, how it was chosen, the graph check's Accuracy). Graphs are
        chosen by measurement: the eager call is glanced at under the timed regime; where it is
        short (under GRAPH_TRY_BELOW_S) or launch-bound (its host enqueue time is at least half
        its device time), the replayed graph is glanced at too and the faster is kept (within
        5%, the steadier). A graph's output is checked once against the reference before it may
        be kept; a wrong one returns call None."""
        backend, mode, group = self.backend, self.options.graphs, self.group
        if mode == "off" or not workload.graph_safe or not backend.supports("graphs"):
            return workload.run, False, None, None
        eager = glance(backend, workload.run, flush, per_call_s, group)
        launch_bound = eager.host_s >= 0.5 * eager.median_s
        if workload.graphs_on_request and mode != "on":
            return workload.run, False, (
                f"eager, graphs only with --graphs on; eager {seconds(eager.median_s)} per call, host "
                f"{seconds(eager.host_s)}" + (": launch-bound, the figure includes launch overhead" if launch_bound else "")), None
        if mode == "auto" and eager.median_s > GRAPH_TRY_BELOW_S and not launch_bound:
            return workload.run, False, (f"eager {seconds(eager.median_s)} per call, not launch-bound (host "
                                         f"{seconds(eager.host_s)}): graphs not tried"), None
        captured, failure = None, None
        try:
            captured = backend.capture_graph(workload.run)
        except Exception as exc:  # some work cannot be captured (a host sync, a host-to-device copy)
            backend.synchronize()
            failure = f"graph capture failed, eager: {str(exc).splitlines()[0][:160]}"
        failures = [f for f in group.gather(failure) if f]  # every rank replays, or none
        if failures:
            return workload.run, False, failures[0], None
        if captured is None:
            return workload.run, False, None, None
        # One eager call first: whatever per-call state the work has (fresh inputs, a step
        # counter) moves on, so a graph that replays stale captured state fails the check.
        workload.run()
        backend.mark_step()
        if workload.reset:  # in-place work: its output is its input, to be restored, not poisoned
            workload.reset()
        else:
            poison(captured.output)
        captured.replay()
        backend.mark_step()
        backend.synchronize()
        checked, _ = self._agreed_check(workload, captured.output)
        if not checked.passed:
            return None, False, None, checked
        graph = glance(backend, captured.replay, flush, eager.median_s, group)
        choice = (f"graph {seconds(graph.median_s)} (CV {graph.cv:.3f}) vs eager {seconds(eager.median_s)} "
                  f"(CV {eager.cv:.3f}, host {seconds(eager.host_s)}) per call")
        # The faster wins; within GRAPH_STEADIER_WITHIN of each other, the steadier: launch jitter
        # in eager calls shows as spread before it shows in the median.
        close = abs(graph.median_s - eager.median_s) <= GRAPH_STEADIER_WITHIN * eager.median_s
        graph_wins = graph.cv < eager.cv if close else graph.median_s < eager.median_s
        if mode == "on" or graph_wins:
            return captured.replay, True, choice, checked
        return workload.run, False, choice, checked

    def _flush_energy(self) -> Optional[float]:
        """Joules of one cache flush, measured once per run on flushes alone."""
        if self._flush_joules is None:
            self.backend.flush_cache()
            flushes = energy_window(self.backend, self.backend.flush_cache, self.telemetry,
                                    self.options.energy_window_s, 1e-4, None, group=self.group, board=self._board)
            self._flush_joules = flushes.joules / flushes.iterations if flushes else 0.0
        return self._flush_joules

    def _cache_decision(self, workload: Workload) -> tuple[bool, str]:
        working_set, cache = workload.working_set_bytes, self.backend.cache_bytes()
        if workload.measures_cache:
            return False, "not flushed: this case measures cache-resident data on purpose"
        if workload.no_flush_reason:
            return False, f"not flushed: {workload.no_flush_reason}"
        if self.options.flush_always:
            return True, "flushed before each call (--flush always, whatever the working set)"
        if cache is None:
            return False, "not flushed: cache size unknown"
        ratio = working_set / cache
        if working_set < cache:  # it would fit: repeated calls would measure the cache
            return True, f"flushed before each call (working set {ratio:.2g}x last-level cache)"
        return False, f"not flushed (working set {ratio:.2g}x last-level cache)"


def describe_failure(accuracy) -> str:
    if accuracy.tolerance == 0:  # an exact check (collectives, copies): the error is the share of wrong elements
        return f"{accuracy.rel_fro_error:.3g} of the elements wrong ({accuracy.reference})"
    rel = "not finite" if accuracy.rel_fro_error is None else f"{accuracy.rel_fro_error:.3g}"
    text = f"relative error {rel} (tolerance {accuracy.tolerance:.3g})"
    if accuracy.max_abs_tolerance is not None:
        worst = "not finite" if accuracy.max_abs_error is None else f"{accuracy.max_abs_error:.3g}"
        text += f", largest element error {worst} (tolerance {accuracy.max_abs_tolerance:.3g})"
    return text

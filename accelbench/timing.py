"""How a case is timed (docs/method.md). The method, in one place:

1. Warm up: call the work until at least `warmup_s` has passed and `warmup_min_iters` calls
   were made, so compilation, autotuning, handle creation and clock ramp-up are behind us.
2. Sample: each call is bracketed by two events on the device's own clock (CUDA/HPU events;
   on CPU perf_counter_ns, the CPU being synchronous). Where the working set fits in the
   last-level cache, the cache is flushed before each call, outside the two events. Each batch
   of calls starts behind a short device-side wait (`Backend.hold_queue`), so no start event is
   recorded on an idle device, where the host's launch latency would land inside the interval.
3. Repeat adaptively, in batches: stop once there are at least `min_samples` samples covering
   at least `min_time_s` of timed work *and* the median moved by less than `stable_rel`
   over the last batch; or at `max_samples` / `max_time_s` (wall clock), whichever first.
Every sample is kept; statistics are computed from all of them.

Before any of this, the correctness call is timed on the host clock after a synchronize. Where
one call takes longer than the suite's `call_budget_s` (and a second call, past any compiling or
autotuning of the first, does too), the case is skipped with that time: it would blow the
suite's duration. Budgets: quick 0.25 s, standard 10 s, full 60 s per call. A case predicted to
take more than 4x its budget, at the best steady rate a case of the same benchmark and dtype
reached earlier in the run, is skipped without running its call at all (harness.py).

Within one timed call of many steps (an LLM generation), the work marks its step boundaries with
`StepMarks`: device events on the same clock, so the call's first interval (TTFT) and every
step's time come out of the calls the harness times, never from a loop of the benchmark's own.

Across ranks (collectives, tensor parallelism), every loop below runs in lock-step: each sample is
the slowest rank's time for that call, and every decision taken on a clock (warm-up over,
sampling stable) is rank 0's (`distributed.Group`; a single process is a group of one).
"""
from __future__ import annotations

import collections
import time
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Callable, Optional

if TYPE_CHECKING:  # the suite's policies and regimes are read by reports, which import no torch
    from accelbench.backends.base import Backend
from accelbench.distributed import SOLO, Group
from accelbench.stats import SampleStats, median


@dataclass(frozen=True)
class TimingPolicy:
    warmup_s: float = 0.2
    warmup_min_iters: int = 3
    min_samples: int = 10
    max_samples: int = 2000
    min_time_s: float = 0.2
    max_time_s: float = 3.0
    stable_rel: float = 0.01
    batch_target_s: float = 0.05  # how much timed work to queue between synchronizations
    call_budget_s: float = 10.0  # one call longer than this skips the case (0: no budget)
    # Seconds of repeated work between two reads of the energy counter. Quick's short window keeps a
    # quick suite quick; its joules are coarser (a counter read every ~10-100 ms is a larger share).
    energy_window_s: float = 1.0


SUITE_POLICIES = {
    "quick": TimingPolicy(warmup_s=0.05, min_samples=5, min_time_s=0.05, max_time_s=0.5, call_budget_s=0.25,
                          energy_window_s=0.3),
    "standard": TimingPolicy(),
    "full": TimingPolicy(warmup_s=0.5, min_samples=20, min_time_s=1.0, max_time_s=6.0, call_budget_s=60.0),
}


@dataclass(frozen=True)
class Regime:
    """Which state of the device a figure describes (docs/method.md).

    sustained: samples follow the warm-up back to back, the steady state of a long job (on a
    power-capped GPU, at the capped clock). burst: after the usual warm-up (compilation and
    autotuning out of the way), the device idles `cooldown_s` so power and clocks recover, a short
    warm-up of the same work (`warmup_s`) wakes the clocks, and samples are taken for `window_s` of
    timed work only, before the power cap engages. In both, every batch's start event is queued
    behind device work (`Backend.hold_queue`)."""
    name: str
    cooldown_s: float = 0.0
    warmup_s: float = 0.0
    window_s: float = 0.0
    # How often the clocks are read during the samples: a 50 ms window read every 100 ms would
    # see only its two ends, and miss a clock that dips inside it.
    clock_interval_s: float = 0.1

    def policy(self, base: TimingPolicy) -> TimingPolicy:
        """The sampling policy of this regime: the suite's, or burst's short window."""
        if self.name == "sustained":
            return base
        return replace(base, warmup_s=self.warmup_s, warmup_min_iters=2, min_samples=5, min_time_s=self.window_s,
                       max_time_s=self.window_s, stable_rel=float("inf"), batch_target_s=self.window_s / 4)

    def case_id(self, case_id: str) -> str:
        """The id a case's record carries under this regime: sustained figures keep the plain id
        (comparable with every earlier run), others are marked, so the two never pool or compare."""
        return case_id if self.name == "sustained" else f"{case_id}{REGIME_MARK}{self.name}"


REGIMES = {"sustained": Regime("sustained"), "burst": Regime("burst", cooldown_s=1.0, warmup_s=0.01, window_s=0.05,
                                                           clock_interval_s=0.002)}
REGIME_MARK = "@"


def base_case_id(case_id: str) -> str:
    """A record's case id without its regime mark."""
    return case_id.split(REGIME_MARK, 1)[0]


def cool_down(seconds: float) -> None:
    """The burst regime's idle gap: nothing of ours runs on the device."""
    time.sleep(seconds)


# A short look at a call's speed, e.g. to choose between eager calls and graph replay.
GLANCE_POLICY = TimingPolicy(warmup_s=0.0, warmup_min_iters=1, min_samples=10, max_samples=200,
                             min_time_s=0.01, max_time_s=0.1, stable_rel=0.02)


def suite_duration_s(suite: str, cases: int) -> tuple[float, float]:
    """(lower, upper) estimate of a suite's timing time: per case warm-up plus sampling, from
    `min_time_s` at least to `max_time_s` plus an energy window at most. Checks, input drawing
    and skipped cases come on top on slow references and take nothing on skipped cases."""
    p = SUITE_POLICIES[suite]
    return cases * (p.warmup_s + p.min_time_s), cases * (p.warmup_s + p.max_time_s + p.energy_window_s)


def policy_for(suite: str, **overrides: Any) -> TimingPolicy:
    given = {k: v for k, v in overrides.items() if v is not None}
    return replace(SUITE_POLICIES[suite], **given)


def warm_up(backend: Backend, call: Callable[[], Any], policy: TimingPolicy,
            group: Group = SOLO) -> tuple[int, float]:
    """Returns (iterations, seconds). Seconds are host wall time after a synchronize (the
    slowest rank's)."""
    iters = 0
    backend.synchronize()
    start = time.perf_counter()
    while True:
        call()
        backend.mark_step()
        iters += 1
        backend.synchronize()
        elapsed = time.perf_counter() - start
        if group.leader_decides(iters >= policy.warmup_min_iters and elapsed >= policy.warmup_s):
            return iters, group.slowest([elapsed])[0]


def timed_call(backend: Backend, call: Callable[[], Any], group: Group = SOLO) -> tuple[Any, float]:
    """One call and its host wall time after a synchronize (the slowest rank's): (output, seconds)."""
    backend.synchronize()
    start = time.perf_counter()
    output = call()
    backend.mark_step()
    backend.synchronize()
    return output, group.slowest([time.perf_counter() - start])[0]


def timed_batch(backend: Backend, call: Callable[[], Any], batch: int, flush: bool,
                enqueue_s: Optional[list[float]] = None, group: Group = SOLO) -> list[float]:
    """`batch` calls queued back to back, each bracketed by two device events (the cache flushed
    before each, outside the events, when `flush`); one synchronize at the end. Used by the
    samples, the energy windows and the graph choice, so all time the same work the same way.
    `enqueue_s`, where given, receives the host time the batch took to enqueue. Across ranks,
    each call's time is the slowest rank's, exchanged after the synchronize."""
    starts = [backend.event() for _ in range(batch)]
    ends = [backend.event() for _ in range(batch)]
    t0 = time.perf_counter()
    backend.hold_queue()  # the batch follows a synchronize: never start the first interval on an idle device
    for s, e in zip(starts, ends):
        if flush:
            backend.flush_cache()
        s.record()
        call()
        backend.mark_step()
        e.record()
    enqueued = time.perf_counter() - t0
    backend.synchronize()
    times = group.slowest([s.seconds_until(e) for s, e in zip(starts, ends)] + [enqueued])
    if enqueue_s is not None:
        enqueue_s.append(times[-1])
    return times[:-1]


@dataclass(frozen=True)
class Glance:
    """A short look at a call: its device-timed median and CV, and the host time one call takes
    to enqueue (launch-bound work enqueues about as slowly as the device runs it)."""

    median_s: float
    cv: float
    host_s: float


def glance(backend: Backend, call: Callable[[], Any], flush: bool, per_call_estimate_s: float,
           group: Group = SOLO) -> Glance:
    samples: list[float] = []
    enqueue: list[float] = []
    batch = batch_size(0.02, per_call_estimate_s)
    wall_start = time.perf_counter()
    backend.synchronize()
    while group.leader_decides(len(samples) < GLANCE_POLICY.min_samples or (
            sum(samples) < GLANCE_POLICY.min_time_s and time.perf_counter() - wall_start < GLANCE_POLICY.max_time_s)):
        samples += timed_batch(backend, call, batch, flush, enqueue, group)
    stats = SampleStats.from_samples(samples)
    return Glance(stats.median, stats.cv, sum(enqueue) / len(samples))


def batch_size(target_s: float, per_call_estimate_s: float) -> int:
    return max(1, min(100, int(target_s / max(per_call_estimate_s, 1e-7))))


def sample(backend: Backend, call: Callable[[], Any], policy: TimingPolicy, flush: bool,
           per_call_estimate_s: float, group: Group = SOLO) -> list[float]:
    samples: list[float] = []
    batch = batch_size(policy.batch_target_s, per_call_estimate_s)
    wall_start = time.perf_counter()
    while True:
        new = timed_batch(backend, call, batch, flush, group=group)
        previous_median = median(samples) if samples else None
        samples.extend(new)
        enough = len(samples) >= policy.min_samples and sum(samples) >= policy.min_time_s
        stable = previous_median is not None and \
            abs(median(samples) - previous_median) <= policy.stable_rel * previous_median
        if group.leader_decides((enough and stable) or len(samples) >= policy.max_samples or
                                time.perf_counter() - wall_start >= policy.max_time_s):
            return samples
        batch = min(batch, policy.max_samples - len(samples))


PAIRED_ROUNDS = 8


def paired_ratio(backend: Backend, call: Callable[[], Any], other: Callable[[], Any], flush: bool,
                 per_call_estimate_s: float, group: Group = SOLO, rounds: int = PAIRED_ROUNDS) -> float:
    """How much longer `call` takes than `other`: each round times a short batch of each, back to
    back (in turn first, ABBA), and takes the ratio of their medians; the result is the median
    over rounds. Two works timed side by side run under the same clocks and temperature, which
    two cases timed minutes apart do not: a power-capped GPU's sustained clock drifts by several
    percent between them."""
    batch = batch_size(0.01, per_call_estimate_s)
    other()  # whatever it sets up on its first call stays out of the figure
    if backend.probes_budget:
        # A CPU shares its cores with whatever else runs: a busy neighbour stretches one 10 ms batch
        # and not the next. One thread's CPU time (Backend.budget_probe) is what each work costs.
        def cost(fn: Callable[[], Any]) -> float:
            return backend.budget_probe(lambda: [fn() for _ in range(batch)])
    else:
        def cost(fn: Callable[[], Any]) -> float:
            return median(timed_batch(backend, fn, batch, flush, group=group))
    ratios = []
    for i in range(rounds):
        pair = (call, other) if i % 2 == 0 else (other, call)
        first, second = (cost(fn) for fn in pair)
        ratios.append(first / second if i % 2 == 0 else second / first)
    return median(ratios)


class StepMarks:
    """Device events at the step boundaries inside a timed call (see the module docstring), kept
    for the last `keep_calls` calls: `first()` is each call's start to its first mark, `steps()`
    every interval between later marks."""

    def __init__(self, backend: Backend, keep_calls: int):
        self.backend = backend
        self.calls: collections.deque = collections.deque(maxlen=keep_calls)

    def start(self) -> None:
        self.calls.append([])
        self.mark()

    def mark(self) -> None:
        event = self.backend.event()
        event.record()
        self.calls[-1].append(event)

    def first(self) -> list[float]:
        return [m[0].seconds_until(m[1]) for m in self.calls if len(m) > 1]

    def steps(self) -> list[float]:
        return [a.seconds_until(b) for m in self.calls for a, b in zip(m[1:], m[2:])]

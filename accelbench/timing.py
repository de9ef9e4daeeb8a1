"""How a case is timed (design.md §2). The method, in one place:

1. Warm up: call the work until at least `warmup_s` has passed and `warmup_min_iters` calls
   were made, so compilation, autotuning, handle creation and clock ramp-up are behind us.
2. Sample: each call is bracketed by two events on the device's own clock (CUDA/HPU events;
   on CPU perf_counter_ns, the CPU being synchronous). Where the working set fits in the
   last-level cache, the cache is flushed before each call, outside the two events.
3. Repeat adaptively, in batches: stop once there are at least `min_samples` samples covering
   at least `min_time_s` of timed work *and* the median moved by less than `stable_rel`
   over the last batch; or at `max_samples` / `max_time_s` (wall clock), whichever first.
Every sample is kept; statistics are computed from all of them.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Any, Callable

from accelbench.backends.base import Backend
from accelbench.stats import median


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


SUITE_POLICIES = {
    "quick": TimingPolicy(warmup_s=0.05, min_samples=5, min_time_s=0.05, max_time_s=0.5),
    "standard": TimingPolicy(),
    "full": TimingPolicy(warmup_s=0.5, min_samples=20, min_time_s=1.0, max_time_s=6.0),
}


def policy_for(suite: str, **overrides: Any) -> TimingPolicy:
    given = {k: v for k, v in overrides.items() if v is not None}
    return replace(SUITE_POLICIES[suite], **given)


def warm_up(backend: Backend, call: Callable[[], Any], policy: TimingPolicy) -> tuple[int, float]:
    """Returns (iterations, seconds). Seconds are host wall time after a synchronize."""
    iters = 0
    backend.synchronize()
    start = time.perf_counter()
    while True:
        call()
        backend.mark_step()
        iters += 1
        backend.synchronize()
        elapsed = time.perf_counter() - start
        if iters >= policy.warmup_min_iters and elapsed >= policy.warmup_s:
            return iters, elapsed


def sample(backend: Backend, call: Callable[[], Any], policy: TimingPolicy, flush: bool,
           per_call_estimate_s: float) -> list[float]:
    samples: list[float] = []
    batch = max(1, min(100, int(policy.batch_target_s / max(per_call_estimate_s, 1e-7))))
    wall_start = time.perf_counter()
    while True:
        starts = [backend.event() for _ in range(batch)]
        ends = [backend.event() for _ in range(batch)]
        for s, e in zip(starts, ends):
            if flush:
                backend.flush_cache()
            s.record()
            call()
            backend.mark_step()
            e.record()
        backend.synchronize()
        previous_median = median(samples) if samples else None
        samples.extend(s.seconds_until(e) for s, e in zip(starts, ends))
        enough = len(samples) >= policy.min_samples and sum(samples) >= policy.min_time_s
        stable = previous_median is not None and \
            abs(median(samples) - previous_median) <= policy.stable_rel * previous_median
        if (enough and stable) or len(samples) >= policy.max_samples or \
                time.perf_counter() - wall_start >= policy.max_time_s:
            return samples
        batch = min(batch, policy.max_samples - len(samples))

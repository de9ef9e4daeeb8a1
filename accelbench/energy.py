"""Energy windows (docs/method.md, Energy; docs/metrics.md).

After a case's latency samples, the same work is repeated, exactly as it was timed (same call,
graph or not, same cache flushes, each call between device events), for at least `window_s`
(1 s by default: counters update about every 100 ms) between two reads of the device's
cumulative energy counter. Where the samples flushed the cache, the energy of the flushes,
measured once per run on flushes alone, is subtracted. A sampler thread reads power and
clock-event reasons every ~100 ms over the same window: it provides the cross-check of the
counter, the throttle flags, and the whole figure on devices with no counter (then marked
"sampled"). Energy windows are separate from
the latency samples, so they never distort them.

Across ranks, every rank measures its own board over the same window, in lock-step, and the
figure is the sum over distinct boards (ranks sharing one board, such as CPU ranks on one socket
package, count it once), stated as such (`EnergyRecord.boards`).
"""
from __future__ import annotations

import dataclasses
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from accelbench.backends.base import Backend
from accelbench.distributed import SOLO, Group
from accelbench.records import ClockRecord, EnergyRecord
from accelbench.stats import median
from accelbench.telemetry import Telemetry
from accelbench.timing import batch_size, timed_batch


@dataclass
class PowerTrace:
    times: list[float] = field(default_factory=list)
    watts: list[float] = field(default_factory=list)
    reasons: set[str] = field(default_factory=set)
    sm_mhz: list[float] = field(default_factory=list)
    mem_mhz: list[float] = field(default_factory=list)
    # Readings of the cumulative energy counter (with `counter=True`): (perf_counter time, joules).
    counter: list[tuple[float, float]] = field(default_factory=list)

    def clocks(self) -> Optional[ClockRecord]:
        """Average and minimum of the clocks read, or None where none were readable."""
        if not self.sm_mhz and not self.mem_mhz:
            return None

        def avg(values: list[float]) -> Optional[float]:
            return sum(values) / len(values) if values else None
        return ClockRecord(max(len(self.sm_mhz), len(self.mem_mhz)), avg(self.sm_mhz), min(self.sm_mhz, default=None),
                           avg(self.mem_mhz), min(self.mem_mhz, default=None))

    def mean_w(self, start: float, end: float) -> Optional[float]:
        """Time-weighted mean power over [start, end] (trapezoids between samples)."""
        pts = [(t, w) for t, w in zip(self.times, self.watts) if start <= t <= end]
        if len(pts) < 2:
            return pts[0][1] if pts else None
        area = sum((t1 - t0) * (w0 + w1) / 2 for (t0, w0), (t1, w1) in zip(pts, pts[1:]))
        return area / (pts[-1][0] - pts[0][0])

    def joules_between(self, start: float, end: float) -> Optional[float]:
        """The counter's increase over [start, end], each end interpolated between the readings
        around it; None where the readings do not bracket the interval."""
        def at(t: float) -> Optional[float]:
            before = [(ti, j) for ti, j in self.counter if ti <= t]
            after = [(ti, j) for ti, j in self.counter if ti >= t]
            if not before or not after:
                return None
            (t0, j0), (t1, j1) = before[-1], after[0]
            return j0 if t1 == t0 else j0 + (j1 - j0) * (t - t0) / (t1 - t0)
        a, b = at(start), at(end)
        return None if a is None or b is None else b - a


class PowerSampler:
    """Background thread reading power and/or throttle reasons every `interval_s`."""

    def __init__(self, telemetry: Telemetry, interval_s: float = 0.1, read_reasons: bool = True,
                 power: bool = True, counter: bool = False):
        self.telemetry = telemetry
        self.interval_s = interval_s
        self.read_reasons = read_reasons
        self.read_power = power
        self.read_counter = counter
        self.trace = PowerTrace()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="accelbench-power", daemon=True)

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._read_counter()
            watts = self.telemetry.power_w() if self.read_power else None
            if watts is not None:
                self.trace.times.append(time.perf_counter())
                self.trace.watts.append(watts)
            if self.read_reasons:
                self._read_state()
            self._stop.wait(self.interval_s)

    def _read_state(self) -> None:
        state = self.telemetry.state()
        self.trace.reasons.update(state.throttle_reasons)
        if state.sm_clock_mhz is not None:
            self.trace.sm_mhz.append(float(state.sm_clock_mhz))
        if state.mem_clock_mhz is not None:
            self.trace.mem_mhz.append(float(state.mem_clock_mhz))

    def _read_counter(self) -> None:
        if self.read_counter:
            joules = self.telemetry.energy_j()
            if joules is not None:
                self.trace.counter.append((time.perf_counter(), joules))

    def __enter__(self) -> "PowerSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()
        self._read_counter()  # a reading after the watched work's end, to bracket it
        if self.read_reasons:  # the window's end: a window shorter than the interval still gets two reads
            self._read_state()


def measure_idle_power(telemetry: Telemetry, seconds: float = 1.0) -> Optional[float]:
    """Board power with nothing of ours running, from the counter where one exists."""
    source = telemetry.energy_source
    if source is None:
        return None
    with PowerSampler(telemetry, read_reasons=False) as sampler:
        e0, t0 = telemetry.energy_j(), time.perf_counter()
        time.sleep(seconds)
        e1, t1 = telemetry.energy_j(), time.perf_counter()
    if source == "counter" and e0 is not None and e1 is not None:
        return (e1 - e0) / (t1 - t0)
    return sampler.trace.mean_w(t0, t1)


def energy_window(backend: Backend, call: Callable[[], Any], telemetry: Telemetry, window_s: float,
                  per_call_s: float, idle_w: Optional[float], flush: bool = False,
                  flush_joules: Optional[float] = None, group: Group = SOLO,
                  board: str = "") -> Optional[EnergyRecord]:
    """Repeat `call` for at least `window_s` and measure the energy it used; None where the
    device has no energy source (nothing would be measured).

    The calls run exactly as the timed samples ran them (`timing.timed_batch`: device events
    around each call, the cache flushed before each when `flush`), so the window's per-call time
    can be set beside the timed median. With `flush`, `flush_joules` (the energy of one flush,
    measured on flushes alone) is subtracted for each call. Across ranks, `board` names this
    rank's board (host and device) and the record is the sum over distinct boards; None where
    any rank has no energy source."""
    source = telemetry.energy_source
    if not all(group.gather(source is not None)):
        return None
    batch = batch_size(0.1, per_call_s)  # sync about every 100 ms
    per_call: list[float] = []
    with PowerSampler(telemetry) as sampler:
        backend.synchronize()
        e0, t0 = telemetry.energy_j(), time.perf_counter()
        while group.leader_decides(time.perf_counter() - t0 < window_s):
            per_call += timed_batch(backend, call, batch, flush, group=group)
        e1, t1 = telemetry.energy_j(), time.perf_counter()
        time.sleep(min(sampler.interval_s, 0.1))  # let the sampler see the window's end
    duration = t1 - t0
    sampled = sampler.trace.mean_w(t0, t1)
    if source == "counter" and e0 is not None and e1 is not None:
        joules = e1 - e0
    elif sampled is not None:
        source, joules = "sampled", sampled * duration  # what was actually used, not what was hoped for
    else:
        source, joules = None, 0.0
    iterations = len(per_call)
    subtracted = flush_joules * iterations if flush and flush_joules is not None else None
    local = None if source is None else EnergyRecord(
        source=source, reader=telemetry.reader, window_s=duration, iterations=iterations,
        joules=joules - (subtracted or 0.0), avg_power_w=joules / duration, idle_power_w=idle_w,
        sampled_avg_power_w=sampled, power_samples=sum(1 for t in sampler.trace.times if t0 <= t <= t1),
        throttle_reasons_seen=sorted(sampler.trace.reasons), per_call_s=median(per_call),
        flushed=flush, flush_joules=subtracted)
    return local if group.world_size == 1 else sum_boards(group.gather((board, local)))


def watched_energy(telemetry: Telemetry, trace: PowerTrace, start: float, end: float,
                   idle_w: Optional[float]) -> Optional[EnergyRecord]:
    """The energy over [start, end] of work the harness watched rather than called (a serving
    level's steady window), from counter readings taken every sampler interval around it (each end
    interpolated), else from sampled power; None where neither was readable."""
    duration = end - start
    if duration <= 0:
        return None
    sampled = trace.mean_w(start, end)
    joules = trace.joules_between(start, end)
    source = "counter"
    if joules is None:
        if sampled is None:
            return None
        source, joules = "sampled", sampled * duration
    return EnergyRecord(source=source, reader=telemetry.reader, window_s=duration, iterations=1, joules=joules,
                        avg_power_w=joules / duration, idle_power_w=idle_w, sampled_avg_power_w=sampled,
                        power_samples=sum(1 for t in trace.times if start <= t <= end),
                        throttle_reasons_seen=sorted(trace.reasons))


def sum_boards(per_rank: list[tuple[str, Optional[EnergyRecord]]]) -> Optional[EnergyRecord]:
    """One record for the whole job: joules and watts summed over distinct boards (the first
    rank on each board speaks for it); None where a board could not be measured."""
    boards: dict[str, Optional[EnergyRecord]] = {}
    for board, record in per_rank:
        boards.setdefault(board, record)
    records = list(boards.values())
    if any(r is None for r in records):
        return None

    def total(name: str) -> Optional[float]:
        values = [getattr(r, name) for r in records]
        return None if any(v is None for v in values) else sum(values)

    first = records[0]
    return dataclasses.replace(
        first, source="counter" if all(r.source == "counter" for r in records) else "sampled",
        window_s=max(r.window_s for r in records), joules=total("joules"), avg_power_w=total("avg_power_w"),
        idle_power_w=total("idle_power_w"), sampled_avg_power_w=total("sampled_avg_power_w"),
        power_samples=sum(r.power_samples for r in records), flush_joules=total("flush_joules"),
        throttle_reasons_seen=sorted({x for r in records for x in r.throttle_reasons_seen}), boards=len(records))

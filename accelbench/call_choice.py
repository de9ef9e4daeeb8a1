"""How a case's call is made before it is timed: graphs chosen by measurement (a captured graph is
replayed where it is faster, or steadier within 5 %, than eager calls, and only after its output
passed the check), and whether the cache is flushed before each call (docs/method.md)."""
from __future__ import annotations

import math
from typing import Any, Callable, Optional

import torch

from accelbench.backends.base import Backend
from accelbench.benchmark import Workload
from accelbench.distributed import Group
from accelbench.records import Accuracy
from accelbench.timing import glance

# Graphs remove launch gaps, which only matter for calls of a few milliseconds or less: above
# this, auto mode does not try them.
GRAPH_TRY_BELOW_S = 2e-3
GRAPH_STEADIER_WITHIN = 0.05


def seconds(t: float) -> str:
    return f"{t * 1e6:.1f} µs" if t < 1e-3 else f"{t * 1e3:.2f} ms" if t < 1 else f"{t:.2f} s"


def poison(output: Any) -> None:
    """Fill a float output with NaN, so an element a replay forgets to write fails the check."""
    if isinstance(output, torch.Tensor) and output.is_floating_point():
        output.fill_(math.nan)


def choose_call(backend: Backend, workload: Workload, mode: str, flush: bool, per_call_s: float, group: Group,
                check: Callable[[Any], tuple[Accuracy, str]]
                ) -> tuple[Optional[Callable[[], Any]], bool, Optional[str], Any]:
    """(call to time, graphs?, how it was chosen, the graph check's Accuracy). Graphs are
    chosen by measurement: the eager call is glanced at under the timed regime; where it is
    short (under GRAPH_TRY_BELOW_S) or launch-bound (its host enqueue time is at least half
    its device time), the replayed graph is glanced at too and the faster is kept (within
    5%, the steadier). A graph's output is checked once against the reference before it may
    be kept (`check`: the agreed check of the case); a wrong one returns call None."""
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
    checked, _ = check(captured.output)
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


def cache_decision(workload: Workload, cache: Optional[int], flush_always: bool) -> tuple[bool, str]:
    """Whether the last-level cache is flushed before each call, and why (docs/method.md)."""
    working_set = workload.working_set_bytes
    if workload.measures_cache:
        return False, "not flushed: this case measures cache-resident data on purpose"
    if workload.no_flush_reason:
        return False, f"not flushed: {workload.no_flush_reason}"
    if flush_always:
        return True, "flushed before each call (--flush always, whatever the working set)"
    if cache is None:
        return False, "not flushed: cache size unknown"
    ratio = working_set / cache
    if working_set < cache:  # it would fit: repeated calls would measure the cache
        return True, f"flushed before each call (working set {ratio:.2g}x last-level cache)"
    return False, f"not flushed (working set {ratio:.2g}x last-level cache)"

"""One serving level's figures from what the load generator recorded (docs/metrics.md, "serve").

- **Steady window**: from the send of the first request after the warm-up (by then every user has
  a request in flight) to the moment the first user found no request left (the ramp-down starts);
  at a request rate (open loop), to the last send. Throughput counts the output tokens that
  *arrived* in the window, over its length; the latency percentiles are over the requests sent
  and finished within it (at a request rate: every request sent in it).
- **Tokens of a chunk**: a server may stream several tokens in one chunk; a request's tokens (its
  `usage.completion_tokens`) are spread evenly over its chunks.
- **Samples** (what `bench compare` tests): the window cut into about 20 runs of consecutive
  token arrivals of equal count, each one's seconds per output token for the whole server.
- **The check**: every request of the level finished, its streamed chunks do not outnumber the
  tokens the server counted, and, where the length was forced, it counted exactly that many. A
  level with any other request fails with no figure.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional

import numpy as np

from accelbench.benchmark import Observation, Work
from accelbench.e2e.serve.slo import Slo
from accelbench.records import Accuracy, Metric

if TYPE_CHECKING:  # the client imports aiohttp, which only a serving run needs
    from accelbench.e2e.serve.client import LevelResult, RequestResult

SLICES = 20
PERCENTILES = (50, 90, 99)


@dataclass(frozen=True)
class LevelPlan:
    concurrency: int
    input_tokens: int
    output_tokens: int
    forced: bool  # the engine was asked for exactly `output_tokens`
    accelerators: int
    slos: tuple[Slo, ...]


def check(plan: LevelPlan, level: "LevelResult") -> tuple[Accuracy, str]:
    wrong: list[str] = []
    for r in level.requests:
        if not r.ok:
            wrong.append(r.error or "did not finish")
        elif plan.forced and r.completion_tokens != plan.output_tokens:
            wrong.append(f"the server counted {r.completion_tokens} output tokens where {plan.output_tokens} were asked")
    share = len(wrong) / len(level.requests) if level.requests else 1.0
    what = ("no request was measured" if not level.requests else
            f"{len(wrong)} of {len(level.requests)} requests wrong, e.g. {wrong[0]}" if wrong else "")
    accuracy = Accuracy(passed=not wrong and bool(level.requests), rel_fro_error=share, max_abs_error=None,
                        sqnr_db=None, tolerance=0.0,
                        reference="each request's streamed tokens against the server's usage count"
                                  + (" and the forced length" if plan.forced else ""))
    return accuracy, what


def _tokens_per_chunk(r: "RequestResult") -> float:
    return (r.completion_tokens or 0) / len(r.token_times) if r.token_times else 0.0


def _percentiles(name: str, values: list[float], unit: str, note: str) -> list[Metric]:
    if not values:
        return [Metric(f"{name}_p{p}", None, unit, "no request in the window") for p in PERCENTILES]
    return [Metric(f"{name}_p{p}", float(np.percentile(values, p)), unit, note if p == 50 else None)
            for p in PERCENTILES]


def observe(plan: LevelPlan, level: "LevelResult") -> Observation:
    """The level's Observation: checked, then its figures over the steady window."""
    accuracy, wrong = check(plan, level)
    facts = {"requests": len(level.requests), "client_lag_p50_ms": 1e3 * level.client.lag_p50_s,
             "client_lag_p99_ms": 1e3 * level.client.lag_p99_s, "client_cpu": level.client.cpu_fraction,
             "accelerators": plan.accelerators}
    prompt_lengths = [r.prompt_tokens for r in level.requests if r.prompt_tokens]
    if prompt_lengths:
        facts["prompt_tokens_mean"] = float(np.mean(prompt_lengths))
    if level.server_gone:
        return Observation(accuracy, f"the server stopped answering during the level: {level.server_gone}",
                           wrong, facts=facts)
    if not accuracy.passed:
        return Observation(accuracy, None, wrong, facts=facts)
    if level.client.limited:
        return Observation(accuracy, None, skipped=level.client.reason(), facts=facts)
    start = min(r.sent for r in level.requests)
    end = level.drain_started if level.drain_started and level.drain_started > start else level.ended
    arrivals = sorted((t, _tokens_per_chunk(r)) for r in level.requests for t in r.token_times if start <= t <= end)
    tokens = sum(w for _, w in arrivals)
    window = end - start
    # A closed loop's ramp-down runs fewer streams than its level: its requests are cut. An open
    # loop's window ends with its last send, and every measured request was sent in it.
    inside = [r for r in level.requests if r.sent >= start and r.ended is not None
              and (r.ended <= end or level.rate is not None)]
    if level.rate is not None:
        facts.update(request_rate=level.rate, sent_rate=(len(level.requests) - 1) / window if window > 0 else None)
    facts.update(window_s=window, window_requests=len(inside),
                 output_tokens_mean=float(np.mean([r.completion_tokens for r in level.requests])))
    if tokens <= 0 or window <= 0 or not inside:
        return Observation(accuracy, None, skipped="no request finished inside the steady window "
                                                   "(give the level more requests)", facts=facts)
    rate = tokens / window
    per_user = [1.0 / r.tpot for r in inside if r.tpot]
    gaps = [g / _tokens_per_chunk(r) for r in inside for g in r.gaps()]
    metrics = [
        Metric("output_tokens_per_s", rate, "tokens/s", f"output tokens arriving in the {window:.1f} s steady window"),
        Metric("output_tokens_per_s_per_accelerator", rate / plan.accelerators, "tokens/s",
               f"over {plan.accelerators} accelerator{'s' if plan.accelerators > 1 else ''}"),
        Metric("requests_per_s", len(inside) / window, "requests/s", "requests sent and finished in the window"),
        Metric("tokens_per_s_per_user", float(np.median(per_user)) if per_user else None, "tokens/s",
               "median over requests of 1 / TPOT (interactivity)"),
        *_percentiles("ttft", [r.ttft for r in inside], "s", "time to first token"),
        *_percentiles("tpot", [r.tpot for r in inside if r.tpot], "s", "time per output token after the first"),
        *_percentiles("itl", gaps, "s", "inter-token latency (a chunk's gap over its tokens)"),
        *_percentiles("e2e", [r.latency for r in inside], "s", "request latency, send to end of stream"),
    ]
    for slo in plan.slos:
        good = [r for r in inside if r.ttft <= slo.ttft_s and (r.tpot or 0.0) <= slo.tpot_s]
        metrics += [Metric(f"goodput_{slo.name}", len(good) / window, "requests/s", slo.source),
                    Metric(f"goodput_tokens_{slo.name}", sum(r.completion_tokens for r in good) / window, "tokens/s",
                           slo.source),
                    Metric(f"slo_met_{slo.name}", 100.0 * len(good) / len(inside), "%", slo.source)]
    return Observation(accuracy, None, samples_s=_slices(arrivals), metrics=metrics, work=Work(tokens=tokens),
                       window=(start, end), timer="host clock at the client (perf_counter), per streamed chunk",
                       warmup=level.warmup, warmup_s=start - level.began if level.began else 0.0, facts=facts)


def _slices(arrivals: list[tuple[float, float]]) -> list[float]:
    """Seconds per output token (the whole server's) over ~SLICES runs of consecutive arrivals."""
    times = [t for t, _ in arrivals]
    weights = np.cumsum([w for _, w in arrivals])
    step = max(2, len(times) // SLICES)
    out = []
    for i in range(0, len(times) - step, step):
        seconds, tokens = times[i + step] - times[i], weights[i + step] - weights[i]
        if seconds > 0 and tokens > 0:
            out.append(seconds / tokens)
    return out


def saturated(previous: Optional[Observation], current: Observation) -> Optional[str]:
    """Why the sweep should stop after `current`: its throughput grew under 5 % over the last level's
    while TPOT at the median rose by over 10 %; None where it should go on."""
    if previous is None or not previous.metrics or not current.metrics:
        return None

    def value(obs: Observation, name: str) -> Optional[float]:
        return next((m.value for m in obs.metrics if m.name == name), None)
    t0, t1 = value(previous, "output_tokens_per_s"), value(current, "output_tokens_per_s")
    l0, l1 = value(previous, "tpot_p50"), value(current, "tpot_p50")
    if None in (t0, t1, l0, l1) or not t0 or not l0:
        return None
    if t1 < 1.05 * t0 and l1 > 1.10 * l0:
        return (f"throughput {t0:.1f} -> {t1:.1f} tokens/s ({100 * (t1 / t0 - 1):+.0f} %) while the median TPOT rose "
                f"{1e3 * l0:.1f} -> {1e3 * l1:.1f} ms")
    return None

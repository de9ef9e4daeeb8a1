"""Service-level objectives a serving level is judged against (docs/metrics.md, "serve").

A request *meets* an SLO when its time to first token and its time per output token are both
within the bounds; **goodput** is the rate of such requests (and of their output tokens) over the
steady window. MLPerf Inference bounds the 99th percentiles of a whole run instead; the level's
p99s are reported beside, so either reading is possible.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from accelbench.errors import UsageError


@dataclass(frozen=True)
class Slo:
    name: str
    ttft_s: float
    tpot_s: float
    source: str = ""


# MLPerf Inference (v5.1) Llama-3.1-8B: the Server and Interactive scenarios' p99 latency bounds.
PRESETS = (
    Slo("mlperf-8b-server", 2.0, 0.100, "MLPerf Inference Llama-3.1-8B Server: TTFT 2 s, TPOT 100 ms"),
    Slo("mlperf-8b-interactive", 0.5, 0.030, "MLPerf Inference Llama-3.1-8B Interactive: TTFT 0.5 s, TPOT 30 ms"),
)

_DURATION = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*(ms|s)?\s*$")


def _seconds(text: str, what: str) -> float:
    match = _DURATION.match(text)
    if not match:
        raise UsageError(f"--slo {what}={text!r}: not a duration (e.g. 2s, 100ms)")
    value = float(match.group(1)) / (1000.0 if match.group(2) == "ms" else 1.0)
    if value <= 0:
        raise UsageError(f"--slo {what}={text!r}: must be positive")
    return value


def parse_slo(text: str) -> Slo:
    """`ttft=2s,tpot=100ms` (a bare number is seconds) as the user's SLO, named "user"."""
    parts = dict(p.split("=", 1) for p in text.split(",") if "=" in p)
    unknown = set(parts) - {"ttft", "tpot"}
    if unknown or set(parts) != {"ttft", "tpot"} or text.count("=") != 2:
        raise UsageError(f"--slo {text!r}: give both bounds as ttft=DURATION,tpot=DURATION (e.g. ttft=2s,tpot=100ms)")
    ttft, tpot = _seconds(parts["ttft"], "ttft"), _seconds(parts["tpot"], "tpot")
    return Slo("user", ttft, tpot, f"--slo: TTFT {ttft * 1e3:g} ms, TPOT {tpot * 1e3:g} ms")

"""Summary statistics of per-iteration timing samples (docs/method.md).

Percentiles use linear interpolation between closest ranks (the same as numpy's default),
so p10/p90/IQR agree with what a reader recomputes from the stored samples.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """q in [0, 100]; `sorted_values` must be sorted and non-empty."""
    if not sorted_values:
        raise ValueError("percentile of no samples")
    if not 0.0 <= q <= 100.0:
        raise ValueError(f"percentile {q} outside [0, 100]")
    pos = (len(sorted_values) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    frac = pos - lo
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * frac


@dataclass(frozen=True)
class SampleStats:
    """Statistics of one case's samples, in seconds (cv is dimensionless)."""

    n: int
    median: float
    mean: float
    min: float
    max: float
    p10: float
    p90: float
    iqr: float
    stdev: float
    cv: float

    @classmethod
    def from_samples(cls, samples: Sequence[float]) -> "SampleStats":
        if not samples:
            raise ValueError("no samples to summarize")
        if any(not math.isfinite(s) or s < 0 for s in samples):
            raise ValueError("samples must be finite and non-negative")
        ordered = sorted(samples)
        n = len(ordered)
        mean = sum(ordered) / n
        var = sum((s - mean) ** 2 for s in ordered) / (n - 1) if n > 1 else 0.0
        stdev = math.sqrt(var)
        return cls(
            n=n,
            median=percentile(ordered, 50),
            mean=mean,
            min=ordered[0],
            max=ordered[-1],
            p10=percentile(ordered, 10),
            p90=percentile(ordered, 90),
            iqr=percentile(ordered, 75) - percentile(ordered, 25),
            stdev=stdev,
            cv=stdev / mean if mean > 0 else 0.0,
        )


def median(samples: Sequence[float]) -> float:
    return percentile(sorted(samples), 50)


# bench compare's default: a smaller change of a median is "unchanged". Repeats whose medians
# spread wider than this cannot be told apart from a regression by it (reports flag them).
COMPARE_THRESHOLD = 0.10


@dataclass(frozen=True)
class RepeatSpread:
    """How far the medians of one case's repeats lie apart."""
    repeats: int
    cv: float  # stdev / mean of the repeats' medians
    range_rel: float  # (max - min) / median of the repeats' medians

    @classmethod
    def of(cls, medians: Sequence[float]) -> "RepeatSpread":
        s = SampleStats.from_samples(medians)
        return cls(s.n, s.cv, (s.max - s.min) / s.median if s.median else 0.0)

    @property
    def beyond_compare_threshold(self) -> bool:
        return self.range_rel > COMPARE_THRESHOLD

"""Is an accuracy difference real? Per-item outcomes of two precisions on the same items, paired.

For each task: the accuracy of each precision with its standard error (binomial, over items), and
for a precision against the unquantized model on the *same* items the paired difference
d = mean(b_i - a_i) with a 95 % interval and McNemar's exact test on the discordant items
(scipy.stats.binomtest). For right/wrong outcomes (every task here) the interval is Newcombe's
(1998, method 10: Wilson score intervals of the two accuracies, combined with the continuity-
corrected correlation of the pairs), which keeps its coverage when few items differ: a
bootstrap of two identical lists gives [0, 0] whatever the number of items, as if two items proved
two precisions equal. Other outcomes get a 95 % percentile interval from the paired bootstrap
(items resampled together, seeded). Verdicts (docs/metrics.md, "accuracy"):

- "within 1 point": the whole interval lies inside (-1, +1) points: any loss is smaller than a point;
- "worse" / "better": the interval lies wholly below / above zero and reaches past a point;
- "cannot tell with N items": the interval holds zero and reaches past a point.

`items_for_one_point`: how many items a paired comparison with this discordance rate would need
for its 95 % interval to be ±1 point wide (n = (1.96 s / 0.01)^2, s the per-item SD of b_i - a_i).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np

ONE_POINT = 0.01
Z95 = 1.959963984540054


@dataclass(frozen=True)
class Score:
    accuracy: float
    stderr: float
    items: int


@dataclass(frozen=True)
class PairedDifference:
    delta: float  # candidate - reference, as a fraction (0.01 = one point)
    low: float  # 95 % interval of delta
    high: float
    p_value: Optional[float]  # McNemar's exact test; None where no item differs
    items: int
    discordant: int
    items_for_one_point: Optional[int]
    verdict: str


def score(outcomes: Sequence[float]) -> Score:
    x = np.asarray(outcomes, dtype=float)
    n = len(x)
    if n == 0:
        raise ValueError("no items")
    mean = float(x.mean())
    stderr = float(x.std(ddof=1) / math.sqrt(n)) if n > 1 else float("nan")
    return Score(mean, stderr, n)


def paired_difference(reference: Sequence[float], candidate: Sequence[float], resamples: int = 10_000,
                      seed: int = 0) -> PairedDifference:
    from scipy import stats
    a, b = np.asarray(reference, dtype=float), np.asarray(candidate, dtype=float)
    if a.shape != b.shape or a.ndim != 1 or len(a) == 0:
        raise ValueError(f"paired outcomes must be two equal, non-empty lists (got {a.shape} and {b.shape})")
    d = b - a
    n = len(d)
    delta = float(d.mean())
    if set(np.unique(np.concatenate([a, b]))) <= {0.0, 1.0}:
        low, high = newcombe_interval(a, b)
    elif np.all(d == d[0]):  # no spread: the bootstrap's interval is the point itself
        low = high = delta
    else:
        result = stats.bootstrap((d,), np.mean, n_resamples=resamples, confidence_level=0.95,
                                 method="percentile", random_state=np.random.default_rng(seed), vectorized=True)
        low, high = float(result.confidence_interval.low), float(result.confidence_interval.high)
    # McNemar on binary outcomes: of the items where the two disagree, how many went each way.
    worse, better = int(np.sum(d < 0)), int(np.sum(d > 0))
    discordant = worse + better
    p_value = float(stats.binomtest(better, discordant, 0.5).pvalue) if discordant else None
    sd = float(d.std(ddof=1)) if n > 1 else 0.0
    needed = math.ceil((Z95 * sd / ONE_POINT) ** 2) if sd > 0 else None
    return PairedDifference(delta, low, high, p_value, n, discordant, needed, verdict(low, high, n))


def wilson(successes: float, n: int, z: float = Z95) -> tuple[float, float]:
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return centre - half, centre + half


def newcombe_interval(reference: np.ndarray, candidate: np.ndarray) -> tuple[float, float]:
    """95 % interval of mean(candidate) - mean(reference) for paired 0/1 outcomes (Newcombe 1998,
    method 10)."""
    n = len(reference)
    both = float(np.sum((reference == 1) & (candidate == 1)))
    lost = float(np.sum((reference == 1) & (candidate == 0)))
    gained = float(np.sum((reference == 0) & (candidate == 1)))
    neither = n - both - lost - gained
    p1, p2 = (both + lost) / n, (both + gained) / n
    l1, u1 = wilson(both + lost, n)
    l2, u2 = wilson(both + gained, n)
    denominator = (both + lost) * (gained + neither) * (both + gained) * (lost + neither)
    numerator = both * neither - lost * gained
    if numerator > 0:
        numerator = max(numerator - n / 2, 0.0)
    phi = numerator / math.sqrt(denominator) if denominator > 0 else 0.0
    down = math.sqrt(max((p2 - l2) ** 2 - 2 * phi * (p2 - l2) * (u1 - p1) + (u1 - p1) ** 2, 0.0))
    up = math.sqrt(max((u2 - p2) ** 2 - 2 * phi * (u2 - p2) * (p1 - l1) + (p1 - l1) ** 2, 0.0))
    return p2 - p1 - down, p2 - p1 + up


def verdict(low: float, high: float, items: int) -> str:
    if low > -ONE_POINT and high < ONE_POINT:
        return "within 1 point"
    if high < 0:
        return "worse"
    if low > 0:
        return "better"
    return f"cannot tell with {items} items"

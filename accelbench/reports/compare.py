"""`bench compare`: did the candidate run get slower than the baseline, case by case?

Method (asv's, on the samples every case keeps):
- Each case is compared on its headline metric (TFLOP/s, bus bandwidth, GB/s, tokens/s; time where it has
  none). Its samples are the per-call times; a throughput's samples are its value scaled by the
  case's median time over each sample's time, so they vary as the throughput did.
- Consecutive samples of one run are not independent: a power-capped device drifts between clock
  states for seconds at a time. So the tests use block medians (the samples cut into BLOCKS contiguous
  blocks, where there are at least twice as many samples), the "batch means" of simulation output
  analysis: a drift inside a run shows up as spread between its blocks.
- ratio = candidate median / baseline median of that metric, with a 95 % bootstrap confidence interval
  (scipy.stats.bootstrap, percentile method, each run's blocks resampled independently).
- significant: a two-sided Mann-Whitney U test of the two runs' blocks (scipy.stats.mannwhitneyu)
  below `alpha`, and the two runs' block ranges apart (where one run's blocks reach the other's
  figure, that figure happened inside the run: asv also asks that the runs' intervals not overlap).
- verdict, with `gain` = the ratio turned so that above 1 is better:
  |gain - 1| < threshold -> unchanged; otherwise significant -> regressed (gain < 1) or improved;
  otherwise noisy. A change beyond the threshold in a case that either run measured beside other
  load (other processes kept at least a quarter of a CPU busy: contention.py) is noisy too, whatever
  the test says: that run's figure was the machine's at the time, not the code's. Cases only in the
  candidate are new, only in the baseline (or skipped now) missing, skipped in both runs skipped (counted apart: no figure was lost), failed in the candidate failed-now.
- A run made with --repeat N holds N records of each case: they are pooled in run order (`pooled`),
  so the blocks span the repeats, and a shift between repeats (the between-run noise one run alone
  cannot show) makes the runs' blocks overlap instead of passing for a regression.
- The default threshold is 10 % (asv's `continuous` factor): two back-to-back standard GEMM runs of one
  commit on one H100 (700 W cap) moved steady cases by up to 6 % and launch-bound ones by up to 15 %.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np
from scipy import stats as st

from accelbench.contention import loaded
from accelbench.records import CaseRecord, Metric
from accelbench.reports.fingerprint import differences
from accelbench.stats import COMPARE_THRESHOLD
from accelbench.store import RUN_FILE, LoadedRun, load_run

VERDICTS = ("regressed", "failed-now", "improved", "noisy", "new", "missing", "skipped", "unchanged")
DEFAULT_THRESHOLD = COMPARE_THRESHOLD
DEFAULT_ALPHA = 0.05
BOOTSTRAP_RESAMPLES = 999
BLOCKS = 10


@dataclass
class CaseComparison:
    benchmark: str
    case_id: str
    verdict: str
    metric: Optional[str] = None
    unit: Optional[str] = None
    higher_is_better: bool = True
    baseline: Optional[float] = None  # the metric's median in each run
    candidate: Optional[float] = None
    ratio: Optional[float] = None  # candidate / baseline
    ci_low: Optional[float] = None
    ci_high: Optional[float] = None
    p_value: Optional[float] = None
    samples: tuple[int, int] = (0, 0)
    throttled: str = ""  # "baseline", "candidate", "both" or ""
    loaded: str = ""  # which run measured it beside other load (contention.py), as `throttled`
    note: str = ""

    @property
    def change_pct(self) -> Optional[float]:
        """Signed change of the metric in percent (positive: the number went up)."""
        return None if self.ratio is None else 100.0 * (self.ratio - 1.0)


@dataclass
class Comparison:
    baseline: LoadedRun
    candidate: LoadedRun
    threshold: float
    alpha: float
    cases: list[CaseComparison]
    differences: list[str] = field(default_factory=list)

    def count(self, verdict: str) -> int:
        return sum(1 for c in self.cases if c.verdict == verdict)

    @property
    def failing(self) -> list[CaseComparison]:
        """What makes a nightly job fail: significant regressions, and cases that fail now."""
        return [c for c in self.cases if c.verdict in ("regressed", "failed-now")]

    @property
    def exit_code(self) -> int:
        return 1 if self.failing else 0

    def summary(self) -> str:
        counts = ", ".join(f"{self.count(v)} {v}" for v in VERDICTS if self.count(v))
        text = (f"{len(self.cases)} case{'' if len(self.cases) == 1 else 's'}: {counts or 'none'} (threshold {self.threshold:.1%}, "
                f"Mann-Whitney U at alpha {self.alpha})")
        beside = sum(1 for c in self.cases if c.loaded)
        if beside:
            text += (f"; {beside} measured beside other load on the host: changes there are not judged "
                     "(rerun on a quiet machine)")
        return text

    def as_json(self) -> dict:
        return {"baseline": self.baseline.info.run_id, "candidate": self.candidate.info.run_id,
                "threshold": self.threshold, "alpha": self.alpha, "differences": self.differences,
                "summary": {v: self.count(v) for v in VERDICTS}, "exit_code": self.exit_code,
                "cases": [asdict(c) | {"change_pct": c.change_pct} for c in self.cases]}


def headline_metric(record: CaseRecord) -> tuple[str, str, bool]:
    """(metric, unit, higher_is_better) a case is compared on: the figure it is known by (its
    benchmark's declaration, recorded in the case; higher is better), else its time."""
    m = record.headline_metric()
    return (m.name, m.unit, True) if m is not None else ("time", "s", False)


def metric_samples(record: CaseRecord, metric: str) -> np.ndarray:
    times = np.asarray(record.samples_s, dtype=float)
    if metric == "time":
        return times
    median_time = float(np.median(times))
    return record.metric(metric).value * median_time / times


def block_medians(samples: np.ndarray, blocks: int = BLOCKS) -> np.ndarray:
    """Medians of `blocks` contiguous blocks of the samples, in order; the samples themselves where
    there are fewer than two per block."""
    if len(samples) < 2 * blocks:
        return samples
    return np.array([np.median(part) for part in np.array_split(samples, blocks)])


def _ratio_of_medians(base, cand, axis=-1):
    return np.median(cand, axis=axis) / np.median(base, axis=axis)


def compare_case(base: Optional[CaseRecord], cand: Optional[CaseRecord], threshold: float,
                 alpha: float) -> CaseComparison:
    some = cand or base
    out = CaseComparison(some.benchmark, some.case_id, "unchanged")
    if cand is None:
        out.verdict, out.note = "missing", "not in the candidate run"
        return out
    if cand.status == "failed":
        out.verdict, out.note = "failed-now", cand.reason or "failed"
        if base is not None and base.status == "failed":
            out.note += " (failed in the baseline too)"
        return out
    if base is not None and base.status == "skipped" and cand.status == "skipped":
        out.verdict, out.note = "skipped", f"skipped in both runs: {cand.reason or ''}".rstrip(": ")
        return out
    if base is None or base.status != "ok":
        out.verdict = "new" if cand.status == "ok" else "missing"
        out.note = "not in the baseline run" if base is None else f"baseline {base.status}: {base.reason or ''}".strip()
        if cand.status != "ok":
            out.note += f"; candidate {cand.status}: {cand.reason or ''}".rstrip(": ")
        return out
    if cand.status != "ok":
        out.verdict, out.note = "missing", f"candidate {cand.status}: {cand.reason or ''}".rstrip(": ")
        return out

    out.metric, out.unit, out.higher_is_better = headline_metric(base)
    if out.metric != "time" and (cand.metric(out.metric) is None or cand.metric(out.metric).value is None):
        out.verdict, out.note = "missing", f"the candidate has no {out.metric}"
        return out
    b, c = metric_samples(base, out.metric), metric_samples(cand, out.metric)
    out.samples = (len(b), len(c))
    out.throttled = _which(base.throttled, cand.throttled)
    out.loaded = _which(loaded(base.other_load), loaded(cand.other_load))
    if not len(b) or not len(c) or not np.all(np.isfinite(b)) or not np.all(np.isfinite(c)):
        out.verdict, out.note = "missing", "no usable samples"
        return out
    out.baseline, out.candidate = float(np.median(b)), float(np.median(c))
    out.ratio = out.candidate / out.baseline
    gain = out.ratio if out.higher_is_better else 1.0 / out.ratio
    bb, cb = block_medians(b), block_medians(c)
    apart = bb.max() < cb.min() or cb.max() < bb.min()
    if min(len(bb), len(cb)) >= 2:
        out.p_value = float(st.mannwhitneyu(bb, cb, alternative="two-sided").pvalue)
        if np.ptp(bb) > 0 or np.ptp(cb) > 0:
            ci = st.bootstrap((bb, cb), _ratio_of_medians, n_resamples=BOOTSTRAP_RESAMPLES, method="percentile",
                              vectorized=True, rng=np.random.default_rng(0)).confidence_interval
            out.ci_low, out.ci_high = float(ci.low), float(ci.high)
        else:
            out.ci_low = out.ci_high = out.ratio
    if abs(gain - 1.0) < threshold:
        out.verdict = "unchanged"
    elif out.loaded:
        # Not the code's change, or not only: other work shared the machine's CPUs (contention.py).
        out.verdict = "noisy"
        out.note = "beyond the threshold, but measured beside other load (" + ", ".join(
            f"{name} {r.other_load:.1f} CPUs" for name, r in (("baseline", base), ("candidate", cand))
            if r.other_load is not None) + " busy with other work): not judged"
    elif out.p_value is not None and out.p_value < alpha and apart:
        out.verdict = "improved" if gain > 1.0 else "regressed"
    else:
        out.verdict = "noisy"
        out.note = ("too few samples for a test" if out.p_value is None else
                    f"beyond the threshold but not significant (p = {out.p_value:.2g})" if out.p_value >= alpha else
                    "beyond the threshold, but each run's blocks reach the other's figure")
    return out


def _which(in_baseline: bool, in_candidate: bool) -> str:
    return {(True, True): "both", (True, False): "baseline", (False, True): "candidate"}.get(
        (in_baseline, in_candidate), "")


def pooled(repeats: list[CaseRecord]) -> CaseRecord:
    """The repeats of one case (--repeat) as one record: their samples in run order, so that the
    blocks the test uses span the repeats and a shift between repeats counts as noise; the
    headline recomputed over all of them; failed if any repeat failed, throttled if any was."""
    first = repeats[0]
    if len(repeats) == 1:
        return first
    bad = next((r for r in repeats if r.status != "ok"), None)
    if bad is not None:
        return bad
    samples = [t for r in repeats for t in r.samples_s]
    metrics = []
    name, unit, throughput = headline_metric(first)
    if throughput:  # work per call = value x median time, the same in every repeat
        work = first.metric(name).value * float(np.median(first.samples_s))
        metrics = [Metric(name, work / float(np.median(samples)), unit)]
    loads = [r.other_load for r in repeats if r.other_load is not None]
    return CaseRecord(first.benchmark, first.case_id, first.params, "ok", samples_s=samples, metrics=metrics,
                      throttled=any(r.throttled for r in repeats), other_load=max(loads) if loads else None)


def compare_runs(baseline: LoadedRun, candidate: LoadedRun, threshold: float = DEFAULT_THRESHOLD,
                 alpha: float = DEFAULT_ALPHA) -> Comparison:
    def by_case(run: LoadedRun) -> dict[tuple[str, str], CaseRecord]:
        groups: dict[tuple[str, str], list[CaseRecord]] = {}
        for c in run.cases:
            groups.setdefault((c.benchmark, c.case_id), []).append(c)
        return {key: pooled(records) for key, records in groups.items()}
    base, cand = by_case(baseline), by_case(candidate)
    keys = list(dict.fromkeys([*cand, *base]))
    cases = [compare_case(base.get(k), cand.get(k), threshold, alpha) for k in keys]
    cases.sort(key=lambda c: (VERDICTS.index(c.verdict), c.benchmark, c.case_id))
    return Comparison(baseline, candidate, threshold, alpha, cases, differences(baseline.info, candidate.info))


def newest_comparable(directory: Path, candidate: LoadedRun) -> tuple[LoadedRun, list[str]]:
    """The newest complete run under `directory` of the candidate's device and backend whose
    fingerprint matches the candidate's; else the newest of that device and backend, with its
    differences. Raises ValueError where there is none."""
    found = []
    for run_file in sorted(Path(directory).rglob(RUN_FILE)):
        folder = run_file.parent
        if folder.resolve() == candidate.path.resolve():
            continue
        run = load_run(folder)
        if run.complete and (run.info.device_name, run.info.backend) == (candidate.info.device_name,
                                                                          candidate.info.backend):
            found.append(run)
    if not found:
        raise ValueError(f"no complete {candidate.info.backend} run of {candidate.info.device_name} under {directory}")
    found.sort(key=lambda r: r.info.started_at, reverse=True)
    same = [r for r in found if not differences(r.info, candidate.info)]
    best = (same or found)[0]
    return best, differences(best.info, candidate.info)


def format_value(value: Optional[float]) -> str:
    if value is None or not math.isfinite(value):
        return "—"
    return f"{value:.4g}"

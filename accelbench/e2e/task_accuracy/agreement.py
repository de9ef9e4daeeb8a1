"""Two accuracy runs paired item by item: does a precision score the same on two devices (CUDA's
FP8 kernels against the CPU's emulated FP8, bf16 against fp32)?

Every accuracy case keeps each item's outcome in document order (facts["outcomes"], per lm-eval
task), so two runs of one task and precision pair on the items both evaluated: the first
min(n_a, n_b) documents of each subtask (MMLU's subjects each). The paired difference, its 95 %
interval and McNemar's p are paired.py's, as within a run; the runs *agree* where the interval
holds 0, i.e. no difference can be shown on those items.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from accelbench.e2e.task_accuracy import paired
from accelbench.store import LoadedRun

BENCHMARK = "accuracy"


@dataclass(frozen=True)
class Agreement:
    task: str
    precision: str
    items: int  # paired items (documents both runs evaluated)
    accuracy_a: float  # percent, over the paired items
    accuracy_b: float
    difference: paired.PairedDifference  # b - a

    @property
    def agree(self) -> bool:
        return self.difference.low <= 0.0 <= self.difference.high


def _outcomes(run: LoadedRun) -> dict[tuple[str, str], dict[str, str]]:
    """(task, precision) -> subtask -> outcome string, of the run's finished accuracy cases (the
    largest evaluation where a run holds several of one task and precision)."""
    out: dict[tuple[str, str], dict[str, str]] = {}
    for case in run.cases:
        if case.benchmark != BENCHMARK or case.status != "ok" or "outcomes" not in case.facts:
            continue
        key = (case.params["task"], case.params["precision"])
        seen = out.get(key)
        if seen is None or sum(map(len, case.facts["outcomes"].values())) > sum(map(len, seen.values())):
            out[key] = case.facts["outcomes"]
    return out


def pair(a: dict[str, str], b: dict[str, str]) -> Optional[tuple[list[float], list[float]]]:
    """The outcomes of the items both evaluated, subtask by subtask in name order; None if none."""
    xs: list[float] = []
    ys: list[float] = []
    for name in sorted(set(a) & set(b)):
        n = min(len(a[name]), len(b[name]))
        xs += [float(c) for c in a[name][:n]]
        ys += [float(c) for c in b[name][:n]]
    return (xs, ys) if xs else None


def agreements(run_a: LoadedRun, run_b: LoadedRun) -> list[Agreement]:
    """Every task and precision both runs finished, paired on their common items."""
    a, b = _outcomes(run_a), _outcomes(run_b)
    out = []
    for key in sorted(set(a) & set(b)):
        paired_items = pair(a[key], b[key])
        if paired_items is None:
            continue
        xs, ys = paired_items
        out.append(Agreement(key[0], key[1], len(xs), 100.0 * sum(xs) / len(xs), 100.0 * sum(ys) / len(ys),
                             paired.paired_difference(xs, ys)))
    return out


def markdown(run_a: LoadedRun, run_b: LoadedRun, rows: list[Agreement]) -> str:
    def label(run: LoadedRun) -> str:
        return f"{run.info.run_id} ({run.info.device_name})"
    lines = [f"A: {label(run_a)}", f"B: {label(run_b)}", "",
             "| task | precision | paired items | A % | B % | B - A (points) | 95 % interval | McNemar p | agree |",
             "| --- | --- | ---: | ---: | ---: | ---: | --- | ---: | --- |"]
    for r in rows:
        d = r.difference
        p = "—" if d.p_value is None else f"{d.p_value:.2g}"
        lines.append(f"| {r.task} | {r.precision} | {r.items} | {r.accuracy_a:.1f} | {r.accuracy_b:.1f} | "
                     f"{100 * d.delta:+.1f} | [{100 * d.low:+.1f}, {100 * d.high:+.1f}] | {p} | "
                     f"{'yes' if r.agree else 'NO'} |")
    agreeing = sum(r.agree for r in rows)
    lines += ["", f"{agreeing} of {len(rows)} task x precision pairs agree (95 % interval of the paired "
                  "difference holds 0)"]
    return "\n".join(lines)

"""Display tables from the tidy results frame (plain strings, escaped by the template): a compact
table per benchmark with the figures that matter first and devices side by side, and the full
per-case data. Which figures matter, their short titles and the facts shown beside them are the
benchmark's declaration (`accelbench.view.TableView`, from the run files)."""
from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from accelbench.records import ENERGY_METRICS
from accelbench.reports.numbers import DASH, natural_key, plain, quantity, ratio
from accelbench.store import FRAME_COLUMNS
from accelbench.view import TableView

# The harness's own figures (energy, clocks: accelbench.metrics), in the full table after a
# benchmark's declared ones and before the rest, alphabetically.
HARNESS_METRICS = list(ENERGY_METRICS)


def emulated_rows(frame: pd.DataFrame) -> pd.Series:
    """Rows of cases whose work ran emulated in software (a mode or dtype without a native path)."""
    flags = pd.Series(False, index=frame.index)
    for col in ("emulated", "emulated_because"):
        if col in frame:
            flags |= frame[col].notna() & (frame[col] != "")
    if "execution" in frame:
        flags |= frame["execution"].fillna("").astype(str).str.startswith("emulated")
    return flags


@dataclass
class Table:
    columns: list[str]
    rows: list[list[str]]
    row_classes: list[str] = field(default_factory=list)
    # A header row above the columns ((title, span) each) and the columns' names under it.
    groups: list[tuple[str, int]] = field(default_factory=list)
    short: list[str] = field(default_factory=list)


def cell(value, unit) -> str:
    """A figure in a column whose header names the unit: times, percentages and bytes keep theirs."""
    if unit in ("s", "%", "B"):
        return quantity(value, unit)
    return quantity(value, None)


def header(metric: str, unit, view: TableView) -> str:
    name = dict(view.names).get(metric, metric)
    return name if unit in ("s", "%", "B", "", None) or not isinstance(unit, str) else f"{name} [{unit}]"


def metric_units(frame: pd.DataFrame) -> dict[str, str]:
    return frame.dropna(subset=["metric"]).groupby("metric")["unit"].first().to_dict()


def key_metrics(frame: pd.DataFrame, view: TableView, count: int = 3) -> list[str]:
    present = set(frame.loc[frame["value"].notna(), "metric"].dropna())
    return [m for m in view.key if m in present][:count]


def wide_figures(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per (run, case) of ok cases, one column per metric."""
    ok = frame[(frame["status"] == "ok") & frame["metric"].notna()]
    if ok.empty:
        return pd.DataFrame()
    return ok.pivot_table(index=["device", "run_id", "case_id"], columns="metric", values="value", aggfunc="first",
                          sort=False)


def compact_table(frame: pd.DataFrame, devices: list[str], baseline: str, view: TableView) -> Table:
    """The ok cases: with one device, its key figures per case; with several, each key figure per
    device side by side and the first figure's ratio to the baseline device. A case run on a
    device more than once shows its best run."""
    metrics = key_metrics(frame, view)
    wide = wide_figures(frame)
    if wide.empty or not metrics:
        return Table([], [])
    units = metric_units(frame)
    lower_better = metrics[0] in view.lower_is_better
    wide = wide.reset_index().sort_values(metrics[0], ascending=lower_better, na_position="last")
    here = [d for d in devices if d in set(wide["device"])]
    # Sizes by value (16KiB before 128KiB); with several devices, the cases they all ran first.
    ran = {d: set(wide.loc[wide["device"] == d, "case_id"]) for d in here}
    shared = set.intersection(*ran.values()) if ran else set()
    order = pd.Index(sorted(set(wide["case_id"]), key=lambda c: (c not in shared, natural_key(c))))
    per_device = {d: wide[wide["device"] == d].drop_duplicates("case_id").set_index("case_id").reindex(order)
                  for d in here}
    if len(here) == 1:
        figures = per_device[here[0]]
        throttled = set(frame.loc[frame["throttled"].fillna(False).astype(bool), "case_id"])
        emulated = set(frame.loc[emulated_rows(frame), "case_id"])
        columns = [[cell(v, units.get(m)) for v in figures[m]] for m in metrics]
        notes = [", ".join(n for n, flagged in (("emulated in software, not a native figure", case in emulated),
                                                 ("throttled", case in throttled)) if flagged) for case in order]
        # The facts the benchmark shows beside its figures (FP8: the GEMM and the activation quantizer).
        facts = {title: frame.drop_duplicates("case_id").set_index("case_id")[col].reindex(order)
                 for col, title in view.facts if col in frame and frame[col].notna().any()}
        return Table(["case"] + [header(m, units.get(m), view) for m in metrics] + list(facts) + ["note"],
                     [list(row) for row in zip(order, *columns, *([plain(v) for v in f] for f in facts.values()),
                                               notes)])
    base = baseline if baseline in here else here[0]
    others = [d for d in here if d != base]
    first = metrics[0]
    headers, short, groups, columns = ["case"], ["case"], [("", 1)], []
    # The first figure per device, then its ratios to the baseline, then the second figure.
    for m, devices_here in ((first, here), (None, others), *((m, here) for m in metrics[1:2])):
        title = header(m, units.get(m), view) if m else f"{dict(view.names).get(first, first)} ÷ {base}"
        groups.append((title, len(devices_here)))
        for d in devices_here:
            headers.append(f"{title} — {d}")
            short.append(d)
            if m is None:  # a ratio only where both devices ran the case
                quotient = per_device[d][first] / per_device[base][first]
                both = per_device[d]["run_id"].notna() & per_device[base]["run_id"].notna()
                columns.append([ratio(q) if pd.notna(q) and q != float("inf") else DASH if ran else "no common case"
                                for q, ran in zip(quotient, both)])
            else:
                columns.append([cell(v, units.get(m)) for v in per_device[d][m]])
    return Table(headers, [list(row) for row in zip(order, *columns)], groups=groups, short=short)


def param_columns(frame: pd.DataFrame) -> list[str]:
    cols = [c for c in frame.columns if c not in FRAME_COLUMNS]
    return [c for c in cols if frame[c].notna().any()]


def full_table(frame: pd.DataFrame, multi_run: bool, view: TableView) -> Table:
    """Every case, failed and skipped included: figures first, then the parameters."""
    params = param_columns(frame)
    units = metric_units(frame)
    order = [*view.key, *view.more, *HARNESS_METRICS]
    metrics = sorted(units, key=lambda m: (order.index(m) if m in order else len(order), m))
    firsts = frame.drop_duplicates(["run_id", "case_id"]).set_index(["run_id", "case_id"])
    wide = frame.dropna(subset=["metric"]).pivot_table(index=["run_id", "case_id"], columns="metric", values="value",
                                                       aggfunc="first").reindex(firsts.index)
    columns = []
    if multi_run:
        columns.append([d if not isinstance(lab, str) or not lab else f"{d} ({lab})"
                        for d, lab in zip(firsts["device"], firsts["label"])])
    columns.append(list(firsts.index.get_level_values(1)))
    columns.append([str(x) for x in firsts["status"]])
    columns.append(["yes" if x is True else "" for x in firsts["throttled"]])
    columns += [[cell(v, units[m]) for v in wide[m]] if m in wide else [DASH] * len(firsts) for m in metrics]
    columns += [[plain(v) for v in firsts[p]] for p in params]
    headers = (["run"] if multi_run else []) + ["case", "status", "throttled"]
    headers += [header(m, units[m], view) for m in metrics] + params
    return Table(headers, [list(row) for row in zip(*columns)], [str(x) for x in firsts["status"]])


def problems_table(frame: pd.DataFrame) -> Table:
    bad = frame[frame["status"] != "ok"].drop_duplicates(["run_id", "case_id"])
    rows = [[str(r.device), str(r.case_id), str(r.status), str(r.reason) if isinstance(r.reason, str) else ""]
            for r in bad.itertuples()]
    return Table(["device", "case", "status", "reason"], rows, [r[2] for r in rows])

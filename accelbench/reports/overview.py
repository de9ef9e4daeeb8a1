"""The overview: a column per device, a row per headline figure, each beside its ratio to a
baseline device. A device's figure is its best over every run of that device in the report; a
figure that is missing says why (not run, skipped, failed). The rows are the benchmarks' own
declarations (`accelbench.view.OverviewRow`), read from the runs' `views`."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import pandas as pd

from accelbench.reports.numbers import DASH, binary_bytes, quantity, ratio
from accelbench.reports.tables import emulated_rows
from accelbench.records import ENERGY_METRICS
from accelbench.store import LoadedRun
from accelbench.view import OverviewRow, overview_rows


@dataclass
class Cell:
    value: Optional[float] = None
    unit: str = ""
    case_id: str = ""
    run: str = ""
    missing: str = ""  # why there is no value
    emulated: bool = False  # run in software (no native engine for the dtype): not a native figure
    same: tuple = ()  # the headline's `same` parameters, (name, value) each

    @property
    def text(self) -> str:
        if self.value is None:
            missing = self.missing or DASH
            return missing if len(missing) <= 48 else missing[:47] + "…"
        return self.figure + (f" ({self.work})" if self.work else "")

    @property
    def figure(self) -> str:
        return quantity(self.value, self.unit) + (" (emulated)" if self.emulated else "") if self.value is not None \
            else self.text

    @property
    def work(self) -> str:
        """The work the figure is of, as the row names it: "m 1024, k 1024, n 1024", "llama3.1-8b, batch 1"."""
        return ", ".join(_shown(name, value) for name, value in self.same) if self.value is not None else ""

    @property
    def detail(self) -> str:
        """The whole story of the cell, for a tooltip."""
        if self.value is None:
            return self.missing
        return f"{self.case_id} — {self.run}" + (" — emulated in software, not a native figure" if self.emulated else "")


def _shown(name: str, value) -> str:
    """A parameter's value as a cell names it: a word as it is, a number with its name (batch 1)."""
    if isinstance(value, str):
        return value
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if name.endswith("bytes") and isinstance(value, (int, float)):
        return binary_bytes(value).replace(".0 ", " ")
    return f"{name} {value}"


@dataclass
class OverviewLine:
    """One row of the overview as shown: the declared row, each device's cell, the ratios."""

    headline: OverviewRow
    cells: list[Cell]
    ratios: list[Optional[float]]  # each non-baseline device ÷ the baseline
    no_ratio_because: str = ""  # shown instead of the ratios where they are withheld

    @property
    def unit(self) -> str:
        return next((c.unit for c in self.cells if c.unit), "")


@dataclass
class Overview:
    devices: list[str]
    baseline: str
    baseline_why: str = ""  # how the baseline was chosen, as the report states it
    rows: list[OverviewLine] = field(default_factory=list)

    @property
    def others(self) -> list[str]:
        return [d for d in self.devices if d != self.baseline]

    def header(self) -> list[str]:
        return ["figure"] + self.devices + [f"{d} ÷ {self.baseline}" for d in self.others]

    def text_rows(self) -> list[list[str]]:
        return [[r.headline.name] + [c.text for c in r.cells]
                + [ratio(x) if x is not None or not r.no_ratio_because else r.no_ratio_because for x in r.ratios]
                for r in self.rows]


def device_of(run: LoadedRun) -> str:
    return run.info.device_name


def devices_of(runs: list[LoadedRun]) -> list[str]:
    return list(dict.fromkeys(device_of(r) for r in runs))


def resolve_baseline(runs: list[LoadedRun], baseline: Optional[str]) -> str:
    """The baseline device: by default the first accelerator's in the order given (a CPU only
    where every run is a CPU's); else the device of the run named by id, label, folder (any
    spelling of its path) or device name, or the one device `device_named` finds."""
    if baseline is None:
        accelerators = [r for r in runs if r.info.backend != "cpu"]
        return device_of((accelerators or runs)[0])
    wanted = Path(baseline).expanduser()
    for run in runs:
        if baseline in (run.info.run_id, run.info.label, device_of(run)) or _same_path(wanted, run.path):
            return device_of(run)
    return device_named(devices_of(runs), baseline, "--baseline", "give a run id, label, folder or device name")


def device_named(devices: list[str], text: str, option: str, hint: str = "") -> str:
    """The one device of `devices` that `text` names: its full name, a prefix of it, or a part of it
    ("H100" for "NVIDIA H100 80GB HBM3"), ignoring case. Ambiguous or unknown: ValueError."""
    wanted = text.strip().lower()
    for test in (str.__eq__, str.startswith, str.__contains__):
        found = [d for d in devices if test(d.lower(), wanted)]
        if len(found) == 1:
            return found[0]
        if found:
            raise ValueError(f"{option} {text!r} could be any of {', '.join(sorted(found))}")
    raise ValueError(f"{option} {text!r} names none of the runs' devices ({', '.join(devices)})"
                     + (f"; {hint}" if hint else ""))


def _same_path(a: Path, b: Path) -> bool:
    """`a`, as typed (relative, absolute, ./, a trailing slash, or the folder's name alone), is `b`."""
    try:
        return str(a) == b.name or a.resolve() == b.resolve()
    except OSError:
        return False


def declared_rows(runs: list[LoadedRun]) -> list[OverviewRow]:
    """The overview rows the runs' benchmarks declare, in their declared order: per benchmark, the
    declarations of the newest method version among the runs (an older run's renamed row would
    otherwise stand beside its successor)."""
    newest: dict[str, tuple[int, list[OverviewRow]]] = {}
    for run in runs:
        for row in overview_rows(run.views):
            version = run.views_method_version
            if row.benchmark not in newest or version > newest[row.benchmark][0]:
                newest[row.benchmark] = (version, [])
            if version == newest[row.benchmark][0] and all(r.name != row.name for r in newest[row.benchmark][1]):
                newest[row.benchmark][1].append(row)
    return sorted((row for _, rows in newest.values() for row in rows), key=lambda r: r.order)


def build_overview(frame: pd.DataFrame, runs: list[LoadedRun], baseline: Optional[str] = None) -> Overview:
    devices = devices_of(runs)
    base = resolve_baseline(runs, baseline)
    why = ("--baseline" if baseline is not None else "by default the first accelerator in the order the runs were given"
           if any(r.info.backend != "cpu" for r in runs) else "by default the first run's device")
    overview = Overview(devices, base, why)
    emulated = {(r.info.run_id, dtype) for r in runs for dtype in r.info.emulated_matmul}
    for headline in declared_rows(runs):
        cells, no_ratio = row_cells(frame, runs, devices, base, headline, emulated)
        if not no_ratio and any(c.emulated for c in cells if c.value is not None):
            no_ratio = EMULATED  # a software emulation is not set against a device's native figure
        base_cell = cells[devices.index(base)]
        ratios = [None if no_ratio or c.value is None or not base_cell.value or c.same != base_cell.same
                  else c.value / base_cell.value for d, c in zip(devices, cells) if d != base]
        overview.rows.append(OverviewLine(headline, cells, ratios, no_ratio))
    return overview


NO_COMMON_CASE = "no common case"
EMULATED = "a figure is emulated: no ratio"
OWN_BEST = "each device's own best: no ratio"


def row_cells(frame: pd.DataFrame, runs: list[LoadedRun], devices: list[str], base: str, headline: OverviewRow,
              emulated: frozenset = frozenset()) -> tuple[list[Cell], str]:
    """Each device's cell of a row, and why they may not be set against each other ("" where
    they may): only on the same work, the work every device with a figure ran
    (OverviewRow.compare_on); a row that names no such work shows each device's own best and
    gives no ratio."""
    per_device = {d: frame[frame["device"] == d] if not frame.empty else frame for d in devices}
    cells, no_ratio = _cells(per_device, runs, devices, base, headline, emulated)
    return [_why_no_energy(c, runs, d, headline) for d, c in zip(devices, cells)], no_ratio


def _why_no_energy(cell: Cell, runs: list[LoadedRun], device: str, headline: OverviewRow) -> Cell:
    """An energy figure that is missing from cases that ran: the run's reason (no counter)."""
    if cell.value is not None or headline.metric not in ENERGY_METRICS:
        return cell
    reasons = [r.info.no_energy_because for r in runs if device_of(r) == device and r.info.no_energy_because]
    return Cell(missing=reasons[0]) if reasons else cell


def _cells(per_device: dict[str, pd.DataFrame], runs: list[LoadedRun], devices: list[str], base: str,
           headline: OverviewRow, emulated: frozenset) -> tuple[list[Cell], str]:
    if headline.ceiling:
        return [_measured_ceiling(runs, d, headline.ceiling) or _missing(per_device[d], headline)
                for d in devices], OWN_BEST
    own_best = lambda: [best_cell(per_device[d], headline, emulated) for d in devices]  # noqa: E731
    if not headline.compare_on:
        return own_best(), OWN_BEST
    identities = {d: _identities(per_device[d], headline) for d in devices}
    ran = [d for d in devices if identities[d]]
    if len(ran) < 2:  # nothing to set side by side
        return own_best(), ""
    common = set.intersection(*(identities[d] for d in ran))
    if not common:
        return own_best(), NO_COMMON_CASE
    if headline.largest in headline.compare_on:
        at = headline.compare_on.index(headline.largest)
        chosen = max(common, key=lambda identity: identity[at])
    else:  # the common work the baseline (else the first device that ran it) does best
        lead = base if base in ran else ran[0]
        chosen = _best_identity(per_device[lead], headline, common)
    return [best_cell(_with(per_device[d], headline, chosen), headline, emulated) if d in ran
            else best_cell(per_device[d], headline, emulated) for d in devices], ""


def _identities(rows: pd.DataFrame, headline: OverviewRow) -> set[tuple]:
    """The distinct `compare_on` values of the ok cases of the row that have its figure."""
    ok = matching(rows, headline)
    if ok.empty or any(c not in ok for c in headline.compare_on):
        return set()
    metric = headline.of_best or headline.metric
    ok = ok[(ok["status"] == "ok") & (ok["metric"] == metric) & ok["value"].notna()]
    return set(ok[list(headline.compare_on)].itertuples(index=False, name=None))


def _best_identity(rows: pd.DataFrame, headline: OverviewRow, common: set[tuple]) -> tuple:
    """Of the identities in `common`, the one whose best case in `rows` ranks best."""
    ok = matching(rows, headline)
    metric = headline.of_best or headline.metric
    ok = ok[(ok["status"] == "ok") & (ok["metric"] == metric) & ok["value"].notna()]
    higher = headline.higher_is_better if headline.of_best is None else True
    best = ok.groupby(list(headline.compare_on), sort=False)["value"].agg("max" if higher else "min")
    ranked = {i: v for i, v in best.items() if (i if isinstance(i, tuple) else (i,)) in common}
    pick = (max if higher else min)(ranked, key=ranked.get)
    return pick if isinstance(pick, tuple) else (pick,)


def _with(rows: pd.DataFrame, headline: OverviewRow, identity: tuple) -> pd.DataFrame:
    """The rows of the case(s) of one identity."""
    keep = pd.Series(True, index=rows.index)
    for column, value in zip(headline.compare_on, identity):
        keep &= rows[column] == value if column in rows else False
    return rows[keep]


def _measured_ceiling(runs: list[LoadedRun], device: str, key: str) -> Optional[Cell]:
    """The best of `device`'s runs' measured matmul ceiling `key`, in TFLOP/s."""
    found = [(r.info.ceilings[key], r) for r in runs if device_of(r) == device and key in r.info.ceilings]
    if not found:
        return None
    ceiling, run = max(found, key=lambda pair: pair[0].value)
    return Cell(ceiling.value / 1e12, "TFLOP/s", ceiling.case_id, run.info.label or run.info.run_id)


def matching(rows: pd.DataFrame, headline: OverviewRow) -> pd.DataFrame:
    """The rows of the headline's benchmark whose parameters match its `where`."""
    if rows.empty or "benchmark" not in rows:
        return rows
    rows = rows[rows["benchmark"] == headline.benchmark]
    for column, value in headline.where:
        if column not in rows:
            return rows.iloc[0:0]
        rows = rows[rows[column] == value]
    return rows


def best_cell(rows: pd.DataFrame, headline: OverviewRow, emulated: frozenset = frozenset()) -> Cell:
    """The best case's figure; `emulated` holds the (run id, dtype) pairs whose matmuls ran in software."""
    candidates = matching(rows, headline)
    ok = candidates[candidates["status"] == "ok"] if not candidates.empty else candidates
    if headline.largest and not ok.empty and headline.largest in ok:
        ok = ok[ok[headline.largest] == ok[headline.largest].max()]
    ranking_metric = headline.of_best or headline.metric
    ranked = ok[(ok["metric"] == ranking_metric) & ok["value"].notna()] if not ok.empty else ok
    if ranked.empty:
        return _missing(rows, headline)
    higher = headline.higher_is_better if headline.of_best is None else True
    best = ranked.loc[ranked["value"].idxmax() if higher else ranked["value"].idxmin()]
    # The case's own facts say so (tables.emulated_rows, the one rule), or its run's emulated dtypes.
    software = bool(emulated_rows(ranked.loc[[best.name]]).iloc[0]) or (best["run_id"], best.get("dtype")) in emulated
    shared = tuple((p, best.get(p)) for p in headline.same)
    if headline.of_best is None:
        return Cell(float(best["value"]), str(best["unit"]), str(best["case_id"]), _run_name(best), emulated=software,
                    same=shared)
    same = ok[(ok["run_id"] == best["run_id"]) & (ok["case_id"] == best["case_id"]) & (ok["metric"] == headline.metric)]
    if same.empty or pd.isna(same.iloc[0]["value"]):
        return Cell(missing=f"no {headline.metric} for {best['case_id']}")
    return Cell(float(same.iloc[0]["value"]), str(same.iloc[0]["unit"]), str(best["case_id"]), _run_name(best),
                emulated=software, same=shared)


def _run_name(row: pd.Series) -> str:
    label = row.get("label")
    return str(label) if isinstance(label, str) and label else str(row["run_id"])


def _missing(rows: pd.DataFrame, headline: OverviewRow) -> Cell:
    candidates = matching(rows, headline)
    if candidates.empty:
        mine = rows[rows["benchmark"] == headline.benchmark] if not rows.empty else rows
        if not mine.empty and (mine["status"] != "ok").all():  # every case skipped or failed: say why
            return _why_not(mine) or Cell(missing="no figure")
        wanted = ", ".join(f"{k} {v}" for k, v in headline.where)
        return Cell(missing=(headline.absent or f"no case with {wanted}") if not mine.empty and wanted else "not run")
    return _why_not(candidates) or Cell(missing="no figure")


def _why_not(rows: pd.DataFrame) -> Optional[Cell]:
    """The first failed, else skipped, case's reason, with how many such cases there are."""
    by_status = rows.drop_duplicates(["run_id", "case_id"])
    for status in ("failed", "skipped"):
        hit = by_status[by_status["status"] == status]
        if not hit.empty:
            reason = hit.iloc[0]["reason"]
            reason = reason if isinstance(reason, str) else ""
            return Cell(missing=f"{status} ({len(hit)}): {reason[:80]}".rstrip(": "))
    return None

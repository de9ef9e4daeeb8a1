"""The report, from the results store alone: the overview first (a column per device, ratios to a
baseline), the procurement view where prices are given, a roofline, then a section per benchmark
(plots, a compact side-by-side table, failed and skipped cases with reasons, the full data
collapsed), and the runs' fingerprints collapsed at the end with their differences marked. One
self-contained HTML file (plots embedded, no network), autoescaped throughout; the overview also
as Markdown or CSV (formats.py)."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import pandas as pd

from accelbench import __version__
from accelbench.reports.numbers import plain, quantity
from accelbench.reports.fingerprint import differences
from accelbench.reports.gap import gap_table, parts_plot
from accelbench.reports.overview import Overview, build_overview, devices_of
from accelbench.reports.plots import plots_for
from accelbench.reports.procurement import CostRow, Prices, procurement
from accelbench.reports.regimes import regime_table
from accelbench.reports.roofline import roofline_plot
from accelbench.reports.tables import Table, compact_table, full_table, problems_table
from accelbench.view import table_of
from accelbench.reports.templating import template
from accelbench.store import LoadedRun, cases_frame



@dataclass
class BenchmarkSection:
    name: str
    compact: Table
    full: Table
    problems: Table
    plots: list[str]
    cases: int
    gap: Table = field(default_factory=lambda: Table([], []))  # where the difference between devices goes


@dataclass
class Fingerprints:
    runs: list[str]
    rows: list[tuple[str, list[str], bool]] = field(default_factory=list)  # (key, value per run, differs)

    @property
    def differing(self) -> int:
        return sum(1 for _, _, differs in self.rows if differs)


def fingerprints(runs: list[LoadedRun]) -> Fingerprints:
    """Every fact that decides a run's figures, a column per run; rows where runs differ are marked."""
    table = Fingerprints([r.info.label or r.info.run_id for r in runs])
    facts: list[dict[str, str]] = []
    for run in runs:
        info = run.info
        counts = {s: sum(1 for c in run.cases if c.status == s) for s in ("ok", "failed", "skipped")}
        facts.append({
            "run id": info.run_id, "status": run.status_text, "device": f"{info.device_name} (x{info.device_count})",
            "backend": info.backend, "suite": info.suite,
            "regime": info.regime + (", cache flushed before every call" if info.flush_always else ""), "started": info.started_at, "ended": info.ended_at or "—",
            "host": info.host, "accelbench": f"{info.accelbench_version} ({info.commit or 'no commit'})",
            "command": " ".join(info.argv),
            "cases": f"{counts['ok']} ok, {counts['failed']} failed, {counts['skipped']} skipped, "
                     f"{sum(1 for c in run.cases if c.throttled)} throttled",
            "idle power": quantity(info.idle_power_w, "W"),
            "peaks used": f"{info.spec['name']} — {info.spec['source']}" if info.spec else "—",
            **{k: plain(v) for k, v in info.versions.items()},
            **{k: plain(v) for k, v in info.fingerprint.items()},
            **{f"best {k}": (f"{quantity(c.value / 1e12)} TFLOP/s" if c.unit == "FLOP/s" else f"{quantity(c.value / 1e9)} GB/s")
               + f" ({c.case_id})" for k, c in info.ceilings.items()},
        })
    varying = {"run id", "status", "started", "ended", "command", "cases"}  # expected to differ
    for key in dict.fromkeys(k for f in facts for k in f):
        values = [f.get(key, "—") for f in facts]
        table.rows.append((key, values, len(runs) > 1 and key not in varying and len(set(values)) > 1))
    return table


def comparability_warnings(runs: list[LoadedRun]) -> list[str]:
    """Where two runs of one device differ in what decides their figures (driver, power limit, clocks,
    library versions)."""
    out = []
    for i, a in enumerate(runs):
        for b in runs[i + 1:]:
            if a.info.device_name == b.info.device_name:
                out += [f"{a.info.run_id} and {b.info.run_id} ({a.info.device_name}) differ in {d}"
                        for d in differences(a.info, b.info, same_device_assumed=True)]
    return out


@dataclass
class Report:
    """Everything a report shows, computed once, rendered as HTML, Markdown or CSV."""
    title: str
    runs: list[LoadedRun]
    frame: pd.DataFrame
    overview: Overview
    costs: list[CostRow]
    prices: Prices

    @classmethod
    def build(cls, runs: list[LoadedRun], title: str = "accelbench report", baseline: Optional[str] = None,
              prices: Optional[Prices] = None) -> "Report":
        frame = cases_frame(runs)
        prices = prices or Prices()
        overview = build_overview(frame, runs, baseline)
        return cls(title, runs, frame, overview, procurement(frame, runs, devices_of(runs), prices, overview.baseline),
                   prices)

    def sections(self) -> list[BenchmarkSection]:
        if self.frame.empty:
            return []
        multi = len(self.runs) > 1
        infos = {r.info.run_id: r.info for r in self.runs}
        devices = self.overview.devices
        out = []
        for bench, rows in self.frame.groupby("benchmark", sort=True):
            rows = rows.dropna(axis=1, how="all")
            for col in ("label", "reason", "metric", "value", "unit", "throttled"):
                if col not in rows:
                    rows[col] = None
            views = next((r.views for r in self.runs if str(bench) in r.views), {})
            table = table_of(views, str(bench))
            out.append(BenchmarkSection(str(bench), compact_table(rows, devices, self.overview.baseline, table),
                                        full_table(rows, multi, table), problems_table(rows),
                                        plots_for(str(bench), rows, multi, infos, views) + parts_plot(rows),
                                        rows.drop_duplicates(["run_id", "case_id"]).shape[0],
                                        gap_table(rows, devices, self.overview.baseline) if multi else Table([], [])))
        return out

    def html(self) -> str:
        return template("report.html.j2").render(
            title=self.title, version=__version__, overview=self.overview, costs=self.costs, prices=self.prices,
            roofline=roofline_plot(self.frame, self.runs), regimes=regime_table(self.frame), sections=self.sections(),
            fingerprints=fingerprints(self.runs), comparability=comparability_warnings(self.runs),
            warnings=[w for r in self.runs for w in r.warnings])


def render_report(runs: list[LoadedRun], title: str = "accelbench report", baseline: Optional[str] = None,
                  prices: Optional[Prices] = None) -> str:
    return Report.build(runs, title, baseline, prices).html()


def write_report(runs: list[LoadedRun], out: Path, title: str = "accelbench report", baseline: Optional[str] = None,
                 prices: Optional[Prices] = None) -> Path:
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render_report(runs, title, baseline, prices), encoding="utf-8")
    return out

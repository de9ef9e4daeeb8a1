"""The HTML report: one self-contained file (plots embedded), autoescaped throughout."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2

from accelbench import __version__
from accelbench.reports.plots import plots_for
from accelbench.reports.tables import Table, benchmark_table, fmt, problems_table
from accelbench.store import LoadedRun, cases_frame

TEMPLATES = Path(__file__).parent / "templates"


@dataclass
class BenchmarkSection:
    name: str
    table: Table
    plots: list[str]


def _run_summary(run: LoadedRun) -> dict[str, Any]:
    info = run.info
    counts = {s: sum(1 for c in run.cases if c.status == s) for s in ("ok", "failed", "skipped")}
    return {
        "run_id": info.run_id, "label": info.label, "status": run.status_text,
        "device": f"{info.device_name} (x{info.device_count})", "backend": info.backend,
        "suite": info.suite, "started": info.started_at, "ended": info.ended_at or "—",
        "host": info.host, "accelbench": f"{info.accelbench_version} ({info.commit or 'no commit'})",
        "command": " ".join(info.argv), "versions": {k: fmt(v) for k, v in info.versions.items()},
        "fingerprint": {k: fmt(v) for k, v in info.fingerprint.items()},
        "idle_power": fmt(info.idle_power_w),
        "spec": info.spec, "counts": counts,
        "throttled": sum(1 for c in run.cases if c.throttled),
        "ceilings": {k: f"{fmt(c.value / 1e12)} TFLOP/s ({c.case_id})" if c.unit == "FLOP/s"
                     else f"{fmt(c.value / 1e9)} GB/s ({c.case_id})" for k, c in info.ceilings.items()},
        "warnings": run.warnings,
    }


def comparability_warnings(runs: list[LoadedRun]) -> list[str]:
    """Where two runs differ in what decides their figures (driver, power limit, clocks)."""
    if len(runs) < 2:
        return []
    out = []
    first = runs[0].info
    for other in runs[1:]:
        for key in ("driver", "power_limit_w", "sm_clock_max_mhz", "ecc_current", "mig_current"):
            a, b = first.fingerprint.get(key), other.info.fingerprint.get(key)
            if a is not None and b is not None and a != b:
                out.append(f"{first.run_id} and {other.info.run_id} differ in {key}: {a} vs {b}")
    return out


def render_report(runs: list[LoadedRun], title: str = "accelbench report") -> str:
    frame = cases_frame(runs)
    multi = len(runs) > 1
    infos = {r.info.run_id: r.info for r in runs}
    sections = []
    if not frame.empty:
        for bench, rows in frame.groupby("benchmark", sort=True):
            rows = rows.dropna(axis=1, how="all")
            for col in ("label", "reason", "metric", "value", "unit"):
                if col not in rows:
                    rows[col] = None
            sections.append(BenchmarkSection(str(bench), benchmark_table(rows, multi), plots_for(str(bench), rows, multi, infos)))
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)),
                             autoescape=jinja2.select_autoescape(default=True, default_for_string=True),
                             undefined=jinja2.StrictUndefined)
    return env.get_template("report.html.j2").render(
        title=title, version=__version__, runs=[_run_summary(r) for r in runs], sections=sections,
        problems=problems_table(frame) if not frame.empty else Table([], []),
        comparability=comparability_warnings(runs))


def write_report(runs: list[LoadedRun], out: Path, title: str = "accelbench report") -> Path:
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render_report(runs, title), encoding="utf-8")
    return out


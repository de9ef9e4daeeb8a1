"""`bench history`: every run under some folders as one trend per case and device, queried by DuckDB
straight from run.json and cases.jsonl (no server, no import step).

A point is one run's figure for a case: its headline metric (as `bench compare` picks it) with the
p10-p90 band of that run's samples, marked where the case ran throttled. A change point is where
`bench compare` would call the step from the previous point of the same case and device regressed
(or improved): only steps beyond the threshold are tested, so the samples of a few runs are read,
not those of all.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Optional

import duckdb
import numpy as np
import pandas as pd

from accelbench import __version__
from accelbench.errors import ResultsError
from accelbench.records import LEGACY_HEADLINES, CaseRecord, Metric
from accelbench.store import RUN_FILE, cases_file
from accelbench.reports.numbers import natural_key, significant
from accelbench.reports.compare import DEFAULT_ALPHA, DEFAULT_THRESHOLD, compare_case
from accelbench.reports.templating import template


# Named, not inferred: inference over thousands of files would hold a buffer per file.
_RUN_COLUMNS = ("{run_id: 'VARCHAR', started_at: 'VARCHAR', device_name: 'VARCHAR', backend: 'VARCHAR', "
                "host: 'VARCHAR', commit: 'VARCHAR', label: 'VARCHAR'}")
_CASE_COLUMNS = ("{benchmark: 'VARCHAR', case_id: 'VARCHAR', status: 'VARCHAR', throttled: 'BOOLEAN', "
                 "headline: 'VARCHAR', metrics: 'STRUCT(name VARCHAR, value DOUBLE, unit VARCHAR)[]', "
                 "stats: 'STRUCT(median DOUBLE, p10 DOUBLE, p90 DOUBLE)'}")


def _sql_list(paths: list[str]) -> str:
    return "[" + ", ".join("'" + p.replace("'", "''") + "'" for p in paths) + "]"


def _files(dirs: list[Path], name: str) -> list[str]:
    return sorted(str(p) for d in dirs for p in Path(d).rglob(name))


def load_points(dirs: list[Path], since: Optional[str] = None, device: Optional[str] = None,
                case: Optional[str] = None) -> pd.DataFrame:
    """One row per (run, case) with a figure: run facts, headline metric and its p10-p90 band."""
    run_files = _files(dirs, RUN_FILE)
    case_files = [str(cases_file(Path(f).parent)) for f in run_files if cases_file(Path(f).parent).is_file()]
    if not run_files or not case_files:
        return pd.DataFrame()
    # The case's recorded headline (CaseRecord.headline_metric); in runs that recorded none, the
    # first of the legacy order it has; else its time.
    legacy = "".join(f"WHEN list_filter(metrics, lambda m: m.name = '{n}' AND m.value IS NOT NULL) <> [] THEN '{n}' "
                     for n in LEGACY_HEADLINES)
    pick = ("WHEN headline IS NOT NULL AND headline <> 'time' AND list_filter(metrics, lambda m: m.name = headline "
            "AND m.value IS NOT NULL) <> [] THEN headline WHEN headline IS NOT NULL THEN 'time' " + legacy + "ELSE 'time'")
    where = ["c.status = 'ok'", "c.stats IS NOT NULL"]
    params: list = []
    if since:
        where.append("r.started_at >= ?::TIMESTAMPTZ")
        params.append(since)
    if device:
        where.append("r.device_name ILIKE ?")
        params.append(f"%{device}%")
    if case:
        where.append("c.case_id ILIKE ?")
        params.append(f"%{case}%")
    query = f"""
    WITH runs AS (
        SELECT parse_dirpath(filename) AS folder, run_id, started_at::TIMESTAMPTZ AS started_at, device_name,
               backend, host, commit, label
        FROM read_json({_sql_list(run_files)}, filename = true, columns = {_RUN_COLUMNS})),
    cases AS (
        SELECT parse_dirpath(filename) AS folder, *, CASE {pick} END AS metric
        FROM read_json({_sql_list(case_files)}, filename = true, format = 'newline_delimited',
                       columns = {_CASE_COLUMNS}))
    SELECT r.run_id, r.started_at, r.device_name AS device, r.backend, r.host, r.commit, r.label, r.folder,
           c.benchmark, c.case_id, c.throttled, c.metric,
           list_filter(c.metrics, lambda m: m.name = c.metric)[1].value AS value,
           list_filter(c.metrics, lambda m: m.name = c.metric)[1].unit AS unit,
           c.stats.median AS median_s, c.stats.p10 AS p10_s, c.stats.p90 AS p90_s
    FROM cases c JOIN runs r USING (folder)
    WHERE {' AND '.join(where)} AND c.metric IS NOT NULL
    ORDER BY c.benchmark, c.case_id, r.device_name, r.started_at"""
    try:
        frame = duckdb.connect().execute(query, params).df()
    except duckdb.Error as exc:  # a corrupt or foreign file: name what DuckDB says, no traceback
        raise ResultsError(f"reading the runs under {', '.join(map(str, dirs))}: {str(exc).splitlines()[0]}") from None
    throughput = frame["metric"] != "time"
    # The band of a throughput follows from the band of the times (value ~ 1 / time).
    frame["low"] = np.where(throughput, frame["value"] * frame["median_s"] / frame["p90_s"], frame["p10_s"])
    frame["high"] = np.where(throughput, frame["value"] * frame["median_s"] / frame["p10_s"], frame["p90_s"])
    if frame.duplicated(["run_id", "benchmark", "case_id"]).any():  # --repeat: one point per run, its repeats' median
        keys = [c for c in frame.columns if c not in ("value", "low", "high", "throttled", "median_s", "p10_s", "p90_s")]
        frame = (frame.groupby(keys, sort=False, dropna=False)
                 .agg(value=("value", "median"), low=("low", "min"), high=("high", "max"), throttled=("throttled", "any"))
                 .reset_index().sort_values(["benchmark", "case_id", "device", "started_at"], ignore_index=True))
    return frame


@dataclass
class Change:
    run_id: str
    started_at: str
    commit: Optional[str]
    verdict: str
    change_pct: float
    p_value: Optional[float]


@dataclass
class Trend:
    benchmark: str
    case_id: str
    device: str
    metric: str
    unit: str
    points: pd.DataFrame
    changes: list[Change] = field(default_factory=list)

    @property
    def higher_is_better(self) -> bool:
        return self.metric != "time"

    @property
    def latest(self) -> float:
        return float(self.points["value"].iloc[-1])

    @property
    def anchor(self) -> str:
        """The trend's id in the page, for the index of flagged changes to link to."""
        return "t-" + re.sub(r"[^A-Za-z0-9]+", "-", f"{self.benchmark}-{self.case_id}-{self.device}").strip("-")

    def sparkline(self, width: int = 440, height: int = 84) -> str:
        """An inline SVG with axes: the p10-p90 band, the median line, throttled points hollow,
        changes marked; x is the run's start time (first and last dates written under it), y
        runs from the lowest to the highest value drawn (both written beside it)."""
        pts = self.points
        left, right, top, bottom = 58, 6, 6, 18
        lo, hi = float(pts["low"].min()), float(pts["high"].max())
        span = (hi - lo) or abs(hi) or 1.0
        times = pd.to_datetime(pts["started_at"], utc=True)
        t0, t1 = times.iloc[0], times.iloc[-1]
        length = (t1 - t0).total_seconds()
        x = [left + (width - left - right) * ((t - t0).total_seconds() / length if length else 0.5) for t in times]

        def y(v: float) -> float:
            return top + (height - top - bottom) * (1 - (v - lo) / span)
        band = " ".join(f"{a:.1f},{y(v):.1f}" for a, v in zip(x, pts["high"])) + " " + \
            " ".join(f"{a:.1f},{y(v):.1f}" for a, v in zip(reversed(x), reversed(list(pts["low"]))))
        line = " ".join(f"{a:.1f},{y(v):.1f}" for a, v in zip(x, pts["value"]))
        marks = [f'<circle cx="{a:.1f}" cy="{y(v):.1f}" r="2.5" class="throttled"><title>throttled</title></circle>'
                 for a, v, t in zip(x, pts["value"], pts["throttled"]) if t]
        index = {r: i for i, r in enumerate(pts["run_id"])}
        marks += [f'<circle cx="{x[index[c.run_id]]:.1f}" cy="{y(pts["value"].iloc[index[c.run_id]]):.1f}" r="4" '
                  f'class="{c.verdict}"><title>{c.verdict} {c.change_pct:+.1f} % at {c.started_at}</title></circle>'
                  for c in self.changes]
        axes = (f'<line x1="{left}" y1="{top}" x2="{left}" y2="{height - bottom}" class="axis"/>'
                f'<line x1="{left}" y1="{height - bottom}" x2="{width - right}" y2="{height - bottom}" class="axis"/>'
                f'<text x="{left - 4}" y="{top + 8}" text-anchor="end">{significant(hi)}</text>'
                f'<text x="{left - 4}" y="{height - bottom}" text-anchor="end">{significant(lo)}</text>'
                f'<text x="{left}" y="{height - 4}">{t0:%Y-%m-%d}</text>'
                + (f'<text x="{width - right}" y="{height - 4}" text-anchor="end">{t1:%Y-%m-%d}</text>'
                   if f"{t1:%Y-%m-%d}" != f"{t0:%Y-%m-%d}" or length else ""))
        return (f'<svg width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" '
                f'aria-label="{self.metric} over time">{axes}'
                f'<polygon points="{band}" class="band"/><polyline points="{line}" class="median"/>'
                + "".join(marks) + "</svg>")


def _record(row, samples: list[float]) -> CaseRecord:
    metrics = [Metric(row.metric, row.value, row.unit)] if row.metric != "time" else []
    return CaseRecord(row.benchmark, row.case_id, {}, "ok", samples_s=samples, metrics=metrics,
                      throttled=bool(row.throttled))


def _samples(rows: pd.DataFrame) -> dict[tuple[str, str, str], list[float]]:
    """The samples of just these (folder, benchmark, case) rows."""
    if rows.empty:
        return {}
    files = sorted({str(cases_file(f)) for f in rows["folder"]})
    wanted = pd.DataFrame({"folder": rows["folder"], "benchmark": rows["benchmark"], "case_id": rows["case_id"]})
    con = duckdb.connect()
    con.register("wanted", wanted)
    found = con.execute(f"""
        WITH read AS (
            SELECT parse_dirpath(filename) AS folder, benchmark, case_id, samples_s
            FROM read_json({_sql_list(files)}, filename = true, format = 'newline_delimited',
                           columns = {{benchmark: 'VARCHAR', case_id: 'VARCHAR', samples_s: 'DOUBLE[]'}}))
        SELECT * FROM read SEMI JOIN wanted USING (folder, benchmark, case_id)""").fetchall()
    out: dict[tuple[str, str, str], list[float]] = {}
    for f, b, c, s in found:  # the repeats of a case (--repeat) in run order
        out.setdefault((f, b, c), []).extend(s or [])
    return out


def trends(points: pd.DataFrame, threshold: float = DEFAULT_THRESHOLD, alpha: float = DEFAULT_ALPHA) -> list[Trend]:
    if points.empty:
        return []
    keys = ["benchmark", "case_id", "device"]
    previous = points.groupby(keys, sort=False)["value"].shift()
    step = points["value"] / previous
    gain = step.where(points["metric"] != "time", 1 / step)
    suspect = points.index[(gain - 1).abs() >= threshold]
    pairs = sorted(set(suspect) | {i - 1 for i in suspect})
    samples = _samples(points.loc[pairs])
    changes: dict[int, Change] = {}
    for i in suspect:
        before, after = points.loc[i - 1], points.loc[i]
        result = compare_case(_record(before, samples.get((before.folder, before.benchmark, before.case_id), [])),
                              _record(after, samples.get((after.folder, after.benchmark, after.case_id), [])),
                              threshold, alpha)
        if result.verdict in ("regressed", "improved"):
            changes[i] = Change(after.run_id, str(after.started_at)[:19], after.commit, result.verdict,
                                result.change_pct, result.p_value)
    out = []
    for (bench, case_id, device), group in points.groupby(keys, sort=False):
        out.append(Trend(bench, case_id, device, group["metric"].iloc[0], group["unit"].iloc[0],
                         group.reset_index(drop=True), [changes[i] for i in group.index if i in changes]))
    return sorted(out, key=lambda t: (t.benchmark, natural_key(t.case_id), t.device))


def table(found: list[Trend]) -> pd.DataFrame:
    """The page's content as a table: one row per trend."""
    return pd.DataFrame([{
        "benchmark": t.benchmark, "case": t.case_id, "device": t.device, "metric": t.metric, "unit": t.unit,
        "runs": len(t.points), "first": str(t.points["started_at"].iloc[0])[:19],
        "last": str(t.points["started_at"].iloc[-1])[:19], "latest": t.latest,
        "min": float(t.points["value"].min()), "max": float(t.points["value"].max()),
        "throttled_runs": int(t.points["throttled"].sum()),
        "regressions": sum(c.verdict == "regressed" for c in t.changes),
        "improvements": sum(c.verdict == "improved" for c in t.changes),
        "changes": "; ".join(f"{c.verdict} {c.change_pct:+.1f} % at {c.started_at} ({c.commit or '?'})"
                             for c in t.changes)} for t in found])


def page(found: list[Trend], dirs: list[Path], threshold: float, filters: dict[str, Optional[str]]) -> str:
    """The history page: an index of every flagged change first (regressions before improvements,
    each linking to its trend), filters by benchmark and device, then a section per benchmark."""
    sections: dict[str, list[Trend]] = {}
    for t in found:
        sections.setdefault(t.benchmark, []).append(t)
    runs = len({r for t in found for r in t.points["run_id"]})
    flagged = sorted(((t, c) for t in found for c in t.changes),
                     key=lambda tc: (tc[1].verdict != "regressed", tc[1].started_at), reverse=False)
    return template("history.html.j2").render(
        version=__version__, sections=sections, runs=runs, dirs=[str(d) for d in dirs], threshold=threshold,
        flagged=flagged, devices=sorted({t.device for t in found}),
        filters={k: v for k, v in filters.items() if v}, made=datetime.now().isoformat(timespec="seconds"),
        regressions=sum(c.verdict == "regressed" for t in found for c in t.changes))

"""The report as Markdown (for an issue or a wiki: the overview, the procurement view and each
benchmark's compact table) and the overview as CSV (raw numbers, for a spreadsheet)."""
from __future__ import annotations

import csv
import io

from accelbench.reports.html import Report
from accelbench.reports.tables import Table

FORMATS = ("html", "md", "csv")


def _md_escape(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ").replace("<", "&lt;").replace(">", "&gt;")


def markdown_table(columns: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(_md_escape(c) for c in columns) + " |",
             "|" + "|".join(" --- " for _ in columns) + "|"]
    lines += ["| " + " | ".join(_md_escape(x) for x in row) + " |" for row in rows]
    return "\n".join(lines)


def markdown(report: Report) -> str:
    o = report.overview
    parts = [f"# {_md_escape(report.title)}", "",
             "Devices side by side on the same work (the case every device ran, named beside each figure); where "
             "they ran none in common, each device's own best and no ratio. "
             f"Ratios are each device ÷ {_md_escape(o.baseline)} ({_md_escape(o.baseline_why)}).", "",
             markdown_table(o.header(), o.text_rows())]
    if report.costs:
        parts += ["", "## Procurement view", "",
                  markdown_table(["device", "work (case)", "USD per hour", "performance per USD", "cost", "assumptions"],
                                 [[c.device, f"{c.work} ({c.case_id})", f"${c.usd_per_hour:,.3f}",
                                   f"{c.perf_per_dollar:,.4g} {c.perf_per_dollar_unit}",
                                   f"${c.cost:,.4g} {c.cost_unit}", "; ".join(c.assumptions)] for c in report.costs])]
    for section in report.sections():
        table: Table = section.compact
        parts += ["", f"## {_md_escape(section.name)} ({section.cases} cases)", ""]
        if table.rows:
            parts.append(markdown_table(table.columns, table.rows))
        if section.problems.rows:
            parts += ["", f"{len(section.problems.rows)} failed or skipped:", "",
                      markdown_table(section.problems.columns, section.problems.rows)]
    return "\n".join(parts) + "\n"


def overview_csv(report: Report) -> str:
    o = report.overview
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["figure", "unit"] + o.devices + [f"{d} / {o.baseline}" for d in o.others]
                    + [f"{d} case" for d in o.devices])
    for row in o.rows:
        writer.writerow([row.headline.name, row.unit]
                        + [c.value if c.value is not None else "" for c in row.cells]
                        + [r if r is not None else "" for r in row.ratios]
                        + [c.case_id or c.missing for c in row.cells])
    return out.getvalue()


def render(report: Report, fmt: str) -> str:
    return {"html": report.html, "md": lambda: markdown(report), "csv": lambda: overview_csv(report)}[fmt]()

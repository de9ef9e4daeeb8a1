"""`bench compare` output: text (a terminal table), Markdown (a CI job summary or a pull request),
HTML (a page beside the report) and JSON (for scripts)."""
from __future__ import annotations

import html
import json

from accelbench.reports.compare import CaseComparison, Comparison, format_value
from accelbench.reports.formats import markdown_table

FORMATS = ("text", "md", "html", "json")
COLUMNS = ["verdict", "benchmark", "case", "metric", "baseline", "candidate", "change (95% CI)", "p", "throttled",
           "loaded", "note"]


def _change(c: CaseComparison) -> str:
    if c.ratio is None:
        return "—"
    text = f"{c.change_pct:+.1f} %"
    if c.ci_low is not None:
        text += f" [{100 * (c.ci_low - 1):+.1f}, {100 * (c.ci_high - 1):+.1f}]"
    return text


def rows(comparison: Comparison, everything: bool) -> list[list[str]]:
    shown = [c for c in comparison.cases if everything or c.verdict not in ("unchanged", "skipped")]
    return [[c.verdict, c.benchmark, c.case_id,
             f"{c.metric} ({c.unit}, {'higher' if c.higher_is_better else 'lower'} is better)" if c.metric else "—",
             format_value(c.baseline), format_value(c.candidate), _change(c),
             "—" if c.p_value is None else f"{c.p_value:.2g}", c.throttled or "—",
             c.loaded or "—", c.note] for c in shown]


def heading(comparison: Comparison) -> list[str]:
    b, c = comparison.baseline.info, comparison.candidate.info
    lines = [f"baseline:  {b.run_id} ({b.device_name}, commit {b.commit or '?'})",
             f"candidate: {c.run_id} ({c.device_name}, commit {c.commit or '?'})"]
    lines += [f"warning: the runs differ in {d}" for d in comparison.differences]
    return lines


def text(comparison: Comparison, everything: bool = False) -> str:
    body = rows(comparison, everything)
    lines = heading(comparison)
    if body:
        widths = [max(len(str(x)) for x in col) for col in zip(COLUMNS, *body)]
        for row in [COLUMNS, *body]:
            lines.append("  ".join(str(x).ljust(w) for x, w in zip(row, widths)).rstrip())
    lines.append(comparison.summary())
    return "\n".join(lines) + "\n"


def markdown(comparison: Comparison, everything: bool = False) -> str:
    parts = ["# accelbench compare", ""] + [f"- {line}" for line in heading(comparison)] + [""]
    body = rows(comparison, everything)
    if body:
        parts += [markdown_table(COLUMNS, body), ""]
    return "\n".join(parts + [comparison.summary()]) + "\n"


def html_page(comparison: Comparison, everything: bool = True) -> str:
    esc = html.escape
    head = "".join(f"<li>{esc(line)}</li>" for line in heading(comparison))
    header = "".join(f"<th>{esc(c)}</th>" for c in COLUMNS)
    body = "".join(f'<tr class="{esc(r[0])}">' + "".join(f"<td>{esc(str(x))}</td>" for x in r) + "</tr>"
                   for r in rows(comparison, everything))
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>accelbench compare</title>
<style>
body {{ font: 14px system-ui, sans-serif; margin: 2em; }} table {{ border-collapse: collapse; }}
td, th {{ border: 1px solid #ccc; padding: 3px 8px; text-align: left; }}
tr.regressed, tr.failed-now {{ background: #fdd; }} tr.improved {{ background: #dfd; }} tr.noisy {{ background: #ffe; }}
</style></head><body>
<h1>accelbench compare</h1><ul>{head}</ul>
<p>{esc(comparison.summary())}</p>
<table><thead><tr>{header}</tr></thead><tbody>{body}</tbody></table>
</body></html>
"""


def render(comparison: Comparison, fmt: str, everything: bool = False) -> str:
    if fmt == "json":
        return json.dumps(comparison.as_json(), indent=2) + "\n"
    if fmt == "html":
        return html_page(comparison)
    return {"text": text, "md": markdown}[fmt](comparison, everything)

"""The fleet folder's page (fleet.html): per figure a strip plot of every device, grouped by node,
with the devices' median and the baseline's figure as lines and each device coloured by its
verdict; then the verdicts with their reasons. Self-contained (plots inline), like a run's report."""
from __future__ import annotations

import html
import statistics
from pathlib import Path
from typing import Optional

from accelbench.fleet.verdicts import Baseline, DeviceResult, Verdict

COLOURS = {"pass": "#2e7d32", "warn": "#f9a825", "fail": "#c62828"}


def strip_plot(figure: str, results: list[DeviceResult], verdicts: dict[str, Verdict],
               baseline: Optional[Baseline]) -> Optional[str]:
    """One figure across devices as base64 PNG: a column of dots per node, a dot per device."""
    from accelbench.reports.plots import plt, to_png
    points = [(r.node, r.device, r.figures[figure]) for r in results if figure in r.figures]
    if not points:
        return None
    nodes = sorted({node for node, _, _ in points})
    fig, ax = plt.subplots(figsize=(max(3.5, 1.2 * len(nodes) + 2), 2.8))
    for x, node in enumerate(nodes):
        mine = sorted((value, device) for n, device, value in points if n == node)
        for i, (value, device) in enumerate(mine):
            jitter = (i - (len(mine) - 1) / 2) * min(0.5 / max(len(mine), 1), 0.08)
            ax.scatter([x + jitter], [value], s=28, color=COLOURS[verdicts[device].status], zorder=3)
    median = statistics.median(value for _, _, value in points)
    ax.axhline(median, color="#555555", lw=1, ls="--", label=f"median {median:.4g}")
    reference = baseline.figures.get(figure) if baseline else None
    if reference:
        ax.axhline(reference, color="#1565c0", lw=1, label=f"baseline {reference:.4g}")
    ax.set_xticks(range(len(nodes)), nodes)
    ax.set_xlim(-0.6, len(nodes) - 0.4)
    ax.set_title(figure, fontsize=9)
    ax.legend(fontsize=7, loc="lower left", frameon=False)
    ax.grid(axis="y", alpha=0.3)
    return to_png(fig)


def write_page(folder: Path, results: list[DeviceResult], verdicts: list[Verdict],
               baseline: Optional[Baseline]) -> Path:
    by_device = {v.device: v for v in verdicts}
    figures = sorted({n for r in results for n in r.figures})
    plots = [(name, strip_plot(name, results, by_device, baseline)) for name in figures]
    rows = "".join(
        f"<tr><td>{html.escape(v.device)}</td><td style='color:{COLOURS[v.status]}'><b>{v.status}</b></td>"
        f"<td>{'<br>'.join(html.escape(r) for r in v.reasons) or '—'}</td></tr>" for v in verdicts)
    images = "".join(f"<figure><img alt='{html.escape(name)}' src='data:image/png;base64,{png}'></figure>"
                     for name, png in plots if png)
    title = f"fleet: {len(results)} device(s) on {len({r.node for r in results})} node(s)"
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            "<style>body{font-family:sans-serif;margin:1.5em}figure{display:inline-block;margin:0.5em}"
            "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:0.3em 0.6em;text-align:left}</style>"
            f"</head><body><h1>{html.escape(title)}</h1>"
            "<p>Each figure across the devices (a dot each, a column per node, coloured by verdict: green pass, "
            "amber warn, red fail); dashed: the devices' median; blue: the baseline's figure, where one was given "
            "(docs/fleet.md).</p>"
            f"{images}<h2>Verdicts</h2><table><tr><th>device</th><th>verdict</th><th>why</th></tr>{rows}</table>"
            "</body></html>\n")
    path = folder / "fleet.html"
    path.write_text(page, encoding="utf-8")
    return path

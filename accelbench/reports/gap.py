"""Where the difference between two devices goes: for a case both ran whose step the run's ceilings
predict (view.StepModel's and PrefillModel's `predicted_<per>` and `<per>_share_<part>` figures),
the ratio of their times set beside the ratio of each part's time (docs/reports.md): "weights
1.43×, unexplained 1.02×, so 1.30× overall"; and a stacked bar of each such case's parts. Reads the
figures only: no benchmark is named here."""
from __future__ import annotations

import pandas as pd

from accelbench.reports.numbers import quantity
from accelbench.reports.tables import Table, natural_key, wide_figures

PREFIX = "predicted_"


def predicted_figures(wide: pd.DataFrame) -> list[tuple[str, list[str]]]:
    """(per, its part-share columns) for each figure the run predicts (`predicted_<per>`), the part
    shares `<per>_share_<part>` with the unexplained rest last."""
    out = []
    for column in (str(c) for c in wide.columns if str(c).startswith(PREFIX)):
        per = column[len(PREFIX):]
        shares = sorted((str(c) for c in wide.columns if str(c).startswith(f"{per}_share_")),
                        key=lambda c: c.endswith("_unexplained"))
        if per in wide.columns and shares:
            out.append((per, shares))
    return out


def gap_table(frame: pd.DataFrame, devices: list[str], baseline: str) -> Table:
    """One row per case, predicted figure and other device: the baseline's time over the other's
    (above 1: the other is faster), and the same ratio for each part's time (share × time)."""
    wide = wide_figures(frame)
    if wide.empty or baseline not in set(wide.index.get_level_values("device")):
        return Table([], [])
    figures = predicted_figures(wide)
    if not figures:
        return Table([], [])
    names = list(dict.fromkeys(s.split("_share_", 1)[1] for _, shares in figures for s in shares))
    names.sort(key=lambda n: n == "unexplained")
    wide = wide.reset_index()
    rows = []
    for per, shares in figures:
        known = wide.dropna(subset=[per, PREFIX + per])
        base = known[known["device"] == baseline].drop_duplicates("case_id").set_index("case_id")
        for device in [d for d in devices if d != baseline]:
            other = known[known["device"] == device].drop_duplicates("case_id").set_index("case_id")
            for case in sorted(set(base.index) & set(other.index), key=natural_key):
                a, b = base.loc[case], other.loc[case]
                cells = [case, per, device, quantity(a[per], "s"), quantity(b[per], "s"), f"{a[per] / b[per]:.2f}×"]
                for name in names:
                    part = f"{per}_share_{name}"
                    ta, tb = a.get(part, float("nan")) * a[per], b.get(part, float("nan")) * b[per]
                    cells.append(f"{ta / tb:.2f}×" if pd.notna(ta) and pd.notna(tb) and tb > 0 else "—")
                rows.append(cells)
    if not rows:
        return Table([], [])
    return Table(["case", "time", "device", f"on {baseline}", "on device", "speed-up (time ratio)",
                  *[f"{n.replace('_', ' ')} part ×" for n in names]], rows)


MAX_BARS = 16  # a panel's bars: more would not be read


def parts_plot(frame: pd.DataFrame) -> list[str]:
    """A stacked bar per case and device for each figure the run predicts: each part's time (its
    share × the measured time) and the unexplained rest, as base64 PNG (one panel per figure)."""
    from accelbench.reports.plots import plt, to_png
    wide = wide_figures(frame)
    if wide.empty:
        return []
    wide = wide.reset_index()
    panels = []
    for per, shares in predicted_figures(wide):
        rows = wide.dropna(subset=[per])
        rows = rows[rows[shares].notna().any(axis=1)].sort_values(["case_id", "device"]).head(MAX_BARS)
        if not rows.empty:
            panels.append((per, shares, rows))
    if not panels:
        return []
    devices = wide["device"].nunique()
    fig, axes = plt.subplots(len(panels), 1, figsize=(8, sum(1.2 + 0.32 * len(p[-1]) for p in panels)), squeeze=False)
    colours = plt.get_cmap("tab10")
    for ax, (per, shares, rows) in zip(axes[:, 0], panels):
        labels = [f"{c}" + (f" — {d}" if devices > 1 else "") for c, d in zip(rows["case_id"], rows["device"])]
        left = [0.0] * len(rows)
        for i, share in enumerate(shares):
            ms = [(s if pd.notna(s) else 0.0) / 100 * t * 1e3 for s, t in zip(rows[share], rows[per])]
            name = share.split("_share_", 1)[1].replace("_", " ")
            colour = "#bbbbbb" if name == "unexplained" else colours(i)
            ax.barh(range(len(rows)), ms, left=left, color=colour, label=name, height=0.6)
            left = [a + b for a, b in zip(left, ms)]
        ax.set_yticks(range(len(rows)), labels, fontsize=7)
        ax.invert_yaxis()
        ax.set_xlabel(f"{per}, ms (measured), split into the parts its prediction names", fontsize=8)
        ax.set_title(f"Where the measured {per} goes", fontsize=9)
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
    fig.tight_layout()
    return [to_png(fig)]

"""Where the difference between two devices goes: for a case both ran whose step the run's ceilings
predict (view.StepModel's `predicted_<per>` and `share_<part>` figures), the ratio of their step
times set beside the ratio of each part's time (docs/reports.md): "weights 1.43×, unexplained
1.02×, so 1.30× overall". Reads the figures only: no benchmark is named here."""
from __future__ import annotations

import pandas as pd

from accelbench.reports.numbers import quantity
from accelbench.reports.tables import Table, natural_key, wide_figures

PREFIX = "predicted_"


def gap_table(frame: pd.DataFrame, devices: list[str], baseline: str) -> Table:
    """One row per case and other device: the baseline's step time over the other's (above 1: the
    other is faster), and the same ratio for each part's time (share × step time)."""
    wide = wide_figures(frame)
    if wide.empty:
        return Table([], [])
    predicted = [c for c in wide.columns if str(c).startswith(PREFIX)]
    if not predicted or baseline not in set(wide.index.get_level_values("device")):
        return Table([], [])
    per = predicted[0][len(PREFIX):]
    parts = sorted((c for c in wide.columns if str(c).startswith("share_")), key=lambda c: c == "share_unexplained")
    wide = wide.reset_index().dropna(subset=[per, predicted[0]])
    base = wide[wide["device"] == baseline].drop_duplicates("case_id").set_index("case_id")
    rows = []
    for device in [d for d in devices if d != baseline]:
        other = wide[wide["device"] == device].drop_duplicates("case_id").set_index("case_id")
        for case in sorted(set(base.index) & set(other.index), key=natural_key):
            a, b = base.loc[case], other.loc[case]
            cells = [case, device, quantity(a[per], "s"), quantity(b[per], "s"), f"{a[per] / b[per]:.2f}×"]
            for part in parts:
                ta, tb = a.get(part, float("nan")) * a[per], b.get(part, float("nan")) * b[per]
                cells.append(f"{ta / tb:.2f}×" if pd.notna(ta) and pd.notna(tb) and tb > 0 else "—")
            rows.append(cells)
    if not rows:
        return Table([], [])
    names = [p[len("share_"):].replace("_", " ") for p in parts]
    return Table(["case", "device", f"{per} on {baseline}", f"{per} on device", "speed-up (time ratio)",
                  *[f"{n} part ×" for n in names]], rows)

"""Timing regimes side by side: where a run measured its cases in more than one regime
(`bench run --regime sustained,burst`), each case's headline figure, average SM clock and
clock-normalized efficiency per regime, and the ratio of the figures. A burst figure above a
sustained one with the same clock-normalized efficiency is the power cap at work, not the kernel.
With --repeat, a regime's cell is the median over the repeats."""
from __future__ import annotations

import pandas as pd

from accelbench.reports.numbers import DASH, quantity, ratio
from accelbench.reports.tables import Table
from accelbench.timing import base_case_id

CLOCK_METRICS = ("sm_clock_avg", "sm_clock_of_max", "clock_norm_eff")


def regime_table(frame: pd.DataFrame) -> Table:
    """One row per (run, case) measured in two or more regimes; empty where no case was."""
    if frame.empty or "regime" not in frame:
        return Table([], [])
    ok = frame[(frame["status"] == "ok") & ((frame["metric"] == frame["headline"]) | frame["metric"].isin(CLOCK_METRICS))
               & frame["regime"].notna()]
    if ok.empty:
        return Table([], [])
    ok = ok.assign(case=ok["case_id"].map(base_case_id))
    wide = ok.pivot_table(index=["run_id", "benchmark", "case", "regime"], columns="metric", values="value",
                          aggfunc="median", sort=False)
    units = ok.groupby("metric")["unit"].first().to_dict()
    regimes = list(dict.fromkeys(ok["regime"]))
    if len(regimes) < 2:
        return Table([], [])
    columns = ["benchmark", "case"]
    for regime in regimes:
        columns += [f"{regime}: figure", f"{regime}: SM clock [MHz]", f"{regime}: of max clock",
                    f"{regime}: clock-normalized eff."]
    columns.append(f"{regimes[1]} ÷ {regimes[0]}")
    rows = []
    for (run_id, bench, case), per_regime in wide.groupby(level=[0, 1, 2], sort=False):
        found = {index[3]: row for index, row in per_regime.iterrows()}
        if len(found) < 2:
            continue
        headline = next((m for m in per_regime.columns if m not in CLOCK_METRICS and per_regime[m].notna().any()), None)
        row, figures = [bench, case], []
        for regime in regimes:
            got = found.get(regime, pd.Series(dtype=float))
            value = got.get(headline) if headline else None
            figures.append(None if value is None or pd.isna(value) else float(value))
            row += [quantity(figures[-1], units.get(headline)),
                    *(quantity(got.get(m), "%" if m != "sm_clock_avg" else None) for m in CLOCK_METRICS)]
        row.append(ratio(figures[1] / figures[0]) if figures[0] and figures[1] else DASH)
        rows.append(row)
    return Table(columns, rows)


"""Turning the tidy results frame into display tables (plain strings, escaped by the template)."""
from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

BASE_COLUMNS = ["run_id", "label", "device", "backend", "benchmark", "case_id", "status", "reason",
                "throttled", "metric", "value", "unit"]
# Shown first in this order where present; other metrics follow alphabetically.
METRIC_ORDER = ["time", "tflops", "mfu", "mamf_util", "gbps", "bw_util", "tokens_per_s", "avg_power",
                "idle_power", "energy_per_call", "tflops_per_w", "gbps_per_w", "tokens_per_j"]


@dataclass
class Table:
    columns: list[str]
    rows: list[list[str]]


def fmt(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if isinstance(value, bool):
        return "yes" if value else ""
    if isinstance(value, float):
        if value == 0:
            return "0"
        if abs(value) >= 1e5 or abs(value) < 1e-3:
            return f"{value:.3e}"
        return f"{value:.4g}"
    return str(value)


def param_columns(frame: pd.DataFrame) -> list[str]:
    cols = [c for c in frame.columns if c not in BASE_COLUMNS]
    return [c for c in cols if frame[c].notna().any()]


def benchmark_table(frame: pd.DataFrame, multi_run: bool) -> Table:
    """One row per case, one column per metric ("name [unit]")."""
    params = param_columns(frame)
    units = frame.dropna(subset=["metric"]).groupby("metric")["unit"].first().to_dict()
    metrics = sorted(units, key=lambda m: (METRIC_ORDER.index(m) if m in METRIC_ORDER else 99, m))
    rows = []
    for _, group in frame.groupby(["run_id", "case_id"], sort=False):
        first = group.iloc[0]
        values = dict(zip(group["metric"], group["value"]))
        cells = [fmt(first["label"] if first["label"] else first["run_id"])] if multi_run else []
        cells += [fmt(first["case_id"]), fmt(first["status"]), fmt(bool(first["throttled"]))]
        cells += [fmt(_native(first[p])) for p in params]
        cells += [fmt(values.get(m)) for m in metrics]
        rows.append(cells)
    headers = (["run"] if multi_run else []) + ["case", "status", "throttled"] + params
    headers += [f"{m} [{units[m]}]" for m in metrics]
    return Table(headers, rows)


def problems_table(frame: pd.DataFrame) -> Table:
    bad = frame[frame["status"] != "ok"].drop_duplicates(["run_id", "case_id"])
    rows = [[fmt(r.benchmark), fmt(r.case_id), fmt(r.status), fmt(r.reason)] for r in bad.itertuples()]
    return Table(["benchmark", "case", "status", "reason"], rows)


def _native(value):
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value

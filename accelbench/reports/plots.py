"""Plots embedded in reports as base64 PNG. Each function takes one benchmark's rows of the
tidy frame (reports never import benchmarks) and returns a PNG or None if nothing to plot."""
from __future__ import annotations

import base64
import io
from typing import Callable, Optional

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _series_label(row, multi_run: bool) -> str:
    return f"{row['label'] or row['device']} {row['dtype']}" if multi_run else str(row["dtype"])


def gemm_tflops_vs_size(rows: pd.DataFrame, multi_run: bool) -> Optional[str]:
    data = rows[(rows["metric"] == "tflops") & (rows["status"] == "ok") & (rows["group"] == "square")]
    if data.empty:
        return None
    fig, ax = plt.subplots(figsize=(7, 4))
    for key, series in data.groupby(["run_id", "dtype"]):
        series = series.sort_values("n")
        ax.plot(series["n"], series["value"], marker="o", label=_series_label(series.iloc[0], multi_run))
    ax.set_xscale("log", base=2)
    ax.set_xlabel("M = N = K")
    ax.set_ylabel("TFLOP/s (FLOPs = 2·M·N·K)")
    ax.set_title("GEMM throughput vs size (square)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    return _png(fig)


PLOTS: dict[str, list[Callable[[pd.DataFrame, bool], Optional[str]]]] = {
    "gemm": [gemm_tflops_vs_size],
}


def plots_for(benchmark: str, rows: pd.DataFrame, multi_run: bool) -> list[str]:
    out = []
    for plot in PLOTS.get(benchmark, []):
        png = plot(rows, multi_run)
        if png:
            out.append(png)
    return out

"""Plots embedded in reports as base64 PNG. Each function takes one benchmark's rows of the
tidy frame (reports never import benchmarks) and returns a PNG or None if nothing to plot."""
from __future__ import annotations

import base64
import io
from typing import Callable, Optional

from accelbench.records import RunInfo

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402


def to_png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def device_name(runs: dict[str, RunInfo], run_id: str) -> str:
    """What a legend calls a run: its device, and its label too where another run has the same device."""
    info = runs[run_id]
    shared = sum(1 for other in runs.values() if other.device_name == info.device_name) > 1
    return f"{info.device_name} ({info.label or info.run_id})" if shared else info.device_name


def gemm_tflops_vs_size(rows: pd.DataFrame, multi_run: bool, runs: dict[str, RunInfo]) -> Optional[str]:
    data = rows[(rows["metric"] == "tflops") & (rows["status"] == "ok") & (rows["group"] == "square")]
    if data.empty:
        return None
    fig, ax = plt.subplots(figsize=(7, 4))
    for key, series in data.groupby(["run_id", "dtype"]):
        series = series.sort_values("n")
        label = f"{device_name(runs, key[0])} {key[1]}" if multi_run else str(key[1])
        ax.plot(series["n"], series["value"], marker="o", label=label)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("M = N = K")
    ax.set_ylabel("TFLOP/s (FLOPs = 2·M·N·K)")
    ax.set_title("GEMM throughput vs size (square)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    return to_png(fig)


def membw_gbps_vs_size(rows: pd.DataFrame, multi_run: bool, runs: dict[str, RunInfo]) -> Optional[str]:
    """One panel per kernel: GB/s vs working set (log x), torch and Triton side by side, with the
    datasheet bandwidth and the last-level cache size marked."""
    data = rows[(rows["metric"] == "gbps") & (rows["status"] == "ok")]
    if data.empty:
        return None
    kernels = list(dict.fromkeys(data["kernel"]))
    palette = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    colors: dict[tuple, str] = {}
    cols = min(4, len(kernels))
    fig, axes = plt.subplots((len(kernels) + cols - 1) // cols, cols, figsize=(4 * cols, 3.2 * ((len(kernels) + cols - 1) // cols)),
                             squeeze=False, sharey=True)
    for ax, kernel in zip(axes.flat, kernels):
        for key, series in data[data["kernel"] == kernel].groupby(["run_id", "impl", "dtype"]):
            series = series.sort_values("working_set_bytes")
            run_id, impl, dtype = key
            label = f"{device_name(runs, run_id)} {impl} {dtype}" if multi_run else f"{impl} {dtype}"
            color = colors.setdefault(key, palette[len(colors) % len(palette)])
            ax.plot(series["working_set_bytes"], series["value"], marker=".", label=label, color=color)
        for run_id in data["run_id"].unique():
            spec = runs[run_id].spec or {}
            if spec.get("mem_bandwidth_Bps"):
                ax.axhline(spec["mem_bandwidth_Bps"] / 1e9, color="k", ls="--", lw=0.8)
            cache = data[data["run_id"] == run_id]["cache_bytes"].dropna() if "cache_bytes" in data else pd.Series()
            if not cache.empty:
                ax.axvline(float(cache.iloc[0]), color="gray", ls=":", lw=0.8)
                # Below 4x the cache the figures are cache bandwidth, not device memory's.
                ax.axvspan(float(data["working_set_bytes"].min()) / 2, 4 * float(cache.iloc[0]),
                           color="gold", alpha=0.12, lw=0)
        ax.set_xscale("log", base=2)
        ax.set_title(kernel)
        ax.set_xlabel("working set (bytes)")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
    for ax in axes.flat[len(kernels):]:
        ax.set_visible(False)
    axes[0][0].set_ylabel("GB/s (1e9 B/s)")
    fig.tight_layout(rect=(0, 0, 1, 0.95))
    fig.suptitle("Memory bandwidth vs working set (shaded: under 4x the last-level cache, i.e. cache bandwidth, "
                 "not device memory; dotted: cache size; dashed: datasheet memory bandwidth)", fontsize=9)
    return to_png(fig)


def transfer_gbps_vs_size(rows: pd.DataFrame, multi_run: bool, runs: dict[str, RunInfo]) -> Optional[str]:
    data = rows[(rows["metric"] == "gbps") & (rows["status"] == "ok")]
    if data.empty:
        return None
    fig, ax = plt.subplots(figsize=(7, 4))
    for key, series in data.groupby(["run_id", "direction", "host_memory"]):
        series = series.sort_values("bytes")
        prefix = f"{device_name(runs, key[0])} " if multi_run else ""
        ax.plot(series["bytes"], series["value"], marker="o", label=f"{prefix}{key[1]} {key[2]}")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("buffer size (bytes)")
    ax.set_ylabel("GB/s")
    ax.set_title("Host-device transfers")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    return to_png(fig)


def fp8_speed_vs_error(rows: pd.DataFrame, multi_run: bool, runs: dict[str, RunInfo]) -> Optional[str]:
    """One point per mode (and implementation): TFLOP/s against relative error vs fp64, for
    GEMM-only cases on normal inputs at the largest shape measured."""
    ok = rows[(rows["status"] == "ok") & (rows["stage"] == "gemm") & (rows["dist"] == "normal")]
    if ok.empty:
        return None
    flops = ok["m"] * ok["k"] * ok["n"]
    ok = ok[flops == flops.max()]
    emulated = ok["execution"].fillna("").str.startswith("emulated") if "execution" in ok else False
    ok = ok.assign(emulated=emulated)
    wide = ok.pivot_table(index=["run_id", "mode", "impl", "emulated"], columns="metric", values="value",
                          aggfunc="first")
    if "tflops" not in wide or "quant_rel_error" not in wide:
        return None
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for (run_id, mode, impl, software), row in wide.iterrows():
        label = mode if impl in ("auto", "torch") else f"{mode} ({impl})"
        if multi_run:
            label = f"{device_name(runs, run_id)}: {label}"
        err = row.get("quant_rel_error")
        if not err or not err > 0:
            continue
        if software:  # an emulated figure is not set beside native ones unmarked
            label += " (emulated)"
        ax.scatter([err], [row["tflops"]], facecolors="none" if software else None,
                   edgecolors="C7" if software else None)
        ax.annotate(label, (err, row["tflops"]), fontsize=7, xytext=(3, 3), textcoords="offset points")
    m, k, n = (int(ok[c].iloc[0]) for c in ("m", "k", "n"))
    ax.set_xscale("log")
    ax.set_xlabel("relative Frobenius error vs fp64 of unquantized inputs")
    ax.set_ylabel("TFLOP/s (GEMM only)")
    ax.set_title(f"FP8 scaling modes: speed vs error, M={m} K={k} N={n}" +
                 ("\n(hollow: emulated in software, not a native figure)" if ok["emulated"].any() else ""))
    ax.grid(True, alpha=0.3)
    return to_png(fig)


def collectives_busbw_vs_size(rows: pd.DataFrame, multi_run: bool, runs: dict[str, RunInfo]) -> Optional[str]:
    """One panel per operation: busbw against message size (log x), one line per dtype (and
    device), the datasheet link bandwidth per direction dashed where the spec table knows it."""
    data = rows[(rows["metric"] == "busbw") & (rows["status"] == "ok")]
    if data.empty:
        return None
    ops = list(dict.fromkeys(data["op"]))
    cols = min(3, len(ops))
    nrows = (len(ops) + cols - 1) // cols
    fig, axes = plt.subplots(nrows, cols, figsize=(4.5 * cols, 3.3 * nrows), squeeze=False)
    for ax, op in zip(axes.flat, ops):
        for (run_id, dtype), series in data[data["op"] == op].groupby(["run_id", "dtype"]):
            series = series.sort_values("bytes")
            info = runs[run_id]
            ranks = f" x{len(info.ranks)}" if info.ranks else ""
            label = f"{device_name(runs, run_id)}{ranks} {dtype}" if multi_run else str(dtype)
            ax.plot(series["bytes"], series["value"], marker=".", label=label)
        for run_id in data["run_id"].unique():
            spec = runs[run_id].spec or {}
            if spec.get("link_bandwidth_Bps"):
                ax.axhline(spec["link_bandwidth_Bps"] / 1e9, color="k", ls="--", lw=0.8,
                           label=f"datasheet link per direction ({spec['link_bandwidth_Bps'] / 1e9:.0f} GB/s)")
        ax.set_xscale("log", base=2)
        ax.set_title(op)
        ax.set_xlabel("message size S (bytes)")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7, loc="center left")  # busbw is near zero on the left: that side stays clear
    for ax in axes.flat[len(ops):]:
        ax.set_visible(False)
    for row in axes:
        row[0].set_ylabel("busbw (GB/s)")
    fig.tight_layout(rect=(0, 0, 1, 0.95))
    fig.suptitle("Collectives: bus bandwidth vs message size (nccl-tests conventions; t = slowest rank)", fontsize=9)
    return to_png(fig)


def decode_vs_batch(rows: pd.DataFrame, multi_run: bool, runs: dict[str, RunInfo]) -> Optional[str]:
    """Per model and prompt: decode tokens/s and TPOT against batch, one line per engine and precision."""
    data = rows[(rows["status"] == "ok") & rows["metric"].isin(["decode_tokens_per_s", "tpot"])]
    if data.empty or "batch" not in data:
        return None
    data = data.assign(fp8=data["fp8"].fillna("none") if "fp8" in data else "none")  # runs from before FP8 decode
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    for key, series in data.groupby(["run_id", "model", "prompt", "engine", "dtype", "fp8"]):
        run_id, model, prompt, engine, dtype, fp8 = key
        label = f"{model} p{int(prompt)} {engine} {dtype if fp8 == 'none' else f'{dtype} {fp8}'}"
        if multi_run:
            label = f"{device_name(runs, run_id)}: {label}"
        for ax, metric, scale in ((left, "decode_tokens_per_s", 1.0), (right, "tpot", 1e3)):
            points = series[series["metric"] == metric].sort_values("batch")
            if not points.empty:
                ax.plot(points["batch"], points["value"] * scale, marker="o", label=label)
    left.set_ylabel("decode tokens/s (batch / TPOT)")
    right.set_ylabel("TPOT (ms)")
    for ax in (left, right):
        ax.set_xscale("log", base=2)
        ax.set_xlabel("batch")
        ax.grid(True, alpha=0.3)
    right.legend(fontsize=7)
    fig.suptitle("LLM decode: throughput and time per output token vs batch", fontsize=9)
    fig.tight_layout()
    return to_png(fig)


PlotFn = Callable[[pd.DataFrame, bool, dict[str, RunInfo]], Optional[str]]
PLOTS: dict[str, list[PlotFn]] = {
    "gemm": [gemm_tflops_vs_size],
    "membw": [membw_gbps_vs_size],
    "transfer": [transfer_gbps_vs_size],
    "fp8": [fp8_speed_vs_error],
    "collectives": [collectives_busbw_vs_size],
    "decode": [decode_vs_batch],
    "decode-tp": [decode_vs_batch],
}


def plots_for(benchmark: str, rows: pd.DataFrame, multi_run: bool, runs: dict[str, RunInfo]) -> list[str]:
    out = []
    for plot in PLOTS.get(benchmark, []):
        png = plot(rows, multi_run, runs)
        if png:
            out.append(png)
    return out

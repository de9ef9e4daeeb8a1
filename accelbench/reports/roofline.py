"""A roofline per device: attainable FLOP/s = min(compute ceiling, arithmetic intensity × memory
bandwidth), drawn from the ceilings the runs *measured* (the best matmul per dtype, MAMF; the
`membw.device` bandwidth) as solid lines and from the datasheet as dashed ones. Every GEMM, FP8,
bandwidth and decode case that has FLOPs is a point at its arithmetic intensity (FLOPs per byte
of device memory the case must move):
- GEMM: 2·M·N·K over the bytes of A, B and C once each;
- bandwidth kernels: BabelStream counting (mul 1 FLOP per 2 elements moved, add 1 per 3,
  triad 2 per 3, dot 2 per 2); copy, read and write have no FLOPs and no point;
- decode: about 2 FLOPs per parameter per token, over the bytes a step reads (weights + KV cache)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np
import pandas as pd

from accelbench.reports.numbers import significant
from accelbench.reports.plots import to_png, plt
from accelbench.store import LoadedRun

ELEMENT_BYTES = {"fp64": 8, "fp32": 4, "tf32": 4, "fp16": 2, "bf16": 2, "fp8": 1}
# BabelStream: (FLOPs, elements moved) per array element.
KERNEL_WORK = {"mul": (1, 2), "add": (1, 3), "triad": (2, 3), "dot": (2, 2)}


@dataclass
class Point:
    device: str
    kind: str  # gemm, fp8, bandwidth, decode
    intensity: float  # FLOP per byte
    flops: float  # FLOP/s achieved
    case_id: str


def points(frame: pd.DataFrame) -> list[Point]:
    if frame.empty:
        return []
    ok = frame[(frame["status"] == "ok") & frame["metric"].notna()]
    if ok.empty:
        return []
    wide = ok.pivot_table(index=["run_id", "case_id"], columns="metric", values="value", aggfunc="first")
    params = ok.drop_duplicates(["run_id", "case_id"]).set_index(["run_id", "case_id"]).drop(
        columns=["metric", "value", "unit"])
    table = params.merge(wide, left_index=True, right_index=True, how="inner", suffixes=("", " (metric)"))
    out: list[Point] = []
    for kind, (intensity, flops) in _work(table).items():
        chosen = intensity.notna() & flops.notna() & (intensity > 0) & (flops > 0)
        for (run_id, case_id), device, x, y in zip(table.index[chosen], table.loc[chosen, "device"],
                                                   intensity[chosen], flops[chosen]):
            out.append(Point(str(device), kind, float(x), float(y), str(case_id)))
    return out


def _column(table: pd.DataFrame, name: str) -> pd.Series:
    if name not in table:
        return pd.Series(float("nan"), index=table.index)
    return pd.to_numeric(table[name], errors="coerce")


def _work(table: pd.DataFrame) -> dict[str, tuple[pd.Series, pd.Series]]:
    """(arithmetic intensity, FLOP/s) of every case of each kind, NaN where a case is of another."""
    bench, out = table["benchmark"], {}
    m, n, k, tflops = (_column(table, c) for c in ("m", "n", "k", "tflops"))
    dtype = table["dtype"] if "dtype" in table else pd.Series("", index=table.index)
    for kind in ("gemm", "fp8"):
        mine = bench == kind
        element = pd.Series(1.0, index=table.index) if kind == "fp8" else dtype.map(ELEMENT_BYTES).fillna(2.0)
        out_element = 2.0 if kind == "fp8" else element
        moved = (m * k + k * n) * element + m * n * out_element
        out[kind] = ((2 * m * n * k / moved).where(mine), (tflops * 1e12).where(mine))
    kernel = table["kernel"] if "kernel" in table else pd.Series("", index=table.index)
    level = table["memory_level"] if "memory_level" in table else pd.Series("", index=table.index)
    flops_per = kernel.map({k: f for k, (f, _) in KERNEL_WORK.items()})
    moved_per = kernel.map({k: e for k, (_, e) in KERNEL_WORK.items()}) * dtype.map(ELEMENT_BYTES).fillna(4.0)
    intensity = (flops_per / moved_per).where((bench == "membw") & (level == "device"))
    out["bandwidth"] = (intensity, _column(table, "gbps") * 1e9 * intensity)
    per_token = 2 * _column(table, "parameters")
    is_decode = bench.astype(str).str.startswith("decode")
    out["decode"] = ((per_token * _column(table, "batch") / _column(table, "bytes_per_step")).where(is_decode),
                     (per_token * _column(table, "decode_tokens_per_s")).where(is_decode))
    return out


@dataclass
class Ceilings:
    compute: dict[str, float]  # dtype -> FLOP/s
    bandwidth: Optional[float]  # B/s


def ceilings(runs: list[LoadedRun], device: str) -> tuple[Ceilings, Ceilings]:
    """(measured, datasheet) ceilings of one device, the best over its runs."""
    measured = Ceilings({}, None)
    sheet = Ceilings({}, None)
    for run in runs:
        if run.info.device_name != device:
            continue
        for key, c in run.info.ceilings.items():
            if key.startswith("matmul."):
                dtype = key.split(".", 1)[1]
                measured.compute[dtype] = max(measured.compute.get(dtype, 0.0), c.value)
            elif key == "membw.device":
                measured.bandwidth = max(measured.bandwidth or 0.0, c.value)
        spec = run.info.spec or {}
        sheet.compute.update({k: v for k, v in (spec.get("peak_flops") or {}).items() if v})
        sheet.bandwidth = spec.get("mem_bandwidth_Bps") or sheet.bandwidth
    return measured, sheet


def roofline_plot(frame: pd.DataFrame, runs: list[LoadedRun]) -> Optional[str]:
    found = points(frame)
    devices = list(dict.fromkeys(p.device for p in found))
    if not devices:
        return None
    fig, axes = plt.subplots(1, len(devices), figsize=(6.5 * len(devices), 4.6), squeeze=False)
    markers = {"gemm": "o", "fp8": "s", "bandwidth": "^", "decode": "D"}
    for ax, device in zip(axes[0], devices):
        mine = [p for p in found if p.device == device]
        x = np.logspace(np.log10(min(p.intensity for p in mine) / 4), np.log10(max(p.intensity for p in mine) * 4), 200)
        measured, sheet = ceilings(runs, device)
        dtypes = [d for d in ("fp8", "bf16", "fp32") if d in measured.compute or d in sheet.compute]
        for ceiling, style, what in ((measured, "-", "measured"), (sheet, "--", "datasheet")):
            if ceiling.bandwidth and not any(d in ceiling.compute for d in dtypes):  # a bandwidth slope alone
                ax.plot(x, x * ceiling.bandwidth / 1e12, style, lw=1, color="gray",
                        label=f"{what} bandwidth: {significant(ceiling.bandwidth / 1e9)} GB/s")
            elif ceiling.bandwidth:
                for dtype in dtypes:
                    if dtype in ceiling.compute:
                        ax.plot(x, np.minimum(ceiling.compute[dtype], x * ceiling.bandwidth) / 1e12, style, lw=1,
                                label=f"{what} {dtype}: {significant(ceiling.compute[dtype] / 1e12)} TFLOP/s, "
                                      f"{significant(ceiling.bandwidth / 1e9)} GB/s")
            elif ceiling.compute:
                for dtype in dtypes:
                    if dtype in ceiling.compute:
                        ax.axhline(ceiling.compute[dtype] / 1e12, ls=style, lw=1, color="gray",
                                   label=f"{what} {dtype}: {significant(ceiling.compute[dtype] / 1e12)} TFLOP/s")
        for kind, marker in markers.items():
            chosen = [p for p in mine if p.kind == kind]
            if chosen:
                ax.scatter([p.intensity for p in chosen], [p.flops / 1e12 for p in chosen], marker=marker, s=14,
                           alpha=0.7, label=f"{kind} cases ({len(chosen)})")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("arithmetic intensity (FLOP per byte of device memory)")
        ax.set_ylabel("TFLOP/s")
        ax.set_title(device)
        ax.grid(True, which="both", alpha=0.25)
        ax.legend(fontsize=6.5, loc="lower right")
    fig.suptitle("Roofline: solid = ceilings this device measured (best matmul, membw.device), dashed = datasheet",
                 fontsize=9)
    fig.tight_layout()
    return to_png(fig)

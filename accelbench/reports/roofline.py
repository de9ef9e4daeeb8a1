"""A roofline per device: attainable FLOP/s = min(compute ceiling, arithmetic intensity × memory
bandwidth), drawn from the ceilings the runs *measured* (the best matmul per dtype, MAMF; the
device-memory bandwidth) as solid lines and from the datasheet as dashed ones. Every case whose
benchmark counted its roofline work (`RooflineWork` in the record: FLOPs over the bytes of device
memory they need, per call or per step) is a point at its arithmetic intensity; which cases have
one, and how their work is counted, is each benchmark's own declaration (docs/metrics.md)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np
import pandas as pd

from accelbench.reports.numbers import significant
from accelbench.reports.plots import to_png, plt
from accelbench.store import LoadedRun


@dataclass
class Point:
    device: str
    kind: str  # the benchmark's name for such cases (RooflineWork.kind)
    intensity: float  # FLOP per byte
    flops: float  # FLOP/s achieved
    case_id: str


def points(frame: pd.DataFrame) -> list[Point]:
    if frame.empty or "roofline_kind" not in frame:
        return []
    ok = frame[(frame["status"] == "ok") & frame["roofline_kind"].notna() & (frame["metric"] == frame["roofline_per"])]
    out: list[Point] = []
    for row in ok.itertuples(index=False):
        if row.roofline_bytes and row.value and row.roofline_flops:
            intensity = row.roofline_flops / row.roofline_bytes
            # `per` is the time the FLOPs take, or (GB/s) the rate at which their bytes move.
            achieved = intensity * row.value * 1e9 if row.unit == "GB/s" else row.roofline_flops / row.value
            out.append(Point(str(row.device), str(row.roofline_kind), intensity, achieved, str(row.case_id)))
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
        for key, c in run.info.ceilings.items():  # keys "<kind>.<what>": matmul.bf16, membw.device
            if c.unit == "FLOP/s":
                dtype = key.split(".", 1)[-1]
                measured.compute[dtype] = max(measured.compute.get(dtype, 0.0), c.value)
            elif c.unit == "B/s":
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
    # Two devices a row at most: a report is read at about 1400 px wide.
    cols = min(2, len(devices))
    rows = (len(devices) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(7.0 * cols, 5.6 * rows), squeeze=False)
    for ax in axes.flat[len(devices):]:
        ax.set_visible(False)
    markers = dict(zip(dict.fromkeys(p.kind for p in found), "osD^vP*X"))
    for ax, device in zip(axes.flat, devices):
        mine = [p for p in found if p.device == device]
        x = np.logspace(np.log10(min(p.intensity for p in mine) / 4), np.log10(max(p.intensity for p in mine) * 4), 200)
        measured, sheet = ceilings(runs, device)
        # A peak the spec table estimated (a CPU's cores x clock x ISA) is not a datasheet's.
        sheet_name = "estimated" if any((r.info.spec or {}).get("estimated") for r in runs
                                        if r.info.device_name == device) else "datasheet"
        # The dtypes the runs measured a matmul ceiling for (at most three, highest first), else
        # the datasheet's three highest distinct peaks.
        ranked = measured.compute or {d: v for v, d in {v: d for d, v in sheet.compute.items()}.items()}
        dtypes = sorted(ranked, key=ranked.get, reverse=True)[:3]
        for ceiling, style, what in ((measured, "-", "measured"), (sheet, "--", sheet_name)):
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
        # Under the axes, not on them: the points and ceilings stay visible.
        ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2, frameon=False)
    fig.suptitle("Roofline: solid = ceilings this device measured (best matmul, device-memory bandwidth), "
                 "dashed = datasheet (or estimated, where the legend says so)",
                 fontsize=9)
    fig.tight_layout()
    return to_png(fig)

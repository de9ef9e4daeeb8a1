"""Plots embedded in reports as base64 PNG, drawn from the plots each benchmark declares
(`accelbench.view.Plot`, recorded in run.json's `views`) and one benchmark's rows of the tidy frame:
reports never import a benchmark, and nothing here knows one."""
from __future__ import annotations

import base64
import io
import warnings
from typing import Optional

from accelbench.records import RunInfo
from accelbench.view import Plot, plots_of
from accelbench.reports.tables import emulated_rows

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402


class LabelOverlap(UserWarning):
    """Two pieces of a plot's text cover each other: a plot that cannot be read."""


def to_png(fig) -> str:
    """The figure as base64 PNG; warns (LabelOverlap) where two of its texts overlap."""
    for a, b in label_overlaps(fig):
        warnings.warn(f"plot {title_of(fig)!r}: labels {a!r} and {b!r} overlap", LabelOverlap, stacklevel=2)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def title_of(fig) -> str:
    if fig._suptitle is not None and fig._suptitle.get_text():
        return fig._suptitle.get_text()
    return next((ax.get_title() for ax in fig.axes if ax.get_title()), "")


def label_overlaps(fig, slack_px: float = 1.0) -> list[tuple[str, str]]:
    """Pairs of drawn texts (titles, axis and tick labels, annotations, legend entries) whose
    bounding boxes overlap by more than `slack_px` in both directions, as the PNG will show them."""
    from matplotlib.text import Text
    fig.draw_without_rendering()  # lays out ticks and legends as savefig will, without rasterizing
    renderer = fig.canvas.get_renderer()
    tick_labels, drawn = set(), set()
    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            for tick in axis.get_major_ticks() + axis.get_minor_ticks():
                tick_labels |= {id(tick.label1), id(tick.label2)}
            # matplotlib keeps ticks outside the view but draws only these (Axis.draw's own call)
            for tick in axis._update_ticks():
                drawn |= {id(tick.label1), id(tick.label2)}
    boxes = []
    for text in fig.findobj(Text):
        if not (text.get_visible() and text.get_text().strip()):
            continue
        if id(text) in tick_labels and id(text) not in drawn:
            continue
        box = text.get_window_extent(renderer)
        if box.width > 0 and box.height > 0:
            boxes.append((text.get_text(), box))
    found = []
    for i, (a, box_a) in enumerate(boxes):
        for b, box_b in boxes[i + 1:]:
            wide = min(box_a.x1, box_b.x1) - max(box_a.x0, box_b.x0)
            high = min(box_a.y1, box_b.y1) - max(box_a.y0, box_b.y0)
            if wide > slack_px and high > slack_px:
                found.append((a, b))
    return found


def device_name(runs: dict[str, RunInfo], run_id: str) -> str:
    """What a legend calls a run: its device, and its label too where another run has the same device."""
    info = runs[run_id]
    shared = sum(1 for other in runs.values() if other.device_name == info.device_name) > 1
    ranks = f" x{len(info.ranks)}" if info.ranks else ""
    return f"{info.device_name}{ranks} ({info.label or info.run_id})" if shared else f"{info.device_name}{ranks}"



MARK_NOTES = {"cache": "shaded: under 4x the last-level cache, i.e. cache bandwidth, not device memory; dotted: cache size",
              "memory_bandwidth": "dashed: datasheet memory bandwidth"}


def work_of(data: pd.DataFrame, columns: tuple[str, ...]) -> pd.Series:
    """Per row, the product of these parameters (M·K·N: how much work a shape is)."""
    work = pd.Series(1.0, index=data.index)
    for column in columns:
        work = work * pd.to_numeric(data[column], errors="coerce")
    return work


def selected(plot: Plot, rows: pd.DataFrame) -> pd.DataFrame:
    """The ok rows the plot draws: its `where`, its series' defaults, its largest work."""
    data = rows[rows["status"] == "ok"]
    for column, value in plot.defaults:
        data = data.assign(**{column: data[column].fillna(value) if column in data else value})
    for column, value in plot.where:
        if column not in data:
            return data.iloc[0:0]
        data = data[data[column] == value]
    if plot.largest and not plot.scatter and not data.empty and all(c in data for c in plot.largest):
        work = work_of(data, plot.largest)
        data = data[work == work.max()]
    missing = [c for c in (*plot.series, *([plot.panels] if plot.panels else [])) if c not in data]
    return data.iloc[0:0] if missing else data


def label(plot: Plot, values: tuple, run_id: str, multi_run: bool, runs: dict[str, RunInfo]) -> str:
    formats = dict(plot.formats)
    shown = [formats.get(name, "{}").format(int(v) if isinstance(v, float) and v.is_integer() else v)
             for name, v in zip(plot.series, values) if v not in plot.unnamed]
    text = " ".join(shown)
    return f"{device_name(runs, run_id)}: {text}" if multi_run else text


def draw(plot: Plot, rows: pd.DataFrame, multi_run: bool, runs: dict[str, RunInfo]) -> list[str]:
    """The plot's figures as PNGs (a scatter draws one per comparable group); none without data."""
    data = selected(plot, rows)
    if data.empty or not data["metric"].isin(plot.y).any():
        return []
    return _scatter(plot, data, multi_run, runs) if plot.scatter else [png for png in [_lines(plot, data, multi_run, runs)] if png]


def _lines(plot: Plot, data: pd.DataFrame, multi_run: bool, runs: dict[str, RunInfo]) -> Optional[str]:
    if plot.x not in data:
        return None
    data = data[data["metric"].isin(plot.y)].assign(_x=pd.to_numeric(data[plot.x], errors="coerce"))
    # A series of one x value is a point, not a line: the table has its figures. Drawn alone, such
    # series pile up in a column at that x.
    keys = ["run_id", *plot.series]
    spread = data.groupby(keys, sort=False, dropna=False)["_x"].transform("nunique")
    single = spread < 2
    data = data[~single]
    if data.empty:
        return None
    left_out = "series of a single point are in the table" if single.any() else ""
    # Axes: one per panel value (of the first metric), else one per metric, side by side.
    cells = ([(plot.y[0], v) for v in dict.fromkeys(data[plot.panels])] if plot.panels else
             [(metric, None) for metric in plot.y if (data["metric"] == metric).any()])
    cols = min(plot.columns if plot.panels else len(cells), len(cells))
    nrows = (len(cells) + cols - 1) // cols
    size = (4.2 * cols, 3.3 * nrows) if plot.panels else (5.5 * cols if cols > 1 else 7, 4)
    fig, axes = plt.subplots(nrows, cols, figsize=size, squeeze=False, sharey=bool(plot.panels))
    palette = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    colors: dict[tuple, str] = {}
    for ax, (metric, panel) in zip(axes.flat, cells):
        scale = plot.y_scales[plot.y.index(metric)] if plot.y_scales else 1.0
        mine = data[data["metric"] == metric]
        if plot.panels:
            mine = mine[mine[plot.panels] == panel]
            ax.set_title(str(panel))
        for key, series in mine.groupby(["run_id", *plot.series], sort=False):
            series = series.sort_values("_x")
            color = colors.setdefault(key, palette[len(colors) % len(palette)])
            ax.plot(series["_x"], series["value"] * scale, marker="o" if not plot.panels else ".", color=color,
                    label=label(plot, key[1:], key[0], multi_run, runs))
        _marks(plot, ax, mine, runs)
        if plot.x_log:
            ax.set_xscale("log", base=plot.x_log)
        ax.set_xlabel(plot.x_label or plot.x)
        if plot.y_labels and (not plot.panels or ax in axes[:, 0]):
            ax.set_ylabel(plot.y_labels[plot.y.index(metric)])
        ax.grid(True, which="both", alpha=0.3)
    for ax in axes.flat[len(cells):]:
        ax.set_visible(False)
    # One legend for the figure, under it: the series are the same in every panel, and a legend
    # inside an axes covers the lines.
    handles = {}
    for ax in axes.flat[:len(cells)]:
        for handle, text in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(text, handle)
    if handles:
        fig.legend(handles.values(), handles.keys(), loc="upper center", bbox_to_anchor=(0.5, 0.0), fontsize=7,
                   ncol=max(1, min(3, len(handles) // 4 + 1)), frameon=False)
    notes = "; ".join([MARK_NOTES[m] for m in plot.marks if m in MARK_NOTES] + ([left_out] if left_out else []))
    title = plot.title + (f" ({notes})" if notes else "")
    if len(cells) > 1:
        fig.tight_layout(rect=(0, 0, 1, 0.95))
        fig.suptitle(title, fontsize=9)
    else:
        axes[0][0].set_title(title, fontsize=9)
    return to_png(fig)


def _marks(plot: Plot, ax, rows: pd.DataFrame, runs: dict[str, RunInfo]) -> None:
    """Reference lines from the run files: datasheet bandwidths, the last-level cache."""
    for run_id in rows["run_id"].unique():
        spec = runs[run_id].spec or {}
        if "memory_bandwidth" in plot.marks and spec.get("mem_bandwidth_Bps"):
            ax.axhline(spec["mem_bandwidth_Bps"] / 1e9, color="k", ls="--", lw=0.8)
        if "link_bandwidth" in plot.marks and spec.get("link_bandwidth_Bps"):
            ax.axhline(spec["link_bandwidth_Bps"] / 1e9, color="k", ls="--", lw=0.8,
                       label=f"datasheet link per direction ({spec['link_bandwidth_Bps'] / 1e9:.0f} GB/s)")
        if "cache" in plot.marks and "cache_bytes" in rows:
            cache = rows[rows["run_id"] == run_id]["cache_bytes"].dropna()
            if not cache.empty:
                ax.axvline(float(cache.iloc[0]), color="gray", ls=":", lw=0.8)
                ax.axvspan(float(rows["_x"].min()) / 2, 4 * float(cache.iloc[0]), color="gold", alpha=0.12, lw=0)


def _shape_groups(plot: Plot, data: pd.DataFrame) -> list[pd.DataFrame]:
    """The comparable groups a scatter draws, one figure each: the largest work (`plot.largest`)
    every run ran, then each run's own largest where that is another; like with like only."""
    if not plot.largest or not all(c in data for c in plot.largest):
        return [data]
    data = data.assign(_work=work_of(data, plot.largest))
    per_run = [set(group["_work"]) for _, group in data.groupby("run_id", sort=False)]
    shared = set.intersection(*per_run)
    chosen = [max(shared)] if shared else []
    chosen += [w for w in dict.fromkeys(max(works) for works in per_run) if w not in chosen]
    return [data[data["_work"] == w] for w in chosen]


MARKERS = "osD^vP*X"


def _scatter(plot: Plot, data: pd.DataFrame, multi_run: bool, runs: dict[str, RunInfo]) -> list[str]:
    """Metric `x` against metric `y[0]`, one point per series value and run: a colour per series
    value, a marker per run, both named in a legend beside the axes (labels on the points would
    cover each other); emulated points hollow. One figure per comparable group (_shape_groups)."""
    data = data.assign(_emulated=emulated_rows(data))
    return [png for group in _shape_groups(plot, data) if (png := _scatter_one(plot, group, multi_run, runs))]


def _scatter_one(plot: Plot, data: pd.DataFrame, multi_run: bool, runs: dict[str, RunInfo]) -> Optional[str]:
    wide = data.pivot_table(index=["run_id", *plot.series, "_emulated"], columns="metric", values="value",
                            aggfunc="first")
    if plot.x not in wide or plot.y[0] not in wide:
        return None
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    palette = plt.get_cmap("tab20").colors
    colours: dict[str, tuple] = {}
    markers: dict[str, str] = {}
    software_seen = False
    for key, row in wide.iterrows():
        run_id, values, software = key[0], key[1:-1], key[-1]
        x, y = row.get(plot.x), row.get(plot.y[0])
        if not x or not x > 0 or pd.isna(y):
            continue
        shown = [str(v) for v in values if v not in plot.unnamed]
        name = shown[0] + (f" ({', '.join(shown[1:])})" if len(shown) > 1 else "") if shown else plot.title
        colour = colours.setdefault(name, palette[(2 * len(colours)) % 20 + (len(colours) >= 10)])
        marker = markers.setdefault(device_name(runs, run_id), MARKERS[len(markers) % len(MARKERS)])
        software_seen |= bool(software)
        ax.scatter([x], [y], marker=marker, s=36, linewidths=1.2, facecolors="none" if software else [colour],
                   edgecolors=[colour])
    if not colours:
        plt.close(fig)
        return None
    from matplotlib.lines import Line2D
    handles = [Line2D([], [], ls="", marker="o", color=c, label=n) for n, c in colours.items()]
    if multi_run or len(markers) > 1:
        handles += [Line2D([], [], ls="", marker=m, color="k", mfc="none", label=d) for d, m in markers.items()]
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=7, frameon=False,
              title=" / ".join(plot.series[:1]) + (" · device" if len(handles) > len(colours) else ""),
              title_fontsize=7)
    if plot.x_log:
        ax.set_xscale("log", base=plot.x_log)
        _decade_ticks(ax.xaxis)
    ax.set_xlabel(plot.x_label or plot.x)
    ax.set_ylabel(plot.y_labels[0] if plot.y_labels else plot.y[0])
    shape = " ".join(f"{c.upper()}={int(pd.to_numeric(data[c]).iloc[0])}" for c in plot.largest if c in data)
    ax.set_title(plot.title + (f", {shape}" if shape else "") +
                 ("\n(hollow: emulated in software, not a native figure)" if software_seen else ""), fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    return to_png(fig)


def _decade_ticks(axis) -> None:
    """Label a base-10 log axis at 1, 2 and 5 times each power of ten, as plain numbers
    (0.002, 0.005, 0.01): matplotlib's own minor labels collide, and one label a decade is too few."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter
    axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    axis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    axis.set_minor_formatter(NullFormatter())


def plots_for(benchmark: str, rows: pd.DataFrame, multi_run: bool, runs: dict[str, RunInfo],
              views: dict[str, dict]) -> list[str]:
    """The benchmark's declared plots (`views`: a run's, LoadedRun.views), drawn."""
    return [png for plot in plots_of(views, benchmark) for png in draw(plot, rows, multi_run, runs)]

"""`bench report`, `bench compare`, `bench history`, `bench export`: everything made from run
folders alone. Nothing here imports torch, and the readers and renderers (pandas, matplotlib, DuckDB,
SciPy) are imported inside each command, so `--help` and argument errors answer at once."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import click

from accelbench.cli.app import main
from accelbench.stats import COMPARE_THRESHOLD


@main.command()
@click.argument("runs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="File to write (default: report.html, report.md or overview.csv by --format, in the folder that holds the first run).")
@click.option("--format", "fmt", type=click.Choice(["html", "md", "csv"]), default="html", show_default=True,
              help="html: the self-contained report; md: overview, procurement and compact tables as Markdown; "
                   "csv: the overview table.")
@click.option("--title", default="accelbench report", show_default=True)
@click.option("--baseline", default=None, metavar="RUN",
              help="The device the ratios are to: a run's id, label, folder or device name (default: the first run's).")
@click.option("--price", "prices", multiple=True, metavar="DEVICE=USD_PER_HOUR",
              help="Rental price of one device per hour (repeat per device; DEVICE: its name or a unique part of it, e.g. H100).")
@click.option("--capex", "capex", multiple=True, metavar="DEVICE=USD",
              help="Purchase price of one device, spread over --years of round-the-clock use.")
@click.option("--years", type=click.FloatRange(min=0.1), default=3.0, show_default=True,
              help="Depreciation period for --capex.")
@click.option("--energy-price", type=click.FloatRange(min=0), default=None, metavar="USD_PER_KWH",
              help="Electricity price, applied to the power measured during each case (default: energy not priced, "
                   "and the procurement view says so).")
@click.option("--pue", type=click.FloatRange(min=1.0), default=1.0, show_default=True,
              help="Power usage effectiveness of the facility (1.0 = the device's own power only).")
def report(runs: tuple[Path, ...], output: Optional[Path], fmt: str, title: str, baseline: Optional[str],
           prices: tuple[str, ...], capex: tuple[str, ...], years: float, energy_price: Optional[float], pue: float) -> None:
    """Render run folders into one report: an overview with a column per device and ratios to a
    baseline, a roofline, a section per benchmark, and a procurement view when prices are given
    (--price or --capex, with --energy-price and --pue)."""
    from accelbench.cli.console import console
    from accelbench.reports.formats import render
    from accelbench.reports.html import Report
    from accelbench.reports.procurement import Prices, parse_prices
    from accelbench.store import load_runs
    loaded = load_runs(runs)
    for run_ in loaded:
        for w in run_.warnings:
            console.print(f"warning: {w}", markup=False)
    devices = list(dict.fromkeys(r.info.device_name for r in loaded))
    try:
        pricing = Prices(parse_prices(prices, "--price", devices), parse_prices(capex, "--capex", devices), years,
                         energy_price, pue)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    try:
        built = Report.build(loaded, title, baseline, pricing)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    output = output or results_folder(runs) / {"html": "report.html", "md": "report.md", "csv": "overview.csv"}[fmt]
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(render(built, fmt), encoding="utf-8")
    click.echo(f"wrote {output}")


def results_folder(runs: tuple[Path, ...]) -> Path:
    """Where a report goes unless -o says: the folder the first run folder sits in (results/),
    not the current folder."""
    first = runs[0]
    return first.parent if (first / "run.json").is_file() else first


def parse_fraction(ctx, param, value: str) -> float:
    """"5%" or "0.05"."""
    text = value.strip()
    try:
        number = float(text.rstrip("%")) / (100 if text.endswith("%") else 1)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a fraction (e.g. 5% or 0.05)") from None
    if not 0 <= number < 1:
        raise click.BadParameter(f"{value!r} must be between 0 and 100%")
    return number


@main.command()
@click.argument("runs", nargs=-1, required=True, type=click.Path(file_okay=False, exists=True, path_type=Path))
@click.option("--baseline-dir", type=click.Path(file_okay=False, exists=True, path_type=Path), default=None,
              help="Compare RUN (the candidate, alone) with the newest complete run of its device under DIR, "
                   "one with the same fingerprint where there is one.")
@click.option("--threshold", default=f"{COMPARE_THRESHOLD:.0%}", show_default=True, callback=parse_fraction,
              help="A smaller change of a case's median is 'unchanged', significant or not.")
@click.option("--alpha", type=click.FloatRange(min=0, max=1, min_open=True, max_open=True), default=0.05,
              show_default=True, help="Significance level of the Mann-Whitney U test.")
@click.option("--format", "fmt", type=click.Choice(["text", "md", "html", "json"]), default="text",
              show_default=True)
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write there instead of to standard output.")
@click.option("--all", "everything", is_flag=True, help="List unchanged cases too (text and md).")
@click.option("--strict", is_flag=True,
              help="Refuse (exit 2) when the runs differ in device, driver, power limit, clocks or library versions.")
def compare(runs: tuple[Path, ...], baseline_dir: Optional[Path], threshold: float, alpha: float, fmt: str,
            output: Optional[Path], everything: bool, strict: bool) -> None:
    """Compare BASELINE CANDIDATE (two run folders) case by case: ratio of medians with a 95 %
    bootstrap interval, Mann-Whitney U significance, and a verdict per case (regressed, improved,
    unchanged, noisy, new, missing, failed-now).

    Exit 1 when a case regressed significantly beyond the threshold or fails now, 0 otherwise,
    2 on bad input or (with --strict) runs that are not comparable."""
    from accelbench.cli.console import console
    from accelbench.reports.compare import compare_runs, newest_comparable
    from accelbench.reports.compare_format import render
    from accelbench.store import load_run
    if baseline_dir is not None:
        if len(runs) != 1:
            raise click.UsageError("with --baseline-dir give one run: the candidate")
        candidate = load_run(runs[0])
        try:
            baseline, _ = newest_comparable(baseline_dir, candidate)
        except ValueError as exc:
            raise click.UsageError(str(exc)) from None
    elif len(runs) != 2:
        raise click.UsageError("give two runs, BASELINE CANDIDATE (or one, with --baseline-dir)")
    else:
        baseline, candidate = load_run(runs[0]), load_run(runs[1])
    result = compare_runs(baseline, candidate, threshold, alpha)
    if strict and result.differences:
        raise click.UsageError("the runs are not comparable (--strict): they differ in "
                               + "; ".join(result.differences))
    for d in result.differences:
        console.print(f"warning: the runs differ in {d}", markup=False)
    rendered = render(result, fmt, everything)
    if output:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(rendered, encoding="utf-8")
        click.echo(f"wrote {output}; {result.summary()}")
    else:
        click.echo(rendered, nl=False)
    sys.exit(result.exit_code)


@main.command()
@click.argument("dirs", nargs=-1, required=True, type=click.Path(file_okay=False, exists=True, path_type=Path))
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="File to write (default: history.html, .csv or .md by --format, in the first DIR).")
@click.option("--format", "fmt", type=click.Choice(["html", "csv", "md"]), default="html", show_default=True,
              help="html: a page of trends; csv / md: one row per case and device.")
@click.option("--since", default=None, metavar="DATE", help="Only runs started on or after DATE (2026-11-01).")
@click.option("--device", default=None, metavar="TEXT", help="Only devices whose name contains TEXT.")
@click.option("--case", "case_filter", default=None, metavar="TEXT", help="Only cases whose id contains TEXT.")
@click.option("--threshold", default=f"{COMPARE_THRESHOLD:.0%}", show_default=True, callback=parse_fraction,
              help="As bench compare's: smaller steps between runs are no change point.")
def history(dirs: tuple[Path, ...], output: Optional[Path], fmt: str, since: Optional[str], device: Optional[str],
            case_filter: Optional[str], threshold: float) -> None:
    """Trends over every run under DIRS (read by DuckDB from the run folders themselves): per case
    and device the median with its p10-p90 band, throttled runs marked, and change points where
    `bench compare` would flag the step from the previous run."""
    from datetime import date
    from accelbench.reports.formats import markdown_table
    from accelbench.reports.history import load_points, page, table, trends
    if since is not None:
        try:
            date.fromisoformat(since[:10])
        except ValueError:
            raise click.BadParameter(f"{since!r} is not a date (YYYY-MM-DD)", param_hint="--since") from None
    found = trends(load_points(list(dirs), since, device, case_filter), threshold)
    output = output or dirs[0] / f"history.{fmt}"
    output.parent.mkdir(parents=True, exist_ok=True)
    rows = table(found)
    if fmt == "html":
        output.write_text(page(found, list(dirs), threshold, {"since": since, "device": device, "case": case_filter}),
                          encoding="utf-8")
    elif fmt == "csv":
        rows.to_csv(output, index=False)
    else:
        output.write_text(markdown_table(list(rows.columns), rows.astype(str).values.tolist()) + "\n"
                          if len(rows) else "no case with a figure matches\n", encoding="utf-8")
    runs = len({r for t in found for r in t.points["run_id"]})
    flagged = int(rows["regressions"].sum()) if len(rows) else 0
    click.echo(f"wrote {output}: {len(found)} trends over {runs} runs, {flagged} regression"
               f"{'' if flagged == 1 else 's'} flagged")


@main.command()
@click.argument("runs", nargs=-1, required=True, type=click.Path(file_okay=False, exists=True, path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["parquet", "pytest-benchmark"]), required=True,
              help="parquet: the tidy case x metric table of every run given; pytest-benchmark: the JSON "
                   "`pytest --benchmark-json` writes (one run).")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True)
def export(runs: tuple[Path, ...], fmt: str, output: Path) -> None:
    """Write runs in another tool's format: Parquet for a warehouse, or pytest-benchmark's JSON,
    which `pytest-benchmark compare` and its dashboards read."""
    import json
    from accelbench.reports.export import pytest_benchmark_json, write_parquet
    from accelbench.store import load_runs
    loaded = load_runs(runs)
    output.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "parquet":
        click.echo(f"wrote {output}: {write_parquet(loaded, output)} rows")
        return
    if len(loaded) != 1:
        raise click.UsageError("--format pytest-benchmark takes one run (pytest-benchmark keeps one file per run)")
    data = pytest_benchmark_json(loaded[0])
    output.write_text(json.dumps(data, indent=2), encoding="utf-8")
    click.echo(f"wrote {output}: {len(data['benchmarks'])} benchmarks (cases with samples)")

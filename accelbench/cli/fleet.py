"""`bench fleet`: every device of this node at once, judged beside its peers, a baseline and its health
(docs/fleet.md). The work is fleet/runner.py's, the verdicts fleet/verdicts.py's, the page
fleet/report.py's; this module parses options and writes the fleet folder (fleet.json, fleet.csv,
fleet.html) and the table."""
from __future__ import annotations

import csv
import json
import statistics
import sys
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Optional

import click

from accelbench.cli.app import main
from accelbench.cli.console import console
from accelbench.errors import UsageError


def _devices(text: Optional[str], count: int) -> list[int]:
    if text is None or text == "all":
        return list(range(count))
    try:
        if "," in text or not text.isdigit():
            chosen = [int(t) for t in text.split(",") if t.strip()]
        else:
            chosen = list(range(int(text)))
    except ValueError:
        raise UsageError(f"--devices {text!r}: give a count (4), a list (0,2,5) or all") from None
    if not chosen or len(set(chosen)) != len(chosen) or min(chosen) < 0:
        raise UsageError(f"--devices {text!r}: give a count (4), a list (0,2,5) or all")
    return chosen


@main.command("fleet")
@click.option("--backend", default="auto", show_default=True, metavar="NAME", help="auto, cpu, cuda or hpu.")
@click.option("--devices", "devices_text", default=None, metavar="N|LIST|all",
              help="How many devices (the first N), which (0,2,5), or all (default). On a CPU, N processes "
                   "share it (a test of the machinery, not of the CPU).")
@click.option("--quick", is_flag=True, help="Shorter sampling (about 30 s a device on a GPU).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=Path("results"),
              show_default=True, help="Folder that receives the fleet folder.")
@click.option("--baseline", "baseline_file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Judge against this known-good node's figures too (a file --save-baseline wrote).")
@click.option("--save-baseline", "save_file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write this run's medians as a baseline file (run it on a known-good node).")
@click.option("--timeout", "timeout_s", type=click.FloatRange(min=1), default=None, metavar="SECONDS",
              help="A device with no result by then is failed as hung (default 600, --quick 180).")
@click.option("--bench", "bench_names", default=None, metavar="NAME[,NAME]",
              help="Another selection of benchmarks (with --case), instead of the acceptance selection.")
@click.option("--case", "case_filters", multiple=True, metavar="TEXT", help="With --bench: the cases to run.")
@click.option("--judge", "judge_dirs", multiple=True, type=click.Path(file_okay=False, path_type=Path), metavar="DIR",
              help="Run nothing: judge together the devices of these fleet folders (one per node: a cluster's "
                   "cards beside each other). Repeat it.")
def fleet_cmd(backend: str, devices_text: Optional[str], quick: bool, out_dir: Path, baseline_file: Optional[Path],
              save_file: Optional[Path], timeout_s: Optional[float], bench_names: Optional[str],
              case_filters: tuple[str, ...], judge_dirs: tuple[Path, ...]) -> None:
    """Run the acceptance selection on every device of this node at once and judge each: pass, warn
    or fail, beside its peers (robust z-score and deficit), a baseline, and its health facts.

    Exit codes: 0 no device fails, 1 a device fails (its process died, hung, failed a check, is slow
    or unhealthy), 2 bad usage."""
    from accelbench.fleet.verdicts import Baseline, exit_code, judge

    baseline = Baseline.load(baseline_file) if baseline_file else None
    checks = None
    if judge_dirs:
        results = [r for d in judge_dirs for r in _read_fleet(d)]
        folder = out_dir / f"{datetime.now(timezone.utc).strftime('%Y%m%dT%H%M%SZ')}-fleet-judged"
    else:
        folder, results, checks = _run(backend, devices_text, quick, out_dir, timeout_s, bench_names, case_filters)
    verdicts = judge(results, baseline)
    if save_file:
        Baseline.from_results(results, f"{folder.name}").save(save_file)
        console.print(f"baseline of {sum(r.failed is None for r in results)} device(s) written to {save_file}",
                      highlight=False)
    _write(folder, results, verdicts, baseline_file, checks)
    from accelbench.fleet.report import write_page
    write_page(folder, results, verdicts, baseline)
    _print(results, verdicts)
    for line in (checks.notes if checks else []):
        console.print(f"node: {line}", highlight=False)
    for line in (checks.failures if checks else []):
        console.print(f"[bold red]node check failed[/]: {line}", highlight=False)
    console.print(f"{sum(v.status == 'pass' for v in verdicts)} pass, {sum(v.status == 'warn' for v in verdicts)} warn, "
                  f"{sum(v.status == 'fail' for v in verdicts)} fail -> {folder}", highlight=False)
    sys.exit(max(exit_code(verdicts), 1 if checks and checks.failures else 0))


def _read_fleet(folder: Path) -> list:
    from accelbench.fleet.verdicts import DeviceResult
    path = folder / "fleet.json"
    try:
        return [DeviceResult.from_json(d) for d in json.loads(path.read_text(encoding="utf-8"))["devices"]]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise UsageError(f"--judge {folder}: no readable fleet.json ({type(exc).__name__}: {exc})") from None


def _run(backend: str, devices_text: Optional[str], quick: bool, out_dir: Path, timeout_s: Optional[float],
         bench_names: Optional[str], case_filters: tuple[str, ...]):
    from accelbench.backends import best_available, resolve_backend
    from accelbench.fleet.runner import NodeChecks, Selection, node_name, run_devices, run_node_checks, selection_for

    name = backend if backend != "auto" else best_available()
    count = resolve_backend(name).device_count()
    devices = _devices(devices_text, count)
    if name != "cpu" and max(devices) >= count:
        raise UsageError(f"--devices {devices_text}: this node has {count} {name} device(s)")
    if (bench_names is None) != (not case_filters):
        raise UsageError("--bench and --case go together: a selection is benchmarks and their cases")
    selection = (Selection(tuple(b.strip() for b in bench_names.split(",") if b.strip()), tuple(case_filters))
                 if bench_names else selection_for(name))
    node = node_name()
    folder = out_dir / f"{datetime.now(timezone.utc).strftime('%Y%m%dT%H%M%SZ')}-fleet-{name}-{node}"
    timeout = timeout_s or (180.0 if quick else 600.0)
    say = lambda text: console.print(text, highlight=False)  # noqa: E731
    results = run_devices(name, devices, folder, selection, quick, timeout, node, say=say)
    if bench_names:  # another selection instead of the acceptance selection: the node's checks are part of the latter
        checks = NodeChecks({}, [], ["--bench selection: the node's all-reduce and peer-to-peer copies were not run"])
    else:
        checks = run_node_checks(name, devices, folder, quick, timeout, say=say)
    for device, result in zip(devices, results):
        result.figures.update(checks.figures.get(device, {}))
    return folder, results, checks


def _write(folder: Path, results, verdicts, baseline_file: Optional[Path], checks=None) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    by_device = {v.device: v for v in verdicts}
    data = {"baseline": str(baseline_file) if baseline_file else None,
            "devices": [asdict(r) | {"verdict": asdict(by_device[r.device])} for r in results],
            "node_checks": asdict(checks) if checks else None}
    (folder / "fleet.json").write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
    names = sorted({n for r in results for n in r.figures})
    with open(folder / "fleet.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["device", "node", "verdict", *names, "reasons"])
        for r in results:
            v = by_device[r.device]
            writer.writerow([r.device, r.node, v.status, *[r.figures.get(n, "") for n in names], " | ".join(v.reasons)])


def _print(results, verdicts) -> None:
    from rich.table import Table
    names = sorted({n for r in results for n in r.figures})
    table = Table(title="fleet: each device beside its peers (figure, then % of the devices' median)")
    for column in ("device", "verdict", *names, "why"):
        table.add_column(column, overflow="fold")
    medians = {n: statistics.median(r.figures[n] for r in results if n in r.figures) for n in names}
    style = {"pass": "green", "warn": "yellow", "fail": "bold red"}
    for r, v in zip(results, verdicts):
        cells = [f"{r.figures[n]:.4g} ({100 * r.figures[n] / medians[n]:.1f} %)" if n in r.figures else "—"
                 for n in names]
        table.add_row(r.device, f"[{style[v.status]}]{v.status}[/]", *cells, "; ".join(v.reasons) or "")
    console.print(table)

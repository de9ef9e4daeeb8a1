"""`bench list`, `bench env`, `bench doctor`: what the suite has, what this machine has, and a
self-check before a first run."""
from __future__ import annotations

import sys
from typing import Optional

import click

from accelbench.backends import backend_classes, backend_names, best_available, resolve_backend
from accelbench.benchmark import SUITES, benchmark_classes
from accelbench.cli.app import main
from accelbench.reports.numbers import significant
from accelbench.timing import SUITE_POLICIES, suite_duration_s


@main.command("list")
@click.option("--suite", type=click.Choice(SUITES), default=None, help="Show the cases of this suite.")
def list_cmd(suite: Optional[str]) -> None:
    """List benchmarks and how many cases each suite has (or a suite's cases)."""
    totals = dict.fromkeys(SUITES, 0)
    for name, cls in sorted(benchmark_classes().items()):
        bench = cls()
        counts = ", ".join(f"{s}: {len(bench.cases(s))}" for s in SUITES)
        if not cls.distributed:  # a run of one process runs these; the others need --nproc
            for s in SUITES:
                totals[s] += len(bench.cases(s))
        ranks = " (across 2 or more ranks: bench run --bench NAME --nproc N)" if cls.distributed else ""
        click.echo(f"{name}: {cls.description}{ranks}\n  cases — {counts}")
        for s, note in cls.suite_notes.items():
            click.echo(f"  {s} leaves out: {note}")
        if suite:
            for case in bench.cases(suite):
                click.echo(f"    {case.case_id}")
    click.echo("expected duration of a whole suite in one process (timing only, from its timing policy; slow "
               "references, skipped cases and a slow device move it):")
    for s, n in totals.items():
        low, high = suite_duration_s(s, n)
        budget = SUITE_POLICIES[s].call_budget_s
        click.echo(f"  {s}: {n} cases, {low / 60:.1f} to {high / 60:.0f} min; a case one call of which "
                   f"takes over {budget:g} s is skipped")


@main.command()
@click.option("--backend", default=None, metavar="NAME", help="Describe only this backend.")
def env(backend: Optional[str]) -> None:
    """Backends found on this machine, the device, its peaks, telemetry and versions."""
    classes = backend_classes()
    names = [backend] if backend else sorted(classes, key=lambda n: -classes[n].auto_priority)
    for name in names:
        if name not in classes:
            raise click.UsageError(f"unknown backend '{name}'")
        reason = classes[name].unavailable_reason()
        if reason:
            click.echo(f"{name}: unavailable — {reason}")
            continue
        dev = resolve_backend(name)
        spec = dev.spec()
        click.echo(f"{name}: available — {dev.device_name()} (x{dev.device_count()})")
        click.echo(f"  timer: {dev.timer_description}; collectives: {dev.collectives_backend}; "
                   f"features: {', '.join(sorted(dev.features())) or 'none'}")
        for dtype, why in dev.emulated_matmul_dtypes().items():
            click.echo(f"  emulated: {why}")
        cache = dev.cache_bytes()
        click.echo(f"  last-level cache: {cache / 2**20:.0f} MiB" if cache else "  last-level cache: unknown")
        if spec:
            peaks = ", ".join(f"{d} {significant(v / 1e12)} TFLOP/s" for d, v in spec.peak_flops.items())
            bw = f"{significant(spec.mem_bandwidth_Bps / 1e12)} TB/s" if spec.mem_bandwidth_Bps else "unknown"
            click.echo(f"  peaks ({'estimated' if spec.estimated else 'datasheet'}: {spec.source}): "
                       f"{peaks or 'none'}; memory bandwidth {bw}")
        else:
            click.echo("  peaks: device not in the spec table (MFU will show as unknown)")
        for what, state in dev.telemetry().availability().items():
            click.echo(f"  telemetry {what}: {state}")
        for k, v in dev.versions().items():
            click.echo(f"  {k}: {v}")


@main.command()
@click.option("--backend", default="auto", show_default=True, metavar="NAME",
              help=f"auto, or one of: {', '.join(backend_names())}.")
@click.option("--device", "device_index", type=click.IntRange(min=0), default=0, show_default=True)
def doctor(backend: str, device_index: int) -> None:
    """Self-check a backend before the first run: software, device, a GEMM against the CPU,
    event timing, graph replay, energy telemetry, collectives, FP8.

    Exit 0 when every check passed, 1 when one failed, 2 when the backend is missing."""
    from accelbench.doctor import run_doctor
    classes = backend_classes()
    if backend == "auto":
        backend = best_available()
    if backend not in classes:
        raise click.UsageError(f"unknown backend '{backend}'; choose from: {', '.join(sorted(classes))}")
    results = run_doctor(backend, device_index)
    marks = {True: "ok  ", False: "FAIL", None: "--  "}
    click.echo(f"bench doctor --backend {backend}")
    for r in results:
        click.echo(f"  [{'warn' if r.warning else marks[r.ok]}] {r.name}: {r.detail}")
    if results[0].ok is False:
        click.echo(f"backend '{backend}' is unavailable; fix the first line, then run `bench doctor --backend {backend}` again")
        sys.exit(2)
    if any(r.ok is False for r in results):
        click.echo("some checks failed: figures from this backend would be suspect until they pass")
        sys.exit(1)
    click.echo(f"all checks passed; next: bench run --backend {backend} --suite quick")

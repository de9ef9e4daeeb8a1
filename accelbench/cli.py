"""`bench`: run benchmarks, list them, show the environment, render reports.

Exit codes: 0 all cases passed; 1 some case failed (or the run was interrupted); 2 bad usage,
a missing backend or an unreadable results file.
"""
from __future__ import annotations

import dataclasses
import os
import re
import signal
import socket
import subprocess
import sys
from contextlib import nullcontext
from pathlib import Path
from typing import Optional

import click
from rich.console import Console
from rich.table import Table

from accelbench import SCHEMA_VERSION, __version__
from accelbench.backends import backend_classes, backend_names, best_available, resolve_backend
from accelbench.benchmark import SUITES, benchmark_classes, for_ranks, select_benchmarks
from accelbench.distributed import (RUN_ID_ENV, SOLO, ProcessGroup, launch_local, node_differences,
                                    placement_from_env, self_command, without_option)
from accelbench.energy import measure_idle_power
from accelbench.errors import AccelbenchError, BackendUnavailable
from accelbench.harness import RunOptions, Runner, SilentProgress
from accelbench.progress import HEADLINE_METRICS, CaseProgress, headline
from accelbench.records import RunInfo
from accelbench.store import DiscardingWriter, LoadedRun, RunWriter, load_runs, note_rank_failures, new_run_id, utc_now
from accelbench.stats import COMPARE_THRESHOLD
from accelbench.timing import REGIME_MARK, REGIMES, SUITE_POLICIES, policy_for, suite_duration_s

console = Console(stderr=True)


class Cli(click.Group):
    """Turns accelbench's own errors and click's usage errors into one line on stderr
    (`bench: error: ...`) and exit code 2."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        try:
            code = super().main(args=args, prog_name=prog_name, complete_var=complete_var,
                                standalone_mode=False, **extra)
        except (AccelbenchError, click.UsageError) as exc:
            message = exc.format_message() if isinstance(exc, click.ClickException) else str(exc)
            click.echo(f"bench: error: {' '.join(message.split())}", err=True)
            sys.exit(2)
        except click.ClickException as exc:  # e.g. a file that cannot be opened
            click.echo(f"bench: error: {' '.join(exc.format_message().split())}", err=True)
            sys.exit(exc.exit_code)
        except click.Abort:
            click.echo("bench: aborted", err=True)
            sys.exit(1)
        sys.exit(code if isinstance(code, int) else 0)


@click.group(cls=Cli, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="accelbench")
def main() -> None:
    """accelbench: accelerator benchmarks with checked results, energy and HTML reports.

    Start with `bench env` to see which backends this machine has, `bench list` for the
    benchmarks and their cases, then `bench run`.
    """


def _git_commit() -> Optional[str]:
    try:
        # "-dirty" where the tree differs from the commit: a run of uncommitted code says so.
        return subprocess.run(["git", "describe", "--always", "--dirty", "--abbrev=7"], capture_output=True,
                              text=True, timeout=5, cwd=Path(__file__).parent).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def _split(values: tuple[str, ...]) -> list[str]:
    return [v.strip() for item in values for v in item.split(",") if v.strip()]


def _regimes(names: tuple[str, ...]) -> tuple:
    """--regime's values (repeatable, comma-separated), in the order given, sustained by default."""
    chosen = list(dict.fromkeys(_split(names))) or ["sustained"]
    unknown = [n for n in chosen if n not in REGIMES]
    if unknown:
        raise click.BadParameter(f"{', '.join(map(repr, unknown))}: choose from {', '.join(REGIMES)}",
                                 param_hint="--regime")
    return tuple(REGIMES[n] for n in chosen)


def parse_bytes(ctx, param, value: Optional[str]) -> Optional[int]:
    """"64K", "1M", "1G" (binary units) or a plain byte count."""
    if value is None:
        return None
    match = re.fullmatch(r"\s*(\d+)\s*([KMGT]?)(i?B)?\s*", value, flags=re.IGNORECASE)
    if not match:
        raise click.BadParameter(f"{value!r} is not a size (e.g. 1024, 64K, 1M, 1G)")
    return int(match.group(1)) * 1024 ** "KMGT".find(match.group(2).upper()) if match.group(2) else int(match.group(1))


@main.command()
@click.option("--backend", default="auto", show_default=True, metavar="NAME",
              help=f"auto, or one of: {', '.join(backend_names())}.")
@click.option("--suite", type=click.Choice(SUITES), default="quick", show_default=True,
              help="How many cases, and how long each is timed.")
@click.option("--bench", "bench_names", multiple=True, metavar="NAME[,NAME]",
              help="Benchmarks to run (default: all that fit the number of ranks). See `bench list`.")
@click.option("--case", "case_filters", multiple=True, metavar="TEXT",
              help="Only cases whose id contains TEXT (repeat it for any of several).")
@click.option("--min-bytes", default=None, callback=parse_bytes, metavar="SIZE",
              help="Only cases of at least SIZE bytes (64K, 1M, 1G), for benchmarks sized in bytes "
                   "(collectives, transfer).")
@click.option("--max-bytes", default=None, callback=parse_bytes, metavar="SIZE",
              help="Only cases of at most SIZE bytes.")
@click.option("--device", "device_index", type=click.IntRange(min=0), default=0, show_default=True,
              help="Device index on the backend (a multi-rank run uses each rank's local rank).")
@click.option("--nproc", type=click.IntRange(min=1), default=1, show_default=True,
              help="Start this many ranks on this machine (torchrun's elastic launch) and run the distributed "
                   "benchmarks (collectives) across them. Under torchrun or srun leave it out: each process "
                   "joins that job.")
@click.option("--timeout", "timeout_s", type=click.FloatRange(min=1), default=120, show_default=True,
              metavar="SECONDS",
              help="Multi-rank runs: after this long without progress (a stuck collective, a rank gone) the "
                   "case fails and the run ends with exit code 1.")
@click.option("--weights", "weights_dir", default=None, metavar="DIR",
              type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="decode: a local Hugging Face checkpoint (config.json and *.safetensors; no pickle, no network) "
                   "instead of synthetic weights.")
@click.option("--text", "text_file", default=None, metavar="FILE",
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="decode with --weights: also report the perplexity of this local text (its first 1024 tokens, "
                   "by the checkpoint's tokenizer.json), FP8 beside unquantized.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=Path("results"),
              show_default=True, help="Folder that receives the run folder.")
@click.option("--label", default=None, help="A name for this run, shown in reports.")
@click.option("--energy/--no-energy", default=True, show_default=True,
              help="Measure energy over a separate window per case (where the device has a counter).")
@click.option("--energy-window", type=click.FloatRange(min=0.1), default=1.0, show_default=True,
              help="Seconds of repeated work per energy window.")
@click.option("--graphs", type=click.Choice(["auto", "on", "off"]), default="auto", show_default=True,
              help="Replay captured graphs (auto: where kernels average under 50 µs, if the backend has graphs).")
@click.option("--regime", "regime_names", multiple=True, metavar="NAME[,NAME]",
              help="sustained (default): samples back to back after the warm-up (a long job's steady state, "
                   "power-capped where the device caps); burst: 1 s idle, 10 ms warm-up, then 50 ms of samples, "
                   "before a power cap engages. Name both (sustained,burst) to measure every case in each and see "
                   "them side by side; burst records carry '@burst' after the case id.")
@click.option("--flush", "flush_mode", type=click.Choice(["auto", "always"]), default="auto", show_default=True,
              help="auto: flush the last-level cache before each call where the working set fits in it; always: "
                   "before every call whatever the size (as triton.testing.do_bench does).")
@click.option("--repeat", "repeats", type=click.IntRange(min=1), default=1, show_default=True, metavar="N",
              help="Run the selected cases N times, interleaved (A, B, ..., then again), and report the spread "
                   "between the repeats' medians beside each case's own.")
@click.option("--min-time", type=click.FloatRange(min=0), default=None,
              help="Minimum seconds of timed work per case (default: by suite).")
@click.option("--max-time", type=click.FloatRange(min=0), default=None,
              help="Maximum wall seconds of sampling per case (default: by suite).")
@click.option("--min-samples", type=click.IntRange(min=1), default=None,
              help="Minimum samples per case (default: by suite).")
@click.option("--call-budget", type=click.FloatRange(min=0), default=None, metavar="SECONDS",
              help="Skip a case whose single call takes longer than this (default: quick 0.25, "
                   "standard 10, full 60; 0: no budget).")
@click.option("--report/--no-report", default=True, show_default=True,
              help="Write report.html into the run folder at the end.")
def run(backend: str, suite: str, bench_names: tuple[str, ...], case_filters: tuple[str, ...],
        min_bytes: Optional[int], max_bytes: Optional[int], device_index: int, nproc: int, timeout_s: float,
        weights_dir: Optional[Path], text_file: Optional[Path], out_dir: Path, label: Optional[str], energy: bool, energy_window: float, graphs: str,
        regime_names: tuple[str, ...], flush_mode: str, repeats: int, min_time: Optional[float], max_time: Optional[float], min_samples: Optional[int],
        call_budget: Optional[float], report: bool) -> None:
    """Run benchmarks and write results/<run_id>/ (run.json, cases.jsonl, report.html).

    The quick suite leaves out cases whose matrix products the device runs in software (bf16 on
    a CPU without avx512_bf16/AMX) and any case one call of which takes over 0.25 s; both are
    listed as skipped with the reason. Distributed benchmarks (collectives) run across ranks:
    `--nproc N` starts N on this machine; see the README for torchrun and srun across nodes.

    Exit codes: 0 every case passed (or was skipped), 1 some case failed, a rank failed or the
    run was interrupted, 2 bad usage, a missing backend or an unreadable results file."""
    regimes = _regimes(regime_names)
    placement = placement_from_env()
    if nproc > 1 and placement.distributed:
        raise click.UsageError(f"this process is already rank {placement.rank} of {placement.world_size} "
                               f"(started by {placement.launcher}): leave out --nproc")
    ranks = max(nproc, placement.world_size)
    benchmarks = for_ranks(select_benchmarks(_split(bench_names)), ranks, named=bool(bench_names))
    if weights_dir is not None:
        takers = [b for b in benchmarks if hasattr(b, "use_weights")]
        if not takers:
            raise click.UsageError("--weights applies to the decode benchmarks only (--bench decode)")
        for bench in takers:
            bench.use_weights(weights_dir)
    if text_file is not None:
        if weights_dir is None:
            raise click.UsageError("--text needs --weights: the text is tokenized by the checkpoint's tokenizer")
        for bench in benchmarks:
            if hasattr(bench, "use_text"):
                bench.use_text(text_file)
    plan = [(b, c) for b in benchmarks for c in b.cases(suite)
            if (not case_filters or any(f in c.case_id for f in case_filters))
            and _within(c.params.get("bytes"), min_bytes, max_bytes)]
    if not plan:
        raise click.UsageError(f"no cases match (suite {suite}, filter {' or '.join(map(repr, case_filters)) or 'none'}, "
                               f"{ranks} rank(s))")
    if nproc > 1:
        _launch_ranks(nproc, backend, label, out_dir, report)
    group = SOLO
    if placement.distributed and device_index:
        raise click.UsageError("--device does not apply to a multi-rank run: each rank uses its local rank's device")
    dev = resolve_backend(backend, device_index, placement.local_rank if placement.distributed else None)
    if placement.distributed:
        why_not = dev.collectives_unavailable()
        if why_not:
            raise BackendUnavailable(f"collectives on {dev.name}: {why_not}")
        group = ProcessGroup(placement, dev.collectives_backend, timeout_s, dev.device)
    leader = group.is_leader
    say = console.print if leader else (lambda *a, **k: None)
    telemetry = dev.telemetry()
    spec = dev.spec()
    info = RunInfo(
        schema_version=SCHEMA_VERSION, run_id=os.environ.get(RUN_ID_ENV) or new_run_id(dev.name, label),
        status="running", started_at=utc_now(), backend=dev.name, device_name=dev.device_name(),
        device_count=dev.device_count(), host=socket.gethostname(), accelbench_version=__version__,
        commit=_git_commit(), argv=["bench"] + sys.argv[1:], suite=suite, label=label, versions=dev.versions(),
        spec=dataclasses.asdict(spec) if spec else None, fingerprint=telemetry.fingerprint(),
        emulated_matmul=dev.emulated_matmul_dtypes(), regime="+".join(r.name for r in regimes),
        flush_always=flush_mode == "always", repeats=repeats)
    if placement.distributed:
        info.ranks = group.gather(_rank_facts(placement, dev, info))
        info.node_differences = node_differences(info.ranks)
    writer = RunWriter(out_dir / info.run_id, info) if leader else DiscardingWriter(info)
    how = ([f"{info.regime} regime{'s' if len(regimes) > 1 else ''}"] if info.regime != "sustained" else []) + \
        (["cache flushed before every call"] if flush_mode == "always" else []) + \
        ([f"{repeats} interleaved repeats"] if repeats > 1 else [])
    say(f"accelbench {__version__}: {len(plan)} cases on {info.device_name} ({dev.name}"
        f"{_world_text(info) if placement.distributed else ''}); " + "".join(f"{h}; " for h in how) +
        f"writing {writer.directory}", highlight=False)
    for difference in info.node_differences:
        say(f"warning: nodes differ: {difference}", highlight=False, markup=False)
    options = RunOptions(policy=policy_for(suite, min_time_s=min_time, max_time_s=max_time,
                                           min_samples=min_samples, call_budget_s=call_budget),
                         energy=energy, energy_window_s=energy_window, graphs=graphs, suite=suite,
                         skip_emulated=suite == "quick", regimes=regimes, flush_always=flush_mode == "always")
    planned_dtypes = {d for _, c in plan for d in c.matmul_dtypes}
    for dtype, why in info.emulated_matmul.items():
        if dtype not in planned_dtypes:
            continue
        say(f"note: {why}: {dtype} cases are "
            f"{'left out of the quick suite' if suite == 'quick' else 'labelled emulated'}", highlight=False)
    left_out = sorted(n for n, c in benchmark_classes().items() if c.distributed != (ranks > 1))
    if not bench_names and left_out:
        say(f"note: {', '.join(left_out)} left out: " + ("they run in one process" if ranks > 1 else
            "they need 2 or more ranks (bench run --bench collectives --nproc 2)"), highlight=False)
    if energy and telemetry.energy_source is not None:
        writer.update(idle_power_w=measure_idle_power(telemetry))
    # SIGTERM (a CI timeout, `kill`) ends the run like Ctrl-C: finished cases stay, run marked
    # interrupted; but a rank already ending the job (recording why) finishes that first.
    signal.signal(signal.SIGTERM, lambda signum, frame: None if getattr(group, "ending", False) else _interrupt(signum, frame))

    def finish(status: str, abort_reason: Optional[str] = None) -> None:
        writer.finish(status, abort_reason)
        if report and leader:
            from accelbench.reports.html import write_report
            path = write_report(load_runs([writer.directory]), writer.directory / "report.html",
                                title=f"accelbench: {label or info.run_id}")
            say(f"report: {path}")

    try:
        with (CaseProgress(len(plan) * len(regimes) * repeats, console) if leader else nullcontext(SilentProgress())) as progress:
            runner = Runner(dev, writer, options, progress, group)
            if isinstance(group, ProcessGroup) and leader:
                group.on_abort += [runner.record_abort, lambda message: finish("aborted", message)]
            summary = runner.run(plan, repeats)
    except KeyboardInterrupt:
        writer.finish("interrupted")
        say(f"interrupted: finished cases kept in {writer.directory}")
        sys.exit(1)
    except BaseException:
        writer.finish("crashed")
        raise
    if not leader:
        group.close()
        sys.exit(0)
    finish("complete")
    group.close()
    _print_summary(summary.records)
    if len(regimes) > 1:
        _print_regimes(LoadedRun(writer.directory, writer.info, summary.records))
    if repeats > 1:
        _print_repeat_spread(summary.records)
    failed = summary.count("failed")
    throttled = sum(r.throttled for r in summary.records)
    console.print(f"{summary.count('ok')} ok, {failed} failed, {summary.count('skipped')} skipped"
                  f"{f', {throttled} ran throttled (power or thermal cap)' if throttled else ''} -> {writer.directory}")
    sys.exit(1 if failed else 0)


def _world_text(info: RunInfo) -> str:
    nodes = len({r["node_rank"] for r in info.ranks})
    return f", {len(info.ranks)} ranks on {nodes} node{'s' if nodes > 1 else ''}"


def _within(size: Optional[int], low: Optional[int], high: Optional[int]) -> bool:
    if size is None:
        return low is None and high is None
    return (low is None or size >= low) and (high is None or size <= high)


def _rank_facts(placement, dev, info: RunInfo) -> dict:
    """What a rank tells rank 0 about itself, for run.json."""
    return {"rank": placement.rank, "node_rank": placement.node_rank, "local_rank": placement.local_rank,
            "host": info.host, "device": info.device_name, "device_index": str(dev.device),
            "versions": info.versions, "fingerprint": info.fingerprint}


def _launch_ranks(nproc: int, backend: str, label: Optional[str], out_dir: Path, report: bool) -> None:
    """`--nproc N`: run this same command as N ranks on this machine; exit with the run's code."""
    run_id = new_run_id(backend if backend != "auto" else best_available(), label)
    env = {RUN_ID_ENV: run_id}
    if "OMP_NUM_THREADS" not in os.environ:  # N ranks share the cores, as torchrun arranges
        env["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // nproc))
    console.print(f"starting {nproc} ranks on this machine (torchrun elastic launch)", highlight=False)
    outcome = launch_local(nproc, self_command() + without_option(sys.argv[1:], "--nproc"), env)
    directory = out_dir / run_id
    # Rank 0 exiting 1 is a run with failed cases, which it has reported; anything else is a rank failing.
    problems = [f for f in outcome.failures if not (f.rank == 0 and f.what == "exit code 1")]
    for failure in problems:
        console.print(f"rank {failure.rank}: {failure.what}", highlight=False)
    if problems and note_rank_failures(directory, "; ".join(f"rank {f.rank}: {f.what}" for f in problems)):
        console.print(f"run marked aborted: finished cases kept in {directory}", highlight=False)
        if report:
            from accelbench.reports.html import write_report
            write_report(load_runs([directory]), directory / "report.html", title=f"accelbench: {label or run_id}")
    sys.exit(outcome.exit_code)


GROUP_KEYS = ("op", "mode", "kernel", "impl", "stage", "direction", "host_memory", "dtype")
# Facts that split a group: a cache-resident bandwidth is never ranked beside a device-memory one.
GROUP_FACTS = ("memory_level",)


def _print_summary(records) -> None:
    """Best headline figure per benchmark and group (dtype, kernel, direction, memory level...)."""
    table = Table(title="best figure per benchmark and group")
    for col in ("benchmark", "group", "best", "MFU/util", "ok/failed/skipped", "best case"):
        table.add_column(col, overflow="fold")
    groups: dict[tuple[str, str], list] = {}
    for r in records:
        group = " ".join([str(r.params[k]) for k in GROUP_KEYS if k in r.params]
                         + [str(r.facts[k]) for k in GROUP_FACTS if k in r.facts]
                         + [r.case_id.partition(REGIME_MARK)[2]])  # a burst figure is not a sustained one
        groups.setdefault((r.benchmark, group), []).append(r)
    for (bench, group), recs in sorted(groups.items()):
        figures = [(m.value, r) for r in recs if r.status == "ok" for m in r.metrics
                   if m.name == next((h for h in HEADLINE_METRICS if r.metric(h)), None) and m.value is not None]
        best = max(figures, key=lambda f: f[0])[1] if figures else None
        counts = "/".join(str(sum(r.status == s for r in recs)) for s in ("ok", "failed", "skipped"))
        why_not = "" if best else "; ".join(sorted({r.reason.split(":")[0] for r in recs if r.reason}))[:80]
        table.add_row(bench, group, (headline(best) if best else "—") + (" (emulated)" if best and "emulated" in best.facts else ""),
                      utilization_text(best), counts, best.case_id if best else why_not or "—")
    console.print(table)


def _print_regimes(run: LoadedRun) -> None:
    """With several --regime: each case's figure and clocks per regime, side by side."""
    from accelbench.reports.regimes import regime_table
    from accelbench.store import cases_frame
    found = regime_table(cases_frame([run]))
    if not found.rows:
        return
    # Columns with no reading anywhere (no clocks on this device) would only crowd the terminal.
    shown = [i for i, _ in enumerate(found.columns) if any(row[i] != "—" for row in found.rows)]
    table = Table(title="timing regimes side by side")
    for i in shown:
        table.add_column(found.columns[i], overflow="fold")
    for row in found.rows:
        table.add_row(*(row[i] for i in shown))
    console.print(table)


def _print_repeat_spread(records) -> None:
    """With --repeat: per case, the spread between the repeats' medians beside its samples' own."""
    from accelbench.store import repeat_spreads
    spreads = repeat_spreads(records)
    if not spreads:
        return
    within: dict[tuple[str, str], list[float]] = {}
    for case in records:
        if (case.benchmark, case.case_id) in spreads and case.stats is not None:
            within.setdefault((case.benchmark, case.case_id), []).append(case.stats.cv)
    table = Table(title=f"spread between repeats (flagged: range over bench compare's {COMPARE_THRESHOLD:.0%})")
    for col in ("benchmark", "case", "repeats", "CV of medians", "range", "within-run CV (median)", ""):
        table.add_column(col, overflow="fold")
    for (bench, case_id), s in sorted(spreads.items(), key=lambda kv: -kv[1].cv):
        table.add_row(bench, case_id, str(s.repeats), f"{100 * s.cv:.2f} %", f"{100 * s.range_rel:.1f} %",
                      f"{100 * sorted(within[(bench, case_id)])[len(within[(bench, case_id)]) // 2]:.2f} %",
                      "beyond threshold" if s.beyond_compare_threshold else "")
    console.print(table)


def utilization_text(best) -> str:
    if best is None:
        return "—"
    util = best.metric("mfu") or best.metric("bw_util") or best.metric("link_util")
    if util is not None and util.value is not None:
        return f"{util.value:.1f} %"
    gbps = best.metric("gbps")
    if gbps is not None and gbps.note:  # cache or link bandwidth: no share of device memory
        return gbps.note.split(":")[0]
    return "unknown"


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
            peaks = ", ".join(f"{d} {v / 1e12:.1f} TFLOP/s" for d, v in spec.peak_flops.items())
            bw = f"{spec.mem_bandwidth_Bps / 1e12:.2f} TB/s" if spec.mem_bandwidth_Bps else "unknown"
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


@main.command()
@click.argument("runs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="File to write (default report.html, report.md or overview.csv by --format).")
@click.option("--format", "fmt", type=click.Choice(["html", "md", "csv"]), default="html", show_default=True,
              help="html: the self-contained report; md: overview, procurement and compact tables as Markdown; "
                   "csv: the overview table.")
@click.option("--title", default="accelbench report", show_default=True)
@click.option("--baseline", default=None, metavar="RUN",
              help="The device the ratios are to: a run's id, label, folder or device name (default: the first run's).")
@click.option("--price", "prices", multiple=True, metavar="DEVICE=USD_PER_HOUR",
              help="Rental price of one device per hour (repeat per device; the device name as the runs record it).")
@click.option("--capex", "capex", multiple=True, metavar="DEVICE=USD",
              help="Purchase price of one device, spread over --years of round-the-clock use.")
@click.option("--years", type=click.FloatRange(min=0.1), default=3.0, show_default=True,
              help="Depreciation period for --capex.")
@click.option("--energy-price", type=click.FloatRange(min=0), default=0.0, show_default=True, metavar="USD_PER_KWH",
              help="Electricity price, applied to the power measured during each case.")
@click.option("--pue", type=click.FloatRange(min=1.0), default=1.0, show_default=True,
              help="Power usage effectiveness of the facility (1.0 = the device's own power only).")
def report(runs: tuple[Path, ...], output: Optional[Path], fmt: str, title: str, baseline: Optional[str],
           prices: tuple[str, ...], capex: tuple[str, ...], years: float, energy_price: float, pue: float) -> None:
    """Render run folders into one report: an overview with a column per device and ratios to a
    baseline, a roofline, a section per benchmark, and a procurement view when prices are given
    (--price or --capex, with --energy-price and --pue)."""
    from accelbench.reports.formats import render
    from accelbench.reports.html import Report
    from accelbench.reports.procurement import Prices, parse_prices
    try:
        pricing = Prices(parse_prices(prices, "--price"), parse_prices(capex, "--capex"), years, energy_price, pue)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    loaded = load_runs(runs)
    for run_ in loaded:
        for w in run_.warnings:
            console.print(f"warning: {w}", markup=False)
    known = {r.info.device_name for r in loaded}
    for device in [*pricing.per_hour, *pricing.capex]:
        if device not in known:
            raise click.UsageError(f"no run is of device {device!r}; the runs' devices are: {', '.join(sorted(known))}")
    try:
        built = Report.build(loaded, title, baseline, pricing)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    output = output or Path({"html": "report.html", "md": "report.md", "csv": "overview.csv"}[fmt])
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(render(built, fmt), encoding="utf-8")
    click.echo(f"wrote {output}")


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
              help="File to write (default history.html, or history.csv with --format csv).")
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
    output = output or Path(f"history.{fmt}")
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


if __name__ == "__main__":
    main()

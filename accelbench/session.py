"""One `bench run`, from request to finished run folder: plan the cases, launch the ranks (`--nproc`),
write the run record, measure idle power, run the plan through the harness with Ctrl-C and SIGTERM
handled, finish the run and render its report. Printing the summary tables is the CLI's
(cli/summary.py); measuring is the harness's."""
from __future__ import annotations

import dataclasses
import os
import signal
import socket
import subprocess
import sys
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

from rich.console import Console

from accelbench import METHOD_VERSION, SCHEMA_VERSION, __version__
from accelbench.backends import backend_classes, best_available, resolve_backend
from accelbench.benchmark import Benchmark, Case, benchmark_classes, for_ranks, select_benchmarks
from accelbench.distributed import (RUN_ID_ENV, SOLO, Placement, ProcessGroup, launch_local, node_differences,
                                    placement_from_env, self_command, without_option)
from accelbench.energy import measure_idle_power
from accelbench.errors import INTERRUPTED_EXIT, BackendUnavailable, UsageError
from accelbench.harness import RunOptions, RunSummary, Runner, SilentProgress
from accelbench.progress import CaseProgress
from accelbench.records import RunInfo
from accelbench.store import DiscardingWriter, RunWriter, load_runs, new_run_id, note_rank_failures, utc_now
from accelbench.timing import Regime, policy_for


@dataclass(frozen=True)
class RunRequest:
    """What `bench run` was asked for (its options, parsed)."""

    backend: str = "auto"
    suite: str = "quick"
    bench_names: tuple[str, ...] = ()
    case_filters: tuple[str, ...] = ()
    min_bytes: Optional[int] = None
    max_bytes: Optional[int] = None
    device_index: int = 0
    nproc: int = 1
    timeout_s: float = 120.0
    # Options a benchmark declares (Benchmark.run_options): name -> value, None where not given.
    benchmark_options: tuple[tuple[str, Any], ...] = ()
    out_dir: Path = Path("results")
    label: Optional[str] = None
    energy: bool = True
    energy_window_s: Optional[float] = None  # None: the suite's (TimingPolicy.energy_window_s)
    graphs: str = "auto"
    regimes: tuple[Regime, ...] = ()
    flush_always: bool = False
    repeats: int = 1
    min_time_s: Optional[float] = None
    max_time_s: Optional[float] = None
    min_samples: Optional[int] = None
    call_budget_s: Optional[float] = None
    report: bool = True


@dataclass
class Plan:
    cases: list[tuple[Benchmark, Case]]
    ranks: int
    placement: Placement


@dataclass
class RunResult:
    """A finished run, on the rank that writes it (rank 0)."""

    info: RunInfo
    directory: Path
    summary: RunSummary


def plan_run(request: RunRequest) -> Plan:
    """The cases to run, on how many ranks; a request that selects none is refused."""
    placement = placement_from_env()
    if request.nproc > 1 and placement.distributed:
        raise UsageError(f"this process is already rank {placement.rank} of {placement.world_size} "
                         f"(started by {placement.launcher}): leave out --nproc")
    ranks = max(request.nproc, placement.world_size)
    benchmarks = for_ranks(select_benchmarks(list(request.bench_names)), ranks, named=bool(request.bench_names))
    given = dict(request.benchmark_options)
    if given.get("text") is not None and given.get("weights") is None:
        raise UsageError("--text needs --weights: the text is tokenized by the checkpoint's tokenizer")
    for option, value in given.items():
        if value is None:
            continue
        takers = [b for b in benchmarks if option in b.run_options]
        if not takers:
            able = sorted(n for n, cls in benchmark_classes().items() if option in cls.run_options)
            flag = "--" + option.replace("_", "-")
            raise UsageError(f"{flag} applies to the {', '.join(able)} benchmark(s) only (--bench {able[0]})"
                             if able else f"{flag} applies to no benchmark")
        for bench in takers:
            bench.configure(option, value)
    cases = [(b, c) for b in benchmarks for c in b.cases(request.suite)
             if (not request.case_filters or any(f in c.case_id for f in request.case_filters))
             and _within(c.params.get("bytes"), request.min_bytes, request.max_bytes)]
    if not cases:
        raise UsageError(f"no cases match (suite {request.suite}, filter "
                         f"{' or '.join(map(repr, request.case_filters)) or 'none'}, {ranks} rank(s))")
    if placement.distributed and request.device_index:
        raise UsageError("--device does not apply to a multi-rank run: each rank uses its local rank's device")
    return Plan(cases, ranks, placement)


def execute(request: RunRequest, plan: Plan, console: Console) -> Optional[RunResult]:
    """Run the plan and finish the run folder (its report too). With --nproc, start the ranks and
    exit with their code. None on a rank that does not write (its part is done); KeyboardInterrupt
    and SIGTERM end the run as interrupted, every finished case kept."""
    if request.nproc > 1:
        launch_ranks(request, console)
    placement = plan.placement
    group = SOLO
    dev = resolve_backend(request.backend, request.device_index,
                          placement.local_rank if placement.distributed else None)
    if placement.distributed:
        why_not = dev.collectives_unavailable()
        if why_not:
            raise BackendUnavailable(f"collectives on {dev.name}: {why_not}")
        group = ProcessGroup(placement, dev.collectives_backend, request.timeout_s, dev.device)
    leader = group.is_leader
    say: Callable[..., None] = console.print if leader else (lambda *a, **k: None)
    telemetry = dev.telemetry()
    info = run_info(request, dev, telemetry)
    if placement.distributed:
        info.ranks = group.gather(_rank_facts(placement, dev, info))
        info.node_differences = node_differences(info.ranks)
    writer = RunWriter(request.out_dir / info.run_id, info) if leader else DiscardingWriter(info)
    _announce(request, plan, info, dev.name, writer.directory, say)
    policy = policy_for(request.suite, min_time_s=request.min_time_s, max_time_s=request.max_time_s,
                        min_samples=request.min_samples, call_budget_s=request.call_budget_s,
                        energy_window_s=request.energy_window_s)
    options = RunOptions(policy=policy, energy=request.energy, energy_window_s=policy.energy_window_s, graphs=request.graphs,
                         suite=request.suite, skip_emulated=request.suite == "quick", regimes=request.regimes,
                         flush_always=request.flush_always)
    if request.energy and telemetry.energy_source is not None:
        writer.update(idle_power_w=measure_idle_power(telemetry))
    # SIGTERM (a CI timeout, `kill`) ends the run like Ctrl-C: finished cases stay, run marked
    # interrupted; but a rank already ending the job (recording why) finishes that first.
    signal.signal(signal.SIGTERM, lambda signum, frame: None if getattr(group, "ending", False) else _interrupt(signum, frame))

    def finish(status: str, abort_reason: Optional[str] = None) -> None:
        writer.finish(status, abort_reason)
        if request.report and leader:
            from accelbench.reports.html import write_report
            path = write_report(load_runs([writer.directory]), writer.directory / "report.html",
                                title=f"accelbench: {request.label or info.run_id}")
            say(f"report: {path}")

    total = len(plan.cases) * len(request.regimes) * request.repeats
    try:
        with (CaseProgress(total, console) if leader else nullcontext(SilentProgress())) as progress:
            runner = Runner(dev, writer, options, progress, group)
            if isinstance(group, ProcessGroup) and leader:
                group.on_abort += [runner.record_abort, lambda message: finish("aborted", message)]
            summary = runner.run(plan.cases, request.repeats)
    except KeyboardInterrupt:
        writer.finish("interrupted")
        say(f"interrupted: finished cases kept in {writer.directory}")
        sys.exit(INTERRUPTED_EXIT)
    except BaseException:
        writer.finish("crashed")
        raise
    finally:
        for bench in dict.fromkeys(b for b, _ in plan.cases):  # what they kept across cases (an engine they started)
            bench.close()
    if not leader:
        group.close()
        return None
    finish("complete")
    group.close()
    return RunResult(writer.info, writer.directory, summary)


def run_info(request: RunRequest, dev, telemetry) -> RunInfo:
    """The run record as the run starts: what ran where, with which code, method and options."""
    spec = dev.spec()
    info = RunInfo(
        schema_version=SCHEMA_VERSION, method_version=METHOD_VERSION,
        run_id=os.environ.get(RUN_ID_ENV) or new_run_id(dev.name, request.label),
        status="running", started_at=utc_now(), backend=dev.name, device_name=dev.device_name(),
        device_count=dev.device_count(), host=socket.gethostname(), accelbench_version=__version__,
        commit=_git_commit(), argv=["bench"] + sys.argv[1:], suite=request.suite, label=request.label,
        versions=dev.versions(), spec=dataclasses.asdict(spec) if spec else None,
        fingerprint=telemetry.fingerprint(), emulated_matmul=dev.emulated_matmul_dtypes(),
        regime="+".join(r.name for r in request.regimes), flush_always=request.flush_always,
        repeats=request.repeats)
    if not request.energy:
        info.no_energy_because = "energy not measured (--no-energy)"
    elif telemetry.energy_source is None:
        counter = telemetry.availability().get("energy counter", "no")
        info.no_energy_because = f"no readable energy counter or power ({counter.removeprefix('no: ')})"
    # Every benchmark's view, not only those run: the report's overview says which figures a run lacks.
    info.views = {name: cls.view() for name, cls in sorted(benchmark_classes().items())}
    return info


def _announce(request: RunRequest, plan: Plan, info: RunInfo, backend: str, directory: Path, say) -> None:
    how = ([f"{info.regime} regime{'s' if len(request.regimes) > 1 else ''}"] if info.regime != "sustained" else []) + \
        (["cache flushed before every call"] if request.flush_always else []) + \
        ([f"{request.repeats} interleaved repeats"] if request.repeats > 1 else [])
    say(f"accelbench {__version__}: {len(plan.cases)} cases on {info.device_name} ({backend}"
        f"{_world_text(info) if plan.placement.distributed else ''}); " + "".join(f"{h}; " for h in how) +
        f"writing {directory}", highlight=False)
    for difference in info.node_differences:
        say(f"warning: nodes differ: {difference}", highlight=False, markup=False)
    planned_dtypes = {d for _, c in plan.cases for d in c.matmul_dtypes}
    for dtype, why in info.emulated_matmul.items():
        if dtype in planned_dtypes:
            say(f"note: {why}: {dtype} cases are "
                f"{'left out of the quick suite' if request.suite == 'quick' else 'labelled emulated'}", highlight=False)
    left_out = sorted(n for n, c in benchmark_classes().items() if c.distributed != (plan.ranks > 1))
    if not request.bench_names and left_out:
        say(f"note: {', '.join(left_out)} left out: " + ("they run in one process" if plan.ranks > 1 else
            "they need 2 or more ranks (bench run --bench collectives --nproc 2)"), highlight=False)


def launch_ranks(request: RunRequest, console: Console) -> None:
    """`--nproc N`: run this same command as N ranks on this machine; exit with the run's code."""
    name = request.backend if request.backend != "auto" else best_available()
    run_id = new_run_id(name, request.label)
    env = {RUN_ID_ENV: run_id}
    if "OMP_NUM_THREADS" not in os.environ:  # N ranks share the cores, as torchrun arranges
        env["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // request.nproc))
    # What the backend's ranks need before their framework loads (Gaudi: collectives in HPU graphs);
    # a value the user set wins.
    cls = backend_classes().get(name)
    env.update({k: v for k, v in (cls.rank_environment() if cls else {}).items() if k not in os.environ})
    console.print(f"starting {request.nproc} ranks on this machine (torchrun elastic launch)", highlight=False)
    outcome = launch_local(request.nproc, self_command() + without_option(sys.argv[1:], "--nproc"), env)
    directory = request.out_dir / run_id
    # Rank 0 exiting 1 is a run with failed cases, which it has reported; anything else is a rank failing.
    problems = [f for f in outcome.failures if not (f.rank == 0 and f.what == "exit code 1")]
    for failure in problems:
        console.print(f"rank {failure.rank}: {failure.what}", highlight=False)
    if problems and note_rank_failures(directory, "; ".join(f"rank {f.rank}: {f.what}" for f in problems)):
        console.print(f"run marked aborted: finished cases kept in {directory}", highlight=False)
        if request.report:
            from accelbench.reports.html import write_report
            write_report(load_runs([directory]), directory / "report.html",
                         title=f"accelbench: {request.label or run_id}")
    sys.exit(outcome.exit_code)


def _git_commit() -> Optional[str]:
    try:
        # "-dirty" where the tree differs from the commit: a run of uncommitted code says so.
        return subprocess.run(["git", "describe", "--always", "--dirty", "--abbrev=7"], capture_output=True,
                              text=True, timeout=5, cwd=Path(__file__).parent).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


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

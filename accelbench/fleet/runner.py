"""`bench fleet`'s work: the acceptance selection on every device at once, one `bench run` process per
device (its own device, its own run folder), each watched against a deadline, the devices' health
facts read while they work, and the figures gathered for verdicts.py.

One process per device rather than one multi-rank job: a device whose process dies or hangs loses
its own figures only, and the others are judged without it (a collective job would end with it).
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from accelbench.errors import ResultsError
from accelbench.fleet.health import Health
from accelbench.fleet.verdicts import DeviceResult


@dataclass(frozen=True)
class Selection:
    benches: tuple[str, ...]
    cases: tuple[str, ...]  # `bench run --case` filters of the standard suite


# The acceptance selection: a large GEMM (bf16; FP8 per tensor where the device has it), device-memory
# bandwidth, the host link both ways. On a CPU (tests, CI): what a CPU has, small.
SELECTIONS = {
    "accelerator": Selection(("gemm", "fp8", "membw", "transfer"),
                             ("bf16/square/8192", "tensor/auto/gemm/normal/m8192k8192n8192", "torch/triad/fp32/1GiB",
                              "h2d/pinned/256MiB", "d2h/pinned/256MiB")),
    "cpu": Selection(("gemm", "membw"), ("fp32/square/512", "torch/triad/fp32/64MiB")),
}
QUICK = ("--max-time", "0.5", "--min-samples", "5", "--energy-window", "0.3")
HEALTH_AFTER_S = 5.0  # read the health facts this far into the work: links at their working speed


@dataclass
class DeviceRun:
    device: int
    process: subprocess.Popen
    out: Path
    log: Path


def run_devices(backend: str, devices: list[int], out: Path, selection: Selection, quick: bool,
                timeout_s: float, node: str, say=print) -> list[DeviceResult]:
    """Start the selection on every device, wait (each process at most `timeout_s`), and gather."""
    runs: list[DeviceRun] = []
    env = dict(os.environ)
    if backend == "cpu" and "OMP_NUM_THREADS" not in env:  # the processes share the cores
        env["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // len(devices)))
    for d in devices:
        folder = out / "devices" / str(d)
        folder.mkdir(parents=True, exist_ok=True)
        command = [sys.executable, "-m", "accelbench", "run", "--backend", backend, "--device", str(d),
                   "--suite", "standard", "--bench", ",".join(selection.benches),
                   *[arg for case in selection.cases for arg in ("--case", case)],
                   "--out", str(folder), "--label", f"fleet-{node}-device{d}", "--no-report",
                   *(QUICK if quick else ())]
        log = folder / "run.log"
        with open(log, "wb") as sink:
            runs.append(DeviceRun(d, subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT, env=env,
                                                      stdin=subprocess.DEVNULL, start_new_session=True),
                                  folder, log))
    say(f"fleet: the acceptance selection on {len(devices)} device(s) of {node} at once "
        f"({', '.join(selection.benches)}; at most {timeout_s:.0f} s each)")
    health = _health_under_load(backend, runs)
    deadline = time.monotonic() + timeout_s
    hung: set[int] = set()
    for run in runs:
        try:
            run.process.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            hung.add(run.device)
            _kill(run.process)
    return [_gather(run, node, health.get(run.device, Health()), run.device in hung, timeout_s) for run in runs]


def _health_under_load(backend: str, runs: list[DeviceRun]) -> dict[int, Health]:
    started = time.monotonic()
    while time.monotonic() - started < HEALTH_AFTER_S and any(r.process.poll() is None for r in runs):
        time.sleep(0.2)
    from accelbench.backends import resolve_backend
    out = {}
    for run in runs:
        try:
            out[run.device] = resolve_backend(backend, run.device).telemetry().health()
        except Exception as exc:  # a device we cannot open is judged on its figures; say why
            out[run.device] = Health(unreadable=[f"{type(exc).__name__}: {exc}"])
    return out


def _kill(process: subprocess.Popen) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait()


def _gather(run: DeviceRun, node: str, health: Health, hung: bool, timeout_s: float) -> DeviceResult:
    result = DeviceResult(f"{node}/device{run.device}", node, health=health)
    loaded = _latest_run(run.out)
    if loaded is not None:
        for case in loaded.cases:
            metric = case.headline_metric() if case.status == "ok" else None
            if metric is not None and metric.value is not None:
                result.figures[f"{case.benchmark} {case.case_id} {metric.name}"] = float(metric.value)
            elif case.status == "failed" and result.failed is None:
                result.failed = f"{case.benchmark} {case.case_id} failed: {case.reason}"
    code = run.process.returncode
    if hung:
        result.failed = f"no result within {timeout_s:.0f} s (hung): killed; {_last_line(run.log)}"
    elif code is not None and code < 0:
        result.failed = f"its process died ({signal.Signals(-code).name}) during the selection; {_last_line(run.log)}"
    elif code == 2:
        result.failed = f"its run was refused: {_last_line(run.log)}"
    elif result.failed is None and not result.figures:
        result.failed = f"no figure (exit code {code}): {_last_line(run.log)}"
    return result


def _latest_run(folder: Path):
    """The newest run folder a `bench run --out folder` wrote there, loaded; None where none reads."""
    from accelbench.store import load_run
    runs = sorted(p for p in folder.iterdir() if p.is_dir())
    try:
        return load_run(runs[-1]) if runs else None
    except ResultsError:
        return None


def _last_line(log: Path) -> str:
    try:
        lines = [line.strip() for line in log.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return "no log"
    return (lines[-1][:200] if lines else "its log is empty") + f" (log: {log})"


def selection_for(backend: str) -> Selection:
    return SELECTIONS["cpu" if backend == "cpu" else "accelerator"]


def node_name() -> str:
    return os.uname().nodename


# The node's own checks, after the per-device runs: an all-reduce over all its devices at once (a
# large message: bus bandwidth), and on GPUs peer-to-peer copies between every pair (peers.py).
NODE_ALL_REDUCE = {"accelerator": "all_reduce/bf16/1GiB", "cpu": "all_reduce/fp32/1MiB"}


@dataclass
class NodeChecks:
    figures: dict[int, dict[str, float]]  # device -> figures the node's checks gave it
    pairs: list[dict]  # the peer-to-peer matrix (peers.PairCopy as dicts)
    notes: list[str]  # what was not measured, and why
    failures: list[str] = field(default_factory=list)  # checks that ran and failed: the node fails (exit 1)


def run_node_checks(backend: str, devices: list[int], out: Path, quick: bool, timeout_s: float,
                    say=print) -> NodeChecks:
    checks = NodeChecks({}, [], [])
    if len(devices) < 2:
        checks.notes.append("one device: no all-reduce over the node, no peer-to-peer copies")
        return checks
    _node_all_reduce(backend, devices, out, quick, timeout_s, checks, say)
    if backend == "cuda":
        _peer_copies(devices, out, timeout_s, checks, say)
    else:
        checks.notes.append(f"peer-to-peer copies: not measured on {backend} (CUDA devices only)")
    return checks


def _node_all_reduce(backend: str, devices: list[int], out: Path, quick: bool, timeout_s: float,
                     checks: NodeChecks, say) -> None:
    env = dict(os.environ)
    if backend == "cuda":  # rank r uses local device r: make those the chosen ones
        env["CUDA_VISIBLE_DEVICES"] = ",".join(map(str, devices))
    elif backend != "cpu" and devices != list(range(len(devices))):
        checks.notes.append(f"all-reduce over the node: needs the first N devices on {backend} (got {devices})")
        return
    case = NODE_ALL_REDUCE["cpu" if backend == "cpu" else "accelerator"]
    folder = out / "node" / "all_reduce"
    folder.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "accelbench", "run", "--backend", backend, "--bench", "collectives",
               "--nproc", str(len(devices)), "--suite", "standard", "--case", case, "--out", str(folder),
               "--label", "fleet-node-all-reduce", "--no-report", "--timeout", str(int(timeout_s)),
               *(QUICK if quick else ())]
    say(f"fleet: all-reduce over the node's {len(devices)} devices ({case})")
    log = folder / "run.log"
    try:
        with open(log, "wb") as sink:
            subprocess.run(command, stdout=sink, stderr=subprocess.STDOUT, env=env, stdin=subprocess.DEVNULL,
                           timeout=timeout_s + 60)
    except subprocess.TimeoutExpired:
        checks.failures.append(f"all-reduce over the node: no result within {timeout_s:.0f} s (log: {log})")
        return
    loaded = _latest_run(folder)
    cases = loaded.cases if loaded is not None else []
    found = [c for c in cases if c.case_id.startswith(case)]
    metric = found[0].headline_metric() if found and found[0].status == "ok" else None
    if metric is None or metric.value is None:
        reason = found[0].reason if found else _last_line(log)
        checks.failures.append(f"all-reduce over the node failed: {reason}")
        return
    for d in devices:  # a node's figure: equal on its devices, judged across nodes (--judge)
        checks.figures.setdefault(d, {})[f"node collectives {found[0].case_id} {metric.name}"] = float(metric.value)


def _peer_copies(devices: list[int], out: Path, timeout_s: float, checks: NodeChecks, say) -> None:
    from accelbench.fleet.peers import PairCopy, device_figures
    path = out / "node" / "peers.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    say(f"fleet: peer-to-peer copies between every pair of the {len(devices)} devices")
    try:
        done = subprocess.run([sys.executable, "-m", "accelbench.fleet.peers", "--devices", ",".join(map(str, devices)),
                               "--out", str(path)], capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        checks.failures.append(f"peer-to-peer copies: no result within {timeout_s:.0f} s")
        return
    if done.returncode != 0 or not path.exists():
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1][:200]
        checks.failures.append(f"peer-to-peer copies failed (exit {done.returncode}): {tail}")
        return
    import json
    checks.pairs = json.loads(path.read_text(encoding="utf-8"))["pairs"]
    pairs = [PairCopy(**p) for p in checks.pairs]
    checks.failures += [p.failed for p in pairs if p.failed]
    for device, figures in device_figures(pairs).items():
        checks.figures.setdefault(device, {}).update(figures)

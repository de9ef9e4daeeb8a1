"""The one launcher for multi-rank benchmarks (collectives; tensor-parallel decode later).

How a run becomes many ranks:
- `bench run --nproc N` on one machine starts N ranks of the same command through torchrun's
  elastic launch (`torch.distributed.launcher.api.elastic_launch`, the API torchrun is built on),
  waits for them, and reports every rank that failed by its rank number.
- Started under `torchrun` (one node or many) or SLURM `srun`, each process joins that job: its
  place comes from the environment (RANK, WORLD_SIZE, LOCAL_RANK, GROUP_RANK; or SLURM_*).

Every rank runs the same plan, in lock-step, through the same harness as a single-process run.
Whatever a rank would decide from its own clock (when warm-up is over, when sampling is stable,
whether a graph is faster) rank 0 decides and broadcasts, and every sample is the slowest rank's
time for that iteration (an all-reduce MAX after the batch, outside the timed region). These
agreements travel on a separate gloo group, never queued behind the device's own work. A run of
one process is a `Group` of one, whose agreements return what they were given.

Never hang: a watchdog thread on every rank watches the main thread's progress (each agreement
is a heartbeat). A rank that sees none for `timeout_s` posts where its main thread is stuck to
the job's key-value store; rank 0 gathers every rank's position into one message, records the
case as failed, finishes the run and exits non-zero, and the other ranks exit with it. A rank
whose main thread raises posts its error the same way. Only rank 0 writes results.
"""
from __future__ import annotations

import datetime
import os
import re
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, NoReturn, Optional

if TYPE_CHECKING:  # torch is imported where a job is joined: reading results needs none of it
    import torch

from accelbench.errors import UsageError

# The run id the launching command chose, so that it can find the run folder its rank 0 wrote.
RUN_ID_ENV = "ACCELBENCH_RUN_ID"
ABORT_EXIT_CODE = 1
POLL_S = 0.2
# How long rank 0 waits, once stuck, for the other ranks to say where they are.
WHERE_GRACE_S = 2.0


@dataclass(frozen=True)
class Placement:
    """Where this process sits in a job."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    local_world_size: int = 1
    node_rank: int = 0
    launcher: str = "single"  # single / torchrun / slurm

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def placement_from_env(env: Optional[dict[str, str]] = None) -> Placement:
    env = dict(os.environ) if env is None else env
    if "RANK" in env and "WORLD_SIZE" in env:  # torchrun, or any launcher of env:// jobs
        local_world = int(env.get("LOCAL_WORLD_SIZE", env["WORLD_SIZE"]))
        rank = int(env["RANK"])
        return Placement(rank, int(env["WORLD_SIZE"]), int(env.get("LOCAL_RANK", 0)), local_world,
                         int(env.get("GROUP_RANK", rank // max(local_world, 1))), "torchrun")
    if int(env.get("SLURM_NTASKS", "1")) > 1 and "SLURM_PROCID" in env:
        per_node = re.match(r"\d+", env.get("SLURM_STEP_TASKS_PER_NODE") or env.get("SLURM_NTASKS_PER_NODE") or "1")
        return Placement(int(env["SLURM_PROCID"]), int(env["SLURM_NTASKS"]), int(env.get("SLURM_LOCALID", 0)),
                         int(per_node.group()) if per_node else 1, int(env.get("SLURM_NODEID", 0)), "slurm")
    return Placement()


def _slurm_rendezvous(placement: Placement) -> None:
    """env:// needs RANK, WORLD_SIZE and MASTER_ADDR/PORT; under srun derive what SLURM leaves out
    (the first node of the step is the rendezvous host)."""
    env = os.environ
    env.setdefault("RANK", str(placement.rank))
    env.setdefault("WORLD_SIZE", str(placement.world_size))
    env.setdefault("LOCAL_RANK", str(placement.local_rank))
    env.setdefault("LOCAL_WORLD_SIZE", str(placement.local_world_size))
    env.setdefault("GROUP_RANK", str(placement.node_rank))
    if "MASTER_ADDR" not in env:
        nodes = env.get("SLURM_STEP_NODELIST") or env.get("SLURM_JOB_NODELIST") or ""
        try:
            first = subprocess.run(["scontrol", "show", "hostnames", nodes], capture_output=True, text=True,
                                   timeout=30).stdout.split()[0]
        except (OSError, subprocess.SubprocessError, IndexError):
            raise UsageError("under srun, set MASTER_ADDR to the first node's address (scontrol is not "
                             "available to find it)") from None
        env["MASTER_ADDR"] = first
    env.setdefault("MASTER_PORT", str(29500 + int(env.get("SLURM_JOB_ID", "0")) % 1000))


# --- the group a run's ranks share -----------------------------------------------------------
class Group:
    """The ranks of a run. This base class is a run of one process: every agreement returns its
    own argument, so the single-process harness is the same code as the multi-rank one."""

    placement = Placement()

    @property
    def rank(self) -> int:
        return self.placement.rank

    @property
    def world_size(self) -> int:
        return self.placement.world_size

    @property
    def is_leader(self) -> bool:
        return self.placement.rank == 0

    def slowest(self, values: list[float]) -> list[float]:
        """Element-wise maximum over ranks (every rank passes the same number of values)."""
        return values

    def leader_decides(self, flag: bool) -> bool:
        """Rank 0's flag, on every rank."""
        return flag

    def gather(self, obj: Any) -> list[Any]:
        """Every rank's `obj`, in rank order, on every rank."""
        return [obj]

    def phase(self, label: str) -> None:
        """Name what the main thread does now (shown if it gets stuck) and count as progress."""

    def watch(self, on: bool) -> None:
        """Arm (or disarm) the watchdog for the timed part of the run."""

    def abort(self, message: str) -> NoReturn:
        raise RuntimeError(message)

    def close(self) -> None:
        pass


SOLO = Group()


class ProcessGroup(Group):
    """The ranks of a torch.distributed job, joined through env:// (torchrun, srun)."""

    def __init__(self, placement: Placement, backend_name: str, timeout_s: float,
                 device: Optional[torch.device] = None):
        import torch.distributed as dist
        self.dist = dist
        self.placement = placement
        self.timeout_s = timeout_s
        if placement.launcher == "slurm":
            _slurm_rendezvous(placement)
        kwargs: dict[str, Any] = {}
        if device is not None and device.type == "cuda":
            kwargs["device_id"] = device  # eager NCCL init: a broken link fails here, not mid-case
        # torch's own timeouts sit above ours, so the watchdog's message is the one users see.
        dist.init_process_group(backend_name, rank=placement.rank, world_size=placement.world_size,
                                timeout=datetime.timedelta(seconds=timeout_s + 60), **kwargs)
        self.control = dist.new_group(backend="gloo", timeout=datetime.timedelta(seconds=timeout_s + 30))
        self.store = dist.PrefixStore("accelbench/", dist.distributed_c10d._get_default_store())
        self.on_abort: list[Callable[[str], None]] = []  # run on rank 0 before it exits
        self._label = "starting"
        self.ending = False  # set once this rank is ending the job: the CLI then ignores SIGTERM
        self._watchdog = Watchdog(self, timeout_s)
        self._watchdog.start()

    # agreements: each is a heartbeat
    def slowest(self, values: list[float]) -> list[float]:
        self._watchdog.beat()
        import torch
        t = torch.tensor(values, dtype=torch.float64)
        self.dist.all_reduce(t, op=self.dist.ReduceOp.MAX, group=self.control)
        self._watchdog.beat()
        return t.tolist()

    def leader_decides(self, flag: bool) -> bool:
        self._watchdog.beat()
        import torch
        t = torch.tensor([int(flag)], dtype=torch.int64)
        self.dist.broadcast(t, src=0, group=self.control)
        self._watchdog.beat()
        return bool(t.item())

    def gather(self, obj: Any) -> list[Any]:
        self._watchdog.beat()
        out: list[Any] = [None] * self.world_size
        self.dist.all_gather_object(out, obj, group=self.control)
        self._watchdog.beat()
        return out

    def phase(self, label: str) -> None:
        self._label = label
        self._watchdog.beat()

    def watch(self, on: bool) -> None:
        self._watchdog.beat()
        self._watchdog.armed = on

    # ending the job
    def abort(self, message: str) -> NoReturn:
        """End the whole job with `message` (from any thread of any rank): rank 0 records it
        (its `on_abort` callbacks), then every rank exits non-zero."""
        if self.store.add("abort/count", 1) == 1:
            self.store.set("abort", message)
        self._exit_aborted()

    def _exit_aborted(self) -> NoReturn:
        self.ending = True
        message = self.store.get("abort").decode()
        if self.is_leader:
            print(f"bench: run aborted: {message}", file=sys.stderr, flush=True)
            for callback in self.on_abort:
                try:
                    callback(message)
                except Exception as exc:  # what could be saved was saved; exit anyway
                    print(f"bench: while recording the abort: {exc}", file=sys.stderr, flush=True)
            self.store.set("abort/done", "1")
        else:
            try:  # give rank 0 time to record the case before the launcher tears the job down
                self.store.wait(["abort/done"], datetime.timedelta(seconds=30))
            except Exception:
                pass
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(ABORT_EXIT_CODE)

    def aborting(self) -> bool:
        return self.store.check(["abort"])

    def post_position(self) -> None:
        self.store.set(f"where/{self.rank}", f"rank {self.rank} {main_thread_position()}")

    def positions(self) -> list[str]:
        keys = [f"where/{r}" for r in range(self.world_size)]
        deadline = time.monotonic() + WHERE_GRACE_S
        while time.monotonic() < deadline and not self.store.check(keys):
            time.sleep(POLL_S)
        return [self.store.get(k).decode() if self.store.check([k]) else f"rank {k.split('/')[1]} not responding"
                for k in keys]

    def close(self) -> None:
        self._watchdog.stop()  # before the store goes: a thread left in a store call aborts the process at exit
        try:
            self.dist.destroy_process_group()
        except Exception:
            pass


class Watchdog(threading.Thread):
    """Turns a stuck main thread into an aborted run (see the module docstring)."""

    def __init__(self, group: ProcessGroup, timeout_s: float):
        super().__init__(name="accelbench-watchdog", daemon=True)
        self.group = group
        self.timeout_s = timeout_s
        self.armed = False
        self._last_beat = time.monotonic()
        self._stopped = threading.Event()

    def stop(self) -> None:
        self._stopped.set()
        self.join(timeout=5)

    def beat(self) -> None:
        self._last_beat = time.monotonic()

    def run(self) -> None:
        group, posted = self.group, False
        while not self._stopped.wait(POLL_S):
            try:
                if group.aborting():
                    group._exit_aborted()
                stalled = time.monotonic() - self._last_beat
                if not self.armed or stalled < self.timeout_s:
                    posted = False
                    continue
                if not posted:
                    group.post_position()
                    posted = True
                # Rank 0 speaks for the job; another rank aborts on its own only if rank 0 is silent.
                if group.is_leader or stalled > 2 * self.timeout_s + 30:
                    group.abort(f"no progress for {self.timeout_s:g} s (--timeout) in {group._label}: "
                                + "; ".join(group.positions()))
            except Exception:  # the store is gone: the job is ending; let the launcher say why
                time.sleep(POLL_S)


def main_thread_position() -> str:
    """Where the main thread is now: its innermost frame, and the innermost one outside torch
    (which says which of our calls it is in)."""
    frame = sys._current_frames().get(threading.main_thread().ident)
    if frame is None:
        return "(main thread not running)"
    stack = []
    while frame is not None:
        stack.append(frame)
        frame = frame.f_back

    def where(f) -> str:
        return f"{f.f_code.co_name} ({os.path.basename(f.f_code.co_filename)}:{f.f_lineno})"

    inner = stack[0]
    ours = next((f for f in stack if f"{os.sep}torch{os.sep}" not in f.f_code.co_filename), None)
    return f"in {where(inner)}" + (f", called from {where(ours)}" if ours is not None and ours is not inner else "")


def node_differences(ranks: list[dict[str, Any]]) -> list[str]:
    """Where the nodes of a job differ in what decides their figures (device, driver, links,
    power limit, library versions), comparing the first rank of each node with node 0's."""
    firsts: dict[int, dict[str, Any]] = {}
    for facts in ranks:
        firsts.setdefault(facts["node_rank"], facts)
    if len(firsts) < 2:
        return []

    def flat(facts: dict[str, Any]) -> dict[str, Any]:
        out = {"device": facts.get("device")}
        out.update({f"versions.{k}": v for k, v in (facts.get("versions") or {}).items()})
        out.update({k: v for k, v in (facts.get("fingerprint") or {}).items()})
        return out

    (base_node, base), *others = sorted(firsts.items())
    reference = flat(base)
    out = []
    for node, facts in others:
        for key, value in flat(facts).items():
            if key in reference and value != reference[key]:
                out.append(f"node {node} ({facts.get('host')}) has {key} {value!r}, node {base_node} "
                           f"({base.get('host')}) {reference[key]!r}")
    return out


# --- launching ranks on this machine ---------------------------------------------------------
@dataclass(frozen=True)
class RankFailure:
    rank: int
    what: str  # "exit code 1", "killed by SIGKILL"


@dataclass
class LaunchOutcome:
    failures: list[RankFailure] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        return 0 if not self.failures else 1


def self_command() -> list[str]:
    """The command line that starts this program again: `python -m pkg` or `python script`."""
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    if spec is not None and spec.name:
        return [sys.executable, "-m", spec.name.removesuffix(".__main__")]
    return [sys.executable, os.path.abspath(sys.argv[0])]


def without_option(args: list[str], option: str) -> list[str]:
    """`args` with `option VALUE` / `option=VALUE` removed."""
    out, skip = [], False
    for arg in args:
        if skip:
            skip = False
        elif arg == option:
            skip = True
        elif not arg.startswith(option + "="):
            out.append(arg)
    return out


def launch_local(nproc: int, command: list[str], env: dict[str, str]) -> LaunchOutcome:
    """Run `command` as `nproc` ranks on this machine through torchrun's elastic launch (c10d
    rendezvous on a free local port, no restarts) and wait for all of them."""
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    config = LaunchConfig(min_nodes=1, max_nodes=1, nproc_per_node=nproc, run_id=f"accelbench-{uuid.uuid4().hex[:8]}",
                          rdzv_backend="c10d", rdzv_endpoint="127.0.0.1:0", max_restarts=0, monitor_interval=0.1)
    os.environ.update(env)  # the ranks inherit the launcher's environment
    try:
        elastic_launch(config, command[0])(*command[1:])
    except ChildFailedError as exc:
        return LaunchOutcome([RankFailure(rank, _describe_exit(f.exitcode)) for rank, f in sorted(exc.failures.items())])
    return LaunchOutcome()


def _describe_exit(code: int) -> str:
    if code < 0:
        import signal
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"

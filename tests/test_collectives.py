"""Collectives and the multi-rank launcher, on CPU with gloo: every op checked on 2 ranks, a rank
that raises, sleeps, dies or computes a wrong answer, and a two-node launch on one machine."""
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from accelbench.cli import main
from accelbench.distributed import Placement, _slurm_rendezvous, node_differences, placement_from_env, without_option
from accelbench.energy import sum_boards
from accelbench.microbench.collectives import OPS, Layout, values
from accelbench.records import EnergyRecord

ROOT = Path(__file__).resolve().parents[1]
FAULTY = ROOT / "tests" / "helpers" / "faulty_ranks.py"


def _env(**extra: str) -> dict[str, str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT), **extra)
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "SLURM_PROCID", "SLURM_NTASKS"):
        env.pop(key, None)
    return env


def _run(args: list[str], timeout: float = 180, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout, env=_env(**env), cwd=ROOT)


def _load(out: Path) -> tuple[dict, list[dict]]:
    (run_dir,) = list(out.iterdir())
    info = json.loads((run_dir / "run.json").read_text())
    cases = [json.loads(line) for line in (run_dir / "cases.jsonl").read_text().splitlines() if line]
    return info, cases


# --- the declarations, without any process group ---------------------------------------------
def _simulate(name: str, world: int, count: int, peer=None) -> list[torch.Tensor]:
    """What each rank's output must be, from the collective's definition applied to the inputs."""
    op = OPS[name]
    lays = [Layout(r, world, count, peer) for r in range(world)]
    inputs = [op.input_value(lay, torch.arange(op.counts(lay)[0])) for lay in lays]
    if name == "all_reduce":
        return [sum(inputs)] * world
    if name == "all_gather":
        return [torch.cat(inputs)] * world
    if name == "reduce_scatter":
        return list(sum(inputs).chunk(world))
    if name == "all_to_all":
        return [torch.cat([inputs[src].chunk(world)[dst] for src in range(world)]) for dst in range(world)]
    if name == "broadcast":
        return [inputs[0]] * world
    return [inputs[0] if r == peer else torch.empty(0, dtype=torch.int64) for r in range(world)]


@pytest.mark.parametrize("name", sorted(OPS))
@pytest.mark.parametrize("world", [2, 3, 8])
def test_expected_values_follow_the_collectives_definition(name, world):
    count = 96 * world  # divisible by the world size, as the benchmark rounds it
    peer = 1 if name == "sendrecv" else None
    for rank, want in enumerate(_simulate(name, world, count, peer)):
        lay = Layout(rank, world, count, peer)
        got = OPS[name].expected(lay, torch.arange(OPS[name].counts(lay)[1]))
        assert torch.equal(got, want), (name, world, rank)


@pytest.mark.parametrize("world", [2, 7, 64, 256])
def test_sums_are_exact_in_bf16_in_any_order(world):
    index = torch.arange(4096)
    terms = [values(r, index, world, True) for r in range(world)]
    exact = sum(terms)
    forward = torch.zeros(4096, dtype=torch.bfloat16)
    for t in terms:
        forward += t.to(torch.bfloat16)
    backward = torch.zeros(4096, dtype=torch.bfloat16)
    for t in reversed(terms):
        backward += t.to(torch.bfloat16)
    assert torch.equal(forward.long(), exact) and torch.equal(backward.long(), exact)
    assert values(0, index, world, False).abs().max() <= 120  # gathered values are exact too


def test_bus_factors_are_nccl_tests():
    assert OPS["all_reduce"].factor(4) == pytest.approx(1.5)
    for name in ("all_gather", "reduce_scatter", "all_to_all"):
        assert OPS[name].factor(8) == pytest.approx(7 / 8)
    assert OPS["broadcast"].factor(8) == OPS["sendrecv"].factor(8) == 1.0


# --- placement, node fingerprints, energy over boards -----------------------------------------
def test_placement_from_torchrun_and_slurm():
    assert placement_from_env({}) == Placement()
    torchrun = placement_from_env({"RANK": "5", "WORLD_SIZE": "8", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "4",
                                   "GROUP_RANK": "1"})
    assert (torchrun.rank, torchrun.node_rank, torchrun.local_rank, torchrun.launcher) == (5, 1, 1, "torchrun")
    slurm = placement_from_env({"SLURM_PROCID": "9", "SLURM_NTASKS": "16", "SLURM_LOCALID": "1",
                                "SLURM_NODEID": "1", "SLURM_STEP_TASKS_PER_NODE": "8(x2)"})
    assert (slurm.rank, slurm.world_size, slurm.local_world_size, slurm.node_rank, slurm.launcher) == (9, 16, 8, 1, "slurm")



def test_srun_rendezvous_keeps_the_placement(monkeypatch):
    # The rendezvous writes RANK, WORLD_SIZE... into os.environ: give it a copy that the test drops.
    environ = {k: v for k, v in os.environ.items()
               if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "GROUP_RANK", "MASTER_PORT")}
    environ.update({"SLURM_PROCID": "9", "SLURM_NTASKS": "16", "SLURM_LOCALID": "1", "SLURM_NODEID": "1",
                    "SLURM_STEP_TASKS_PER_NODE": "8(x2)", "SLURM_JOB_ID": "1234", "MASTER_ADDR": "node0"})
    monkeypatch.setattr(os, "environ", environ)
    placement = placement_from_env()
    _slurm_rendezvous(placement)
    after = placement_from_env()  # what env:// and the benchmarks read from now on
    assert (after.rank, after.world_size, after.local_world_size, after.node_rank) == (9, 16, 8, 1)
    assert os.environ["MASTER_PORT"] == "29734"


def test_node_differences_name_the_node_and_the_fact():
    def rank(r, node, driver, host):
        return {"rank": r, "node_rank": node, "host": host, "device": "NVIDIA H200",
                "versions": {"torch": "2.11"}, "fingerprint": {"driver": driver}}
    assert node_differences([rank(0, 0, "580", "a"), rank(1, 0, "580", "a")]) == []
    (diff,) = node_differences([rank(0, 0, "580", "a"), rank(1, 1, "570", "b")])
    assert "node 1 (b)" in diff and "driver" in diff and "570" in diff and "580" in diff


def test_energy_sums_distinct_boards_once():
    def rec(joules):
        return EnergyRecord("counter", "rapl", 1.0, 10, joules, joules, 5.0, None, 10, per_call_s=0.1)
    total = sum_boards([("host cpu", rec(50.0)), ("host cpu", rec(51.0)), ("other cpu", rec(40.0))])
    assert total.joules == 90.0 and total.boards == 2 and total.idle_power_w == 10.0
    assert sum_boards([("a cuda:0", rec(1.0)), ("a cuda:1", None)]) is None


def test_without_option():
    assert without_option(["run", "--nproc", "2", "--suite", "quick", "--nproc=4"], "--nproc") == ["run", "--suite", "quick"]


# --- the CLI's refusals ----------------------------------------------------------------------
@pytest.mark.parametrize("args,env,words", [
    (["--bench", "collectives"], {}, "2 or more ranks"),
    (["--bench", "gemm", "--nproc", "2"], {}, "runs in one process"),
    (["--bench", "collectives", "--nproc", "2"], {"RANK": "0", "WORLD_SIZE": "2"}, "leave out --nproc"),
    (["--bench", "collectives", "--nproc", "2", "--max-bytes", "lots"], {}, "not a size"),
])
def test_cli_refuses_with_one_line(args, env, words, monkeypatch, tmp_path):
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    result = CliRunner().invoke(main, ["run", "--backend", "cpu", "--out", str(tmp_path), *args])
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("bench: error:") and words in lines[0]
    assert not list(tmp_path.iterdir())


# --- real ranks ------------------------------------------------------------------------------
def test_two_ranks_run_every_op_checked(tmp_path):
    started = time.monotonic()
    proc = _run([sys.executable, "-m", "accelbench", "run", "--backend", "cpu", "--bench", "collectives",
                 "--nproc", "2", "--suite", "quick", "--out", str(tmp_path)])
    elapsed = time.monotonic() - started
    assert proc.returncode == 0, proc.stderr[-3000:]
    info, cases = _load(tmp_path)
    assert info["status"] == "complete" and [r["rank"] for r in info["ranks"]] == [0, 1]
    by_status = {c["case_id"]: c for c in cases}
    for op in ("all_reduce", "all_gather", "reduce_scatter", "all_to_all", "broadcast", "sendrecv-intra"):
        for dtype in ("fp32", "bf16"):
            for size in ("1KiB", "64KiB", "4MiB"):
                case = by_status[f"{op}/{dtype}/{size}"]
                assert case["status"] == "ok" and case["accuracy"]["passed"], case["reason"]
                busbw = next(m for m in case["metrics"] if m["name"] == "busbw")["value"]
                algbw = next(m for m in case["metrics"] if m["name"] == "algbw")["value"]
                assert busbw == pytest.approx(algbw * case["facts"]["bus_factor"]) and busbw > 0
    assert all(c["status"] == "skipped" and "across two nodes" in c["reason"]
               for c in cases if c["params"]["op"] == "sendrecv-inter")
    assert by_status["all_reduce/fp32/1KiB"]["facts"]["bus_factor"] == 1.0  # 2(n-1)/n at n=2
    html = next(tmp_path.iterdir()).joinpath("report.html").read_text()
    section = html[html.index("collectives"):]
    assert "data:image/png;base64," in section  # the busbw plot
    print(f"quick collectives on 2 ranks: {elapsed:.1f} s")


def _faulty(tmp_path, fault: str, timeout: str = "60", extra_env=None) -> tuple[subprocess.CompletedProcess, float]:
    started = time.monotonic()
    proc = _run([sys.executable, str(FAULTY), "run", "--backend", "cpu", "--bench", "faulty-collectives", "--nproc", "2",
                 "--suite", "quick", "--case", "fp32/64KiB", "--no-energy", "--timeout", timeout, "--out", str(tmp_path)],
                timeout=120, FAULT=fault, FAULT_CASE="all_gather", **(extra_env or {}))
    return proc, time.monotonic() - started


def test_a_rank_that_raises_ends_the_run_naming_it(tmp_path):
    proc, _ = _faulty(tmp_path, "raise")
    assert proc.returncode == 1
    info, cases = _load(tmp_path)
    assert info["status"] == "aborted" and "rank 1 raised RuntimeError: injected fault" in info["abort_reason"]
    failed = [c for c in cases if c["status"] == "failed"]
    assert [c["case_id"] for c in failed] == ["all_gather/fp32/64KiB"] and "rank 1" in failed[0]["reason"]
    assert cases[0]["case_id"] == "all_reduce/fp32/64KiB" and cases[0]["status"] == "ok"  # kept
    assert "rank 1 raised" in proc.stderr


def test_a_rank_that_sleeps_past_the_timeout_fails_the_case_not_hangs(tmp_path):
    proc, _ = _faulty(tmp_path, "sleep", timeout="3")  # a hang would end in _run's own timeout, failing
    assert proc.returncode == 1
    info, cases = _load(tmp_path)
    (failed,) = [c for c in cases if c["status"] == "failed"]
    assert failed["case_id"] == "all_gather/fp32/64KiB"
    assert "no progress for 3 s" in failed["reason"] and "rank 1 in faulty_run" in failed["reason"]
    assert info["status"] == "aborted"


def test_a_rank_that_dies_is_reported_by_its_number(tmp_path):
    proc, _ = _faulty(tmp_path, "exit", timeout="10")
    assert proc.returncode == 1
    assert "rank 1: exit code 7" in proc.stderr
    info, cases = _load(tmp_path)
    assert info["status"] in ("aborted", "interrupted") and "rank 1: exit code 7" in info["abort_reason"]
    assert cases[0]["status"] == "ok"


def test_a_wrong_result_on_one_rank_fails_the_case_on_all_and_the_run_goes_on(tmp_path):
    proc, _ = _faulty(tmp_path, "corrupt")
    assert proc.returncode == 1
    info, cases = _load(tmp_path)
    assert info["status"] == "complete"
    failed = [c for c in cases if c["status"] == "failed"]
    assert [c["case_id"] for c in failed] == ["all_gather/fp32/64KiB"]
    assert failed[0]["reason"].startswith("wrong result on rank 1") and not any(m["name"] == "busbw" for m in failed[0]["metrics"])
    assert sum(c["status"] == "ok" for c in cases) == 5


def test_a_rank_failing_to_prepare_fails_the_case_on_all(tmp_path):
    proc, _ = _faulty(tmp_path, "prepare")
    assert proc.returncode == 1
    _, cases = _load(tmp_path)
    failed = [c for c in cases if c["status"] == "failed"]
    assert len(failed) == 1 and failed[0]["reason"].startswith("rank 1: ValueError: injected fault while preparing")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_nodes_on_one_machine_join_through_torchrun(tmp_path):
    port = _free_port()
    agents = [subprocess.Popen(
        [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc-per-node", "1",
         "--rdzv-backend", "c10d", "--rdzv-endpoint", f"127.0.0.1:{port}", "--rdzv-id", f"t{port}",
         "-m", "accelbench", "run", "--backend", "cpu", "--bench", "collectives", "--suite", "quick",
         "--no-energy", "--out", str(tmp_path)],
        env=_env(OMP_NUM_THREADS="1"), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for _ in range(2)]
    outputs = [a.communicate(timeout=180)[0] for a in agents]
    assert [a.returncode for a in agents] == [0, 0], outputs[0][-2000:] + outputs[1][-2000:]
    info, cases = _load(tmp_path)  # one run folder: only rank 0 writes
    assert info["status"] == "complete" and sorted(r["node_rank"] for r in info["ranks"]) == [0, 1]
    inter = [c for c in cases if c["params"]["op"] == "sendrecv-inter"]
    assert inter and all(c["status"] == "ok" and c["facts"]["nodes"] == 2 for c in inter)
    assert all(c["status"] == "skipped" for c in cases if c["params"]["op"] == "sendrecv-intra")
    assert sum(c["status"] == "ok" for c in cases) == 36

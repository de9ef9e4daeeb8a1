"""Other load on the host (accelbench/contention.py), measured against a real busy process."""
import json
import subprocess
import sys
import time

import pytest

from accelbench.contention import MIN_WINDOW_S, OtherLoad, loaded, process_group_cpu_s

from conftest import REPO, bench_cmd

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/stat")


def busy_neighbour() -> subprocess.Popen:
    neighbour = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    time.sleep(0.3)  # started and spinning
    return neighbour


def spin(seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def test_a_busy_neighbour_counts_and_this_process_own_work_does_not():
    load = OtherLoad.start()
    spin(1.0)  # this process's own CPU time: not other load
    own = load.stop()
    neighbour = busy_neighbour()
    try:
        load = OtherLoad.start()
        time.sleep(1.0)
        beside = load.stop()
    finally:
        neighbour.kill()
    assert own is not None and beside is not None
    assert beside - own >= 0.5, (own, beside)  # one spinning process: about one CPU more
    assert loaded(beside) and not loaded(None)


def test_a_window_too_short_for_the_tick_gives_no_figure():
    load = OtherLoad.start()
    time.sleep(MIN_WINDOW_S / 4)
    assert load.stop() is None


def test_a_case_run_beside_a_busy_process_records_it_and_says_so(tmp_path):
    neighbour = busy_neighbour()
    try:
        out = subprocess.run(bench_cmd("run", "--backend", "cpu", "--bench", "gemm", "--suite", "quick", "--case",
                                       "fp32/square/256", "--out", str(tmp_path), "--no-report", "--no-energy",
                                       "--min-time", "1"), capture_output=True, text=True, cwd=REPO, timeout=300)
    finally:
        neighbour.kill()
    assert out.returncode == 0, out.stderr[-2000:]
    [run] = list(tmp_path.iterdir())
    records = [json.loads(line) for line in (run / "cases.jsonl").read_text().splitlines()]
    assert records and all(r["other_load"] is not None and r["other_load"] >= 0.5 for r in records), \
        [r["other_load"] for r in records]
    assert "beside other load" in out.stderr + out.stdout


def test_a_process_group_doing_the_cases_own_work_is_not_other_load():
    # A server the run started (serve: its engine, in a process group of its own) spins; counted
    # as the case's own work, the load beside it is what remains.
    server = subprocess.Popen([sys.executable, "-c", "while True: pass"], start_new_session=True)
    try:
        time.sleep(0.3)
        used = process_group_cpu_s(server.pid)
        counted_out = OtherLoad.start(also=lambda: process_group_cpu_s(server.pid))
        counted_in = OtherLoad.start()
        time.sleep(1.0)
        beside_ours, beside_all = counted_out.stop(), counted_in.stop()
        assert process_group_cpu_s(server.pid) - used >= 0.5  # it spun about one CPU
    finally:
        server.kill()
    assert beside_all - beside_ours >= 0.5, (beside_ours, beside_all)

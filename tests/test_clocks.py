"""Clocks per case and clock-normalized efficiency, with fake telemetry; and the timing loop's
start events, which never sit on an idle device queue (a fake device that logs its queue)."""
import itertools
import time

import pytest

from accelbench.benchmark import Work
from accelbench.energy import PowerSampler
from accelbench.metrics import clock_metrics
from accelbench.records import ClockRecord, DeviceState
from accelbench.specs import lookup_spec
from accelbench.stats import SampleStats
from accelbench.telemetry import Telemetry
from accelbench.timing import timed_batch


class ClockedDevice(Telemetry):
    """Telemetry whose SM clock steps through `sm` (and memory clock `mem`) on each read."""

    reader = "fake"

    def __init__(self, sm, mem=2619.0):
        self.sm, self.mem, self.read = itertools.cycle(sm), mem, []

    def energy_j(self):
        return None

    def power_w(self):
        return None

    def state(self):
        clock = next(self.sm)
        self.read.append(clock)
        return DeviceState(sm_clock_mhz=clock, mem_clock_mhz=self.mem)

    def availability(self):
        return {}


def test_the_sampler_averages_the_clocks_it_read_and_keeps_the_minimum():
    device = ClockedDevice([1980.0, 1500.0, 1755.0])
    with PowerSampler(device, interval_s=0.01, power=False) as sampler:
        time.sleep(0.08)
    clocks = sampler.trace.clocks()
    assert clocks.readings == len(device.read) >= 3
    assert clocks.sm_avg_mhz == pytest.approx(sum(device.read) / len(device.read))
    assert clocks.sm_min_mhz == 1500.0 and clocks.mem_avg_mhz == 2619.0


def test_a_window_shorter_than_the_interval_still_reads_its_start_and_end():
    device = ClockedDevice([1980.0, 1400.0])
    with PowerSampler(device, interval_s=10.0, power=False) as sampler:
        pass
    assert sampler.trace.clocks().readings == 2 and sampler.trace.clocks().sm_min_mhz == 1400.0


def test_no_readable_clock_means_no_clock_record():
    class Blind(ClockedDevice):
        def state(self):
            return DeviceState()
    with PowerSampler(Blind([0.0]), interval_s=0.01, power=False) as sampler:
        pass
    assert sampler.trace.clocks() is None and clock_metrics(Work(flops=1.0), None, None, None) == []


def test_clock_normalized_efficiency_scales_the_peak_to_the_average_clock():
    spec = lookup_spec("NVIDIA H100 80GB HBM3")
    assert spec.reference_clock("bf16") == 1830.0 and spec.reference_clock("fp32") == 1980.0
    flops = 2 * 8192 ** 3
    stats = SampleStats.from_samples([flops / 700e12] * 3)  # 700 TFLOP/s
    metrics = {m.name: m for m in clock_metrics(Work(flops=flops, flops_dtype="bf16"), stats,
                                                ClockRecord(readings=5, sm_avg_mhz=1465.0, sm_min_mhz=1410.0,
                                                            mem_avg_mhz=2619.0), spec)}
    expected = 100 * 700e12 / (989.4e12 * 1465.0 / 1830.0)
    assert metrics["clock_norm_eff"].value == pytest.approx(expected) and metrics["clock_norm_eff"].unit == "%"
    assert "1465 MHz" in metrics["clock_norm_eff"].note and "1830 MHz" in metrics["clock_norm_eff"].note
    assert metrics["sm_clock_avg"].value == 1465.0 and metrics["sm_clock_min"].value == 1410.0
    # A device whose datasheet names no clock (Gaudi 2): the clocks, and no normalized figure.
    gaudi = lookup_spec("GAUDI2")
    names = [m.name for m in clock_metrics(Work(flops=flops, flops_dtype="bf16"), stats,
                                           ClockRecord(readings=1, sm_avg_mhz=1600.0), gaudi)]
    assert "sm_clock_avg" in names and "clock_norm_eff" not in names


def test_a_case_records_the_clocks_of_its_timed_samples(cpu_backend, make_runner, monkeypatch):
    from accelbench.microbench.gemm import gemm_case, Gemm
    device = ClockedDevice([1200.0, 1000.0])
    monkeypatch.setattr(cpu_backend, "telemetry", lambda: device)
    rec = make_runner(cpu_backend, energy=False).run_case(Gemm(), gemm_case("square", "fp32", 32, 32, 32, "x"))
    assert rec.status == "ok" and rec.clocks is not None and rec.clocks.readings >= 2
    assert rec.clocks.sm_min_mhz == 1000.0 and 1000.0 <= rec.clocks.sm_avg_mhz <= 1200.0
    assert rec.metric("sm_clock_avg").value == rec.clocks.sm_avg_mhz


class QueueLog:
    """A device that logs what is queued on it: 'hold' (device-side wait), 'start'/'end' events,
    'call', 'sync'. An event recorded right after a sync, with nothing held before it, would
    timestamp on an idle device."""

    name = "fake"

    def __init__(self):
        self.log = []

    def hold_queue(self):
        self.log.append("hold")

    def synchronize(self):
        self.log.append("sync")

    def mark_step(self):
        pass

    def flush_cache(self):
        self.log.append("flush")

    def event(self):
        log = self.log

        class Event:
            def record(self):
                log.append("event")

            def seconds_until(self, later):
                return 1e-6
        return Event()


@pytest.mark.parametrize("flush", [False, True])
def test_no_start_event_is_recorded_on_an_idle_queue(flush):
    device = QueueLog()
    for _ in range(3):
        timed_batch(device, lambda: device.log.append("call"), 4, flush)
    # After every synchronize (and at the very start), device work comes before the next event.
    idle = True
    for entry in device.log:
        if entry == "event":
            assert not idle, device.log
        idle = entry == "sync" if entry in ("sync", "hold", "call", "flush") else idle
    assert device.log.count("hold") == 3


def run_logged(cpu_backend, make_runner, monkeypatch, regime):
    """A GEMM case under `regime`, logging each call of the work, the idle gap and the start of sampling."""
    import accelbench.harness as harness
    from accelbench.microbench.gemm import Gemm, gemm_case
    from accelbench.timing import REGIMES
    log = []

    class Logged(Gemm):
        def matmul(self, a, b, out):
            log.append("call")
            return super().matmul(a, b, out)

    real_sample = harness.sample
    monkeypatch.setattr(harness, "cool_down", lambda seconds: log.append(f"gap {seconds}"))
    monkeypatch.setattr(harness, "sample", lambda *a, **k: log.append("sample") or real_sample(*a, **k))
    rec = make_runner(cpu_backend, energy=False, regimes=(REGIMES[regime],)).run_case(
        Logged(), gemm_case("square", "fp32", 32, 32, 32, "x"))
    return rec, log


def test_burst_idles_warms_up_briefly_then_samples_and_sustained_does_neither(cpu_backend, make_runner, monkeypatch):
    rec, log = run_logged(cpu_backend, make_runner, monkeypatch, "burst")
    assert rec.status == "ok" and rec.method.regime == "burst" and rec.method.cooldown_s == 1.0
    gap, start = log.index("gap 1.0"), log.index("sample")
    assert log.count("gap 1.0") == 1 and gap < start
    assert log[gap + 1:start].count("call") >= 2  # the short warm-up that wakes the clocks
    assert log[:gap].count("call") >= 2  # the usual warm-up (compiling, autotuning) came first
    rec, log = run_logged(cpu_backend, make_runner, monkeypatch, "sustained")
    assert rec.method.regime == "sustained" and rec.method.cooldown_s is None
    assert not [e for e in log if e.startswith("gap")]


def test_flush_always_flushes_a_working_set_that_does_not_fit_the_cache(cpu_backend, make_runner, monkeypatch):
    from accelbench.microbench.gemm import Gemm, gemm_case
    monkeypatch.setattr(cpu_backend, "cache_bytes", lambda: 1024)  # a 32^3 GEMM's operands exceed it
    case = gemm_case("square", "fp32", 32, 32, 32, "x")
    assert make_runner(cpu_backend, energy=False).run_case(Gemm(), case).method.cache.startswith("not flushed")
    rec = make_runner(cpu_backend, energy=False, flush_always=True).run_case(Gemm(), case)
    assert rec.method.cache.startswith("flushed before each call (--flush always")


def test_several_regimes_measure_each_case_in_each_and_keep_their_figures_apart(cpu_backend, make_runner, monkeypatch):
    import accelbench.harness as harness
    from accelbench.microbench.gemm import Gemm, gemm_case
    from accelbench.reports.regimes import regime_table
    from accelbench.store import cases_frame, load_run
    from accelbench.timing import REGIMES
    monkeypatch.setattr(harness, "cool_down", lambda seconds: None)
    device = ClockedDevice([1500.0])
    monkeypatch.setattr(cpu_backend, "telemetry", lambda: device)
    monkeypatch.setattr(type(device), "state", lambda self: DeviceState(sm_clock_mhz=1500.0, sm_clock_max_mhz=2000.0))
    runner = make_runner(cpu_backend, energy=False, regimes=(REGIMES["sustained"], REGIMES["burst"]))
    plan = [(Gemm(), gemm_case("square", "fp32", 32, 32, 32, n)) for n in ("a", "b")]
    records = runner.run(plan, repeats=2).records
    # A case's regimes follow each other; sustained keeps the plain id, burst is marked.
    assert [(r.case_id.rsplit("/", 1)[1], r.method.regime, r.repeat) for r in records] == [
        ("a", "sustained", 1), ("a@burst", "burst", 1), ("b", "sustained", 1), ("b@burst", "burst", 1),
        ("a", "sustained", 2), ("a@burst", "burst", 2), ("b", "sustained", 2), ("b@burst", "burst", 2)]
    assert records[0].metric("sm_clock_of_max").value == pytest.approx(75.0)
    table = regime_table(cases_frame([load_run(runner.writer.directory)]))
    assert [row[1].rsplit("/", 1)[1] for row in table.rows] == ["a", "b"]  # one row per case, regimes side by side
    assert table.columns[2:4] == ["sustained: figure", "sustained: SM clock [MHz]"]
    assert table.columns[-1] == "burst ÷ sustained" and all(row[-1].endswith("×") for row in table.rows)
    assert all(row[4] == "75.0 %" for row in table.rows)


def test_a_run_of_one_regime_has_no_side_by_side_table(cpu_backend, make_runner):
    from accelbench.microbench.gemm import Gemm, gemm_case
    from accelbench.reports.regimes import regime_table
    from accelbench.store import cases_frame, load_run
    runner = make_runner(cpu_backend, energy=False)
    runner.run([(Gemm(), gemm_case("square", "fp32", 32, 32, 32, "a"))])
    assert regime_table(cases_frame([load_run(runner.writer.directory)])).rows == []


def test_bench_run_with_two_regimes_prints_them_side_by_side(tmp_path):
    import json
    import subprocess
    from conftest import bench_cmd
    out = subprocess.run(bench_cmd("run", "--backend", "cpu", "--suite", "quick", "--bench", "gemm", "--case",
                                   "fp32/square/128", "--regime", "sustained,burst", "--no-energy",
                                   "--out", str(tmp_path)), capture_output=True, text=True, timeout=300,
                         env={**__import__("os").environ, "COLUMNS": "200"})
    assert out.returncode == 0, out.stderr
    (run_dir,) = tmp_path.iterdir()
    assert json.loads((run_dir / "run.json").read_text())["regime"] == "sustained+burst"
    ids = [json.loads(line)["case_id"] for line in (run_dir / "cases.jsonl").read_text().splitlines()]
    assert ids == ["fp32/square/128", "fp32/square/128@burst"]
    assert "timing regimes side by side" in out.stdout + out.stderr
    assert "Timing regimes side by side" in (run_dir / "report.html").read_text()
    bad = subprocess.run(bench_cmd("run", "--backend", "cpu", "--regime", "fast"), capture_output=True, text=True)
    assert bad.returncode == 2 and "choose from sustained, burst" in bad.stderr and "Traceback" not in bad.stderr

"""Energy and telemetry on CPU: readers with stand-ins, windows with a fake counter."""
import builtins
import sys
import time
import types
from pathlib import Path

import pytest

from accelbench.benchmark import Work
from accelbench.energy import PowerTrace, energy_window, measure_idle_power
from accelbench.metrics import energy_metrics
from accelbench.records import DeviceState, EnergyRecord
from accelbench.telemetry.base import NullTelemetry, Telemetry
from accelbench.telemetry.hlml import HlmlTelemetry, HlSmiTelemetry, parse_hl_smi_csv
from accelbench.telemetry.nvml import NvmlTelemetry, decode_reasons, open_nvml
from accelbench.telemetry.rapl import open_rapl, rapl_delta_uj

DATA = Path(__file__).parent / "data"


# --- RAPL ---------------------------------------------------------------------------------------
def test_rapl_delta_handles_wrap_around():
    assert rapl_delta_uj(1_000, 5_000, 262_143_328_850) == 4_000
    # counter wrapped: 100 uJ to the top of the range, then 0..50 (inclusive of the 0 step)
    assert rapl_delta_uj(262_143_328_750, 50, 262_143_328_850) == 100 + 50 + 1


def fake_powercap(root: Path, energy_uj: int, max_uj: int = 1_000_000) -> Path:
    for name in ("intel-rapl:0", "intel-rapl:0:0"):
        d = root / name
        d.mkdir(parents=True)
        (d / "energy_uj").write_text(str(energy_uj))
        (d / "max_energy_range_uj").write_text(str(max_uj))
    return root / "intel-rapl:0"


def test_rapl_reader_accumulates_across_a_wrap(tmp_path):
    pkg = fake_powercap(tmp_path, 999_000)
    reader = open_rapl(str(tmp_path))
    assert reader.reader == "rapl" and reader.energy_source == "counter"
    start = reader.energy_j()
    (pkg / "energy_uj").write_text("500")  # wrapped past 1_000_000
    assert reader.energy_j() - start == pytest.approx((1_000_000 - 999_000 + 500 + 1) / 1e6)


def test_unreadable_rapl_is_unavailable_with_reason_never_zero(tmp_path, monkeypatch):
    fake_powercap(tmp_path, 10)
    real_open = builtins.open

    def deny(path, *a, **k):
        if str(path).endswith("energy_uj"):
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, *a, **k)

    monkeypatch.setattr(builtins, "open", deny)
    reader = open_rapl(str(tmp_path))
    assert isinstance(reader, NullTelemetry) and "root-only" in reader.reason
    assert reader.energy_j() is None and reader.energy_source is None
    assert open_rapl(str(tmp_path / "empty")).availability()["energy counter"].startswith("no: no RAPL")


# --- hl-smi and HLML -----------------------------------------------------------------------------
def test_hl_smi_csv_parsing_from_recorded_output():
    rows = parse_hl_smi_csv((DATA / "hl-smi-query.csv").read_text())
    assert len(rows) == 3
    assert rows[1]["power.draw"] == 412.0 and rows[1]["temperature.aip"] == 47.0
    assert rows[0]["name"] == "HL-225" and rows[0]["clocks.max.soc"] == 1800.0
    assert rows[2]["power.draw"] is None  # N/A is absent, not zero


def test_hl_smi_reader_uses_its_device_row():
    text = (DATA / "hl-smi-query.csv").read_text()
    argv_seen = []
    reader = HlSmiTelemetry(1, run=lambda argv: argv_seen.append(argv) or text)
    assert reader.power_w() == 412.0 and reader.energy_j() is None and reader.energy_source == "sampled"
    state = reader.state()
    assert (state.sm_clock_mhz, state.temperature_c, state.power_limit_w) == (1800.0, 47.0, 600.0)
    assert argv_seen[0][0] == "hl-smi" and argv_seen[0][1].startswith("--query-aip=") and "--format=csv" in argv_seen[0]


class FakeHlml(types.SimpleNamespace):
    """Stand-in for pyhlml: the documented functions, returning mJ, mW, MHz, C."""

    def __init__(self):
        super().__init__(calls=[])

    def hlmlDeviceGetTotalEnergyConsumption(self, h):
        self.calls.append("energy")
        return 123_456

    def hlmlDeviceGetPowerUsage(self, h):
        return 350_500

    def hlmlDeviceGetClockInfo(self, h, t):
        return 1700

    def hlmlDeviceGetMaxClockInfo(self, h, t):
        return 1800

    def hlmlDeviceGetTemperature(self, h, s):
        return 51

    def hlmlDeviceGetPowerManagementDefaultLimit(self, h):
        return 600_000

    def hlmlDeviceGetCurrentClocksThrottleReasons(self, h):
        return 0x1


def test_hlml_reader_converts_units_and_reasons():
    reader = HlmlTelemetry(FakeHlml(), handle=object())
    assert reader.energy_j() == pytest.approx(123.456) and reader.power_w() == pytest.approx(350.5)
    state = reader.state()
    assert state.power_limit_w == 600.0 and state.sm_clock_mhz == 1700 and state.throttled
    assert state.throttle_reasons == ["sw_power_cap"]


# --- NVML ---------------------------------------------------------------------------------------
def test_nvml_absent_is_reported_not_a_crash(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", None)  # makes `import pynvml` raise ImportError
    reader = open_nvml(0)
    assert isinstance(reader, NullTelemetry) and "nvidia-ml-py is not installed" in reader.reason
    assert reader.energy_source is None and reader.state() == DeviceState()
    assert all(v.startswith("no:") for v in reader.availability().values())


def test_nvml_reason_bits_decode():
    assert decode_reasons(0x4 | 0x40) == ["sw_power_cap", "hw_thermal_slowdown"]
    assert DeviceState(throttle_reasons=decode_reasons(0x1)).throttled is False  # idle is not throttling
    assert DeviceState(throttle_reasons=decode_reasons(0x4)).throttled is True


def test_nvml_prefers_instantaneous_power_field():
    class Field:
        def __init__(self, mw):
            self.nvmlReturn, self.value = 0, types.SimpleNamespace(uiVal=mw)

    nvml = types.SimpleNamespace(nvmlDeviceGetFieldValues=lambda h, ids: [Field(650_000)],
                                 nvmlDeviceGetPowerUsage=lambda h: 400_000)
    assert NvmlTelemetry(nvml, object()).power_w() == 650.0
    nvml.nvmlDeviceGetFieldValues = lambda h, ids: [types.SimpleNamespace(nvmlReturn=3, value=None)]
    assert NvmlTelemetry(nvml, object()).power_w() == 400.0  # falls back to the averaged reading


# --- energy windows and efficiency -------------------------------------------------------------------
class ConstantPowerDevice(Telemetry):
    """A device drawing `watts`, with a cumulative counter that integrates it over real time."""

    reader = "fake"

    def __init__(self, watts: float, counter: bool = True, reasons=()):
        self.watts, self.counter, self.reasons, self.t0 = watts, counter, list(reasons), time.perf_counter()

    def energy_j(self):
        return (time.perf_counter() - self.t0) * self.watts if self.counter else None

    def power_w(self):
        return self.watts

    def state(self):
        return DeviceState(power_w=self.watts, throttle_reasons=self.reasons)

    def availability(self):
        return {}


class WorkCounter(Telemetry):
    """An energy counter driven by the work itself: each call of the work adds `per_call` J, each
    cache flush `per_flush` J. Wall time adds nothing, so what the window reports per call can
    only come from counting the calls it ran."""

    reader = "fake"

    def __init__(self, reasons=()):
        self.joules, self.reasons = 0.0, list(reasons)

    def energy_j(self):
        return self.joules

    def power_w(self):
        return 100.0

    def state(self):
        return DeviceState(throttle_reasons=self.reasons)

    def availability(self):
        return {}


def counted_gemm(device: WorkCounter, joules_per_call: float):
    """A GEMM benchmark each product of which adds `joules_per_call` to the device's counter."""
    from accelbench.microbench.gemm import Gemm

    class Counted(Gemm):
        def matmul(self, a, b, out):
            device.joules += joules_per_call
            return super().matmul(a, b, out)

    return Counted()


def test_energy_window_counts_the_calls_it_ran(cpu_backend):
    device = WorkCounter(reasons=["sw_power_cap"])

    def call():
        device.joules += 0.5
        time.sleep(0.001)

    rec = energy_window(cpu_backend, call, device, window_s=0.3, per_call_s=0.001, idle_w=50.0)
    assert rec.source == "counter" and rec.window_s >= 0.3 and rec.iterations > 10
    assert rec.joules / rec.iterations == pytest.approx(0.5)
    assert rec.per_call_s == pytest.approx(0.001, rel=0.5)  # timed per call inside the window
    assert rec.throttle_reasons_seen == ["sw_power_cap"] and rec.power_samples >= 2
    work = Work(flops=2e12, bytes=1e9, tokens=8)
    metrics = {m.name: m for m in energy_metrics(work, rec)}
    assert metrics["tflops_per_w"].value == pytest.approx(2e12 / 0.5 / 1e12)
    assert metrics["gbps_per_w"].value == pytest.approx(1e9 / 0.5 / 1e9)
    assert metrics["tokens_per_j"].value == pytest.approx(8 / 0.5)
    assert metrics["idle_power"].value == 50.0 and metrics["avg_power"].unit == "W"


def test_flushed_cases_flush_in_the_window_and_subtract_the_flushes(cpu_backend, make_runner, monkeypatch):
    from accelbench.microbench.gemm import gemm_case
    device = WorkCounter()
    monkeypatch.setattr(cpu_backend, "telemetry", lambda: device)
    monkeypatch.setattr(cpu_backend, "cache_bytes", lambda: 1 << 24)  # 64^3 fp32 fits: flushed
    monkeypatch.setattr(cpu_backend, "flush_cache", lambda: setattr(device, "joules", device.joules + 2.0))

    rec = make_runner(cpu_backend, energy=True, energy_window_s=0.2).run_case(
        counted_gemm(device, 0.25), gemm_case("square", "fp32", 64, 64, 64, "x"))
    assert rec.status == "ok" and rec.method.cache.startswith("flushed")
    e = rec.energy
    assert e.flushed and e.flush_joules == pytest.approx(2.0 * e.iterations)
    assert e.joules / e.iterations == pytest.approx(0.25)  # the GEMM's energy, not the flushes'
    assert rec.metric("energy_per_call").value == pytest.approx(0.25)
    # The window's calls run as the timed ones did (each flushed, counted above), so no slower than
    # they. Not "no faster": on a machine shared with other work each timed call, alone between two
    # flushes, can lose a whole scheduler slice (every sample 16 ms for a 64^3 GEMM, seen here), while
    # the window's thousands of calls back to back lose only their share.
    assert e.per_call_s <= 1.5 * max(rec.samples_s)


def test_energy_window_without_counter_integrates_sampled_power(cpu_backend):
    rec = energy_window(cpu_backend, lambda: None, ConstantPowerDevice(80.0, counter=False), 0.25, 1e-4, None)
    assert rec.source == "sampled" and rec.joules == pytest.approx(80.0 * rec.window_s)
    assert {m.note for m in energy_metrics(Work(flops=1.0), rec)} == {"from sampled power"}


def test_no_energy_source_means_no_window(cpu_backend):
    calls = []
    assert energy_window(cpu_backend, lambda: calls.append(1), NullTelemetry("none"), 1.0, 1e-3, None) is None
    assert calls == [] and measure_idle_power(NullTelemetry("none")) is None


def test_idle_power_from_counter():
    assert measure_idle_power(ConstantPowerDevice(60.0), seconds=0.2) == pytest.approx(60.0, rel=0.05)


def test_power_trace_time_weighted_mean():
    trace = PowerTrace(times=[0.0, 1.0, 3.0], watts=[100.0, 200.0, 200.0])
    assert trace.mean_w(0.0, 3.0) == pytest.approx((150.0 * 1 + 200.0 * 2) / 3)


def test_harness_attaches_energy_and_flags_throttling(cpu_backend, make_runner, monkeypatch):
    from accelbench.microbench.gemm import gemm_case
    device = WorkCounter(reasons=["sw_power_cap"])
    monkeypatch.setattr(cpu_backend, "telemetry", lambda: device)
    monkeypatch.setattr(cpu_backend, "cache_bytes", lambda: 1024)  # never flushed

    rec = make_runner(cpu_backend, energy=True, energy_window_s=0.2).run_case(
        counted_gemm(device, 0.125), gemm_case("square", "fp32", 64, 64, 64, "x"))
    assert rec.status == "ok" and rec.energy is not None and rec.throttled
    assert rec.metric("tflops_per_w").value == pytest.approx(2 * 64**3 / 0.125 / 1e12)


def test_a_cap_seen_only_during_the_timed_samples_is_flagged_without_energy(cpu_backend, make_runner, monkeypatch):
    from accelbench.microbench.gemm import Gemm, gemm_case
    device = WorkCounter()
    monkeypatch.setattr(cpu_backend, "telemetry", lambda: device)

    class CapsWhileTimed(Gemm):
        def matmul(self, a, b, out):
            time.sleep(0.002)  # long enough for the 100 ms sampler to look while samples run
            return super().matmul(a, b, out)

    runner = make_runner(cpu_backend, energy=False)
    real_sample = __import__("accelbench.harness", fromlist=["sample"]).sample

    def capped_sample(*args, **kwargs):
        device.reasons = ["sw_power_cap"]
        try:
            time.sleep(0.25)
            return real_sample(*args, **kwargs)
        finally:
            device.reasons = []  # the cap clears before the state after the samples is read

    monkeypatch.setattr("accelbench.harness.sample", capped_sample)
    rec = runner.run_case(CapsWhileTimed(), gemm_case("square", "fp32", 32, 32, 32, "x"))
    assert rec.status == "ok" and rec.energy is None
    assert rec.state_after.throttle_reasons == [] and rec.throttled and "sw_power_cap" in rec.throttle_reasons


def test_a_counter_that_fails_mid_window_is_recorded_as_sampled(cpu_backend):
    class FlakyCounter(WorkCounter):
        def __init__(self):
            super().__init__()
            self.reads = 0

        def energy_j(self):
            self.reads += 1
            return 0.0 if self.reads <= 2 else None  # the source probe and the first read work

    rec = energy_window(cpu_backend, lambda: None, FlakyCounter(), 0.25, 1e-4, None)
    assert rec.source == "sampled" and rec.joules == pytest.approx(100.0 * rec.window_s)


def test_energy_record_shapes_are_what_reports_read():
    rec = EnergyRecord("counter", "nvml", 1.0, 10, 5.0, 5.0, None, None, 0)
    assert {m.name for m in energy_metrics(Work(flops=1e9), rec)} == {"avg_power", "energy_per_call", "tflops_per_w"}


def test_the_energy_of_a_watched_window_interpolates_the_counter_at_its_ends():
    # A counter read every 50 ms at a steady 400 W: 20 J a reading.
    trace = PowerTrace(counter=[(0.05 * i, 1000.0 + 20.0 * i) for i in range(41)])
    assert trace.joules_between(0.125, 1.625) == pytest.approx(400.0 * 1.5)
    assert trace.joules_between(-0.1, 1.0) is None  # not bracketed: no figure rather than a short one
    assert trace.joules_between(1.0, 2.5) is None

"""The HPU backend against the stand-in bridge (tests/standin): availability, errors, the order
and arguments of bridge calls, lazy vs eager mode, FP8 ops, bench doctor."""
import importlib
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from accelbench.backends.cpu import CpuBackend
from accelbench.backends.hpu import HpuBackend
from accelbench.cli import main
from accelbench.microbench.fp8 import Fp8Gemm, _case
from accelbench.microbench.gemm import Gemm, gemm_case

from conftest import REPO, bench_cmd

STANDIN = Path(__file__).parent / "standin"


def _forget_standin():
    for name in [m for m in sys.modules if m.startswith("habana_frameworks")]:
        del sys.modules[name]
    if hasattr(torch, "hpu"):
        del torch.hpu
    sys.modules.pop("torch.hpu", None)


@pytest.fixture
def gaudi(monkeypatch):
    """Put the stand-in on the path; returns a loader that imports it fresh with given knobs."""
    monkeypatch.syspath_prepend(str(STANDIN))
    monkeypatch.setattr(HpuBackend, "device_type", "cpu")  # the stand-in's tensors live on the CPU
    # ... and multiply at this CPU's speed: on an AVX2 CPU bf16 products run in software.
    monkeypatch.setattr(HpuBackend, "emulated_matmul_dtypes", lambda self: CpuBackend().emulated_matmul_dtypes())
    loaded = []

    for var in ("HABANA_VISIBLE_MODULES", "HLS_MODULE_ID", "PT_HPU_LAZY_MODE", "STANDIN_HPU_WRONG_SCALE_AXIS"):
        monkeypatch.delenv(var, raising=False)

    def load(name="GAUDI2", lazy=None, count="1", fp8_gemm=True, wrong_axis=False, imported=True):
        """lazy=None leaves PT_HPU_LAZY_MODE unset: eager, as current Gaudi software defaults."""
        _forget_standin()
        monkeypatch.setenv("STANDIN_HPU_NAME", name)
        monkeypatch.setenv("STANDIN_HPU_COUNT", count)
        if lazy is None:
            monkeypatch.delenv("PT_HPU_LAZY_MODE", raising=False)
        else:
            monkeypatch.setenv("PT_HPU_LAZY_MODE", lazy)
        for knob, on in (("STANDIN_HPU_NO_FP8_GEMM", not fp8_gemm), ("STANDIN_HPU_WRONG_SCALE_AXIS", wrong_axis)):
            if on:
                monkeypatch.setenv(knob, "1")
            else:
                monkeypatch.delenv(knob, raising=False)
        hf = importlib.import_module("habana_frameworks")
        if imported:
            importlib.import_module("habana_frameworks.torch")
        hf.CALLS.clear()
        loaded.append(hf)
        return hf

    yield load
    _forget_standin()


def names(calls):
    return [c[0] for c in calls]


def test_without_gaudi_software_the_error_names_what_is_missing():
    reason = HpuBackend.unavailable_reason()
    assert "habana_frameworks.torch is not importable" in reason and "install" in reason


def test_with_software_but_no_device_a_different_clear_line(gaudi):
    gaudi(count="0")
    reason = HpuBackend.unavailable_reason()
    assert "installed but no HPU is visible" in reason and "hl-smi" in reason


def test_available_with_the_standin_and_reports_generation(gaudi):
    gaudi(name="GAUDI3")
    assert HpuBackend.unavailable_reason() is None
    b = HpuBackend()
    assert b.device_name() == "GAUDI3" and b.generation == 3
    assert b.spec().name == "Intel Gaudi 3" and b.cache_bytes() == 96 * 2**20
    assert b.collectives_backend == "hccl" and b.collectives_unavailable() is None
    assert {"fp8", "bf16"} <= b.features() and "fp64" not in b.features()
    assert "graphs" not in b.features()  # eager mode, the default: HPUGraph is lazy-mode only
    assert b.versions()["habana_torch_plugin"] == "1.99.0+standin"  # from the distribution's metadata
    assert b.reference_device.type == "cpu"  # no fp64 on Gaudi: references on the host


def test_gemm_case_end_to_end_uses_hpu_events_and_lazy_mark_step(gaudi, make_runner):
    hf = gaudi(lazy="1")
    b = HpuBackend()
    rec = make_runner(b, graphs="off").run_case(Gemm(), gemm_case("square", "bf16", 64, 64, 64, "x"))
    assert rec.status == "ok", rec.reason
    assert rec.method.timer == "HPU events"
    calls = names(hf.CALLS)
    assert "mark_step" in calls and "Event.record" in calls
    # every recorded event is preceded (since the last sync) by a mark_step of the timed work,
    # and synchronize, not mark_step, is what waits before events are read
    first_sample = calls.index("Event.record")
    assert calls[first_sample + 1] != "synchronize"
    last_record = len(calls) - 1 - calls[::-1].index("Event.record")
    assert "mark_step" in calls[first_sample:last_record]
    assert "synchronize" in calls[last_record:]
    assert b.versions()["execution_mode"] == "lazy" and "graphs" in b.features()


def test_eager_mode_never_calls_mark_step(gaudi, make_runner):
    hf = gaudi(lazy="0")
    b = HpuBackend()
    rec = make_runner(b, graphs="off").run_case(Gemm(), gemm_case("square", "bf16", 64, 64, 64, "x"))
    assert rec.status == "ok"
    assert "mark_step" not in names(hf.CALLS) and "synchronize" in names(hf.CALLS)
    assert b.versions()["PT_HPU_LAZY_MODE"] == "0" and b.versions()["execution_mode"] == "eager"


def test_mode_comes_from_the_bridge_not_the_variable(gaudi, monkeypatch):
    gaudi()  # PT_HPU_LAZY_MODE unset: the stand-in, like Gaudi software 1.19+, runs eager
    assert HpuBackend().lazy is False
    gaudi(lazy="1")
    assert HpuBackend().lazy is True


def test_eager_mode_runs_with_auto_graphs_and_never_captures(gaudi, make_runner):
    hf = gaudi()
    b = HpuBackend()
    assert not hasattr(hf.torch.hpu, "HPUGraph")  # as the real bridge in eager mode
    rec = make_runner(b, graphs="auto").run_case(Gemm(), gemm_case("square", "bf16", 32, 32, 32, "x"))
    assert rec.status == "ok", rec.reason
    assert rec.method.graphs is False and not any(n.startswith("HPUGraph") for n in names(hf.CALLS))


def test_lazy_mode_replays_graphs_and_checks_them(gaudi, make_runner):
    hf = gaudi(lazy="1")
    rec = make_runner(HpuBackend(), graphs="on").run_case(Gemm(), gemm_case("square", "bf16", 32, 32, 32, "x"))
    assert rec.status == "ok", rec.reason
    assert rec.method.graphs and rec.method.graph_checked and "graph" in rec.method.graph_choice
    calls = names(hf.CALLS)
    capture = calls.index("HPUGraph.capture_begin")
    assert "synchronize" in calls[capture - 2:capture]  # nothing queued is captured
    assert "HPUGraph.replay" in calls


def test_device_1_selects_module_1_through_the_environment(gaudi, monkeypatch, tmp_path):
    hf = gaudi(imported=False)
    from accelbench.backends import resolve_backend
    b = resolve_backend("hpu", 1)
    imports = [a for n, a in hf.CALLS if n == "import"]
    assert imports == [{"HABANA_VISIBLE_MODULES": "1", "HLS_MODULE_ID": "1", "lazy": False}]
    assert b.module_id == 1 and b.device.index in (None, 0)  # never hpu:1: the bridge has device 0 only
    assert b.versions()["module_id"] == 1
    rec_calls = [a for n, a in hf.CALLS if n == "reset_peak_memory_stats"]
    assert all(a["index"] == 0 for a in rec_calls)


def test_device_cannot_change_after_the_bridge_is_imported(gaudi):
    gaudi()
    from accelbench.errors import BackendUnavailable
    with pytest.raises(BackendUnavailable, match="before the Gaudi bridge is imported"):
        HpuBackend(2)


def test_hpu_graphs_capture_then_replay(gaudi):
    hf = gaudi(lazy="1")
    b = HpuBackend()
    x, out = torch.randn(8, 8), torch.empty(8, 8)
    captured = b.capture_graph(lambda: torch.mul(x, 3.0, out=out))
    assert captured.output is out
    out.zero_()
    captured.replay()
    assert torch.equal(out, x * 3)
    assert names(hf.CALLS) == ["mark_step", "synchronize", "stream", "HPUGraph.capture_begin",
                               "HPUGraph.capture_end", "HPUGraph.replay"]


def test_fp8_per_tensor_case_calls_the_documented_ops_with_the_right_arguments(gaudi, make_runner):
    hf = gaudi(name="GAUDI3")
    b = HpuBackend()
    rec = make_runner(b, graphs="off").run_case(Fp8Gemm(), _case("tensor", "auto", "quant+gemm", "normal", (64, 128, 32)))
    assert rec.status == "ok", rec.reason
    assert rec.facts["execution"] == "torch.ops.hpu.fp8_gemm_v2 (Gaudi MME)"
    casts = [a for n, a in hf.CALLS if n == "cast_to_fp8_v2"]
    gemms = [a for n, a in hf.CALLS if n == "fp8_gemm_v2"]
    assert casts and gemms
    cast, gemm = casts[0], gemms[0]
    # cast takes the quantization multiplier, the GEMM its inverse (the dequantization scale)
    assert torch.allclose(cast["scale"] * gemm["A_scale_inv"], torch.ones(1))
    assert cast["dtype"] == torch.float8_e4m3fn and cast["stochastic_rounding"] is False
    assert gemm["trans_A"] is False and gemm["trans_B"] is True  # weights held as W = B^T (N x K)
    assert gemm["a_shape"] == (64, 128) and gemm["b_shape"] == (32, 128)
    assert gemm["A_scale_inv"].shape == (1,) and gemm["B_scale_inv"].shape == (1,)
    assert gemm["out_dtype"] == torch.bfloat16 and gemm["a_dtype"] == torch.float8_e4m3fn


def test_fp8_per_channel_scale_shapes(gaudi, make_runner):
    hf = gaudi(name="GAUDI3")
    rec = make_runner(HpuBackend(), graphs="off").run_case(Fp8Gemm(), _case("row", "auto", "gemm", "normal", (64, 128, 32)))
    assert rec.status == "ok", rec.reason
    gemm = [a for n, a in hf.CALLS if n == "fp8_gemm_v2"][0]
    assert gemm["A_scale_inv"].shape == (64, 1) and gemm["B_scale_inv"].shape == (32,)


def test_per_channel_scales_shaped_as_before_are_refused_and_fail_the_case(gaudi, make_runner, monkeypatch):
    from accelbench.fp8_engines import HpuEngine
    gaudi(name="GAUDI3")

    def old_layout(self, qa, w, mode, out):  # [1, N], the layout no public Gaudi code uses
        return out.copy_(torch.ops.hpu.fp8_gemm_v2(qa.q, False, w.q, True, None, out.dtype, qa.scale.reshape(-1, 1),
                                                   w.scale.reshape(1, -1), None, False))

    monkeypatch.setattr(HpuEngine, "gemm", old_layout)
    rec = make_runner(HpuBackend(), graphs="off").run_case(Fp8Gemm(), _case("row", "auto", "gemm", "normal", (64, 128, 32)))
    assert rec.status == "failed" and "B_scale_inv of shape (1, 32)" in rec.reason


def test_per_channel_scales_on_the_wrong_channels_fail_the_check(gaudi, make_runner):
    gaudi(name="GAUDI3", wrong_axis=True)
    rec = make_runner(HpuBackend(), graphs="off").run_case(Fp8Gemm(), _case("row", "auto", "gemm", "normal", (64, 128, 32)))
    assert rec.status == "failed" and "wrong result" in rec.reason


def test_constant_scales_use_the_scalar_overloads(gaudi, make_runner):
    hf = gaudi(name="GAUDI3")
    runner = make_runner(HpuBackend(), graphs="off")
    rec = runner.run_case(Fp8Gemm(), _case("tensor-static", "const", "quant+gemm", "normal", (64, 128, 32)))
    assert rec.status == "ok", rec.reason
    assert "constant scales" in rec.facts["execution"] and "constant scale" in rec.facts["activation_quantizer"]
    casts = [a for n, a in hf.CALLS if n == "cast_to_fp8_v2.scalar"]
    gemms = [a for n, a in hf.CALLS if n == "fp8_gemm_v2.scalar"]
    assert casts and gemms and isinstance(gemms[0]["A_scale_inv"], float)
    assert casts[0]["scale"] * gemms[0]["A_scale_inv"] == pytest.approx(1.0)
    assert "fp8_gemm_v2" not in names(hf.CALLS)  # no runtime-tensor scales on this path
    assert runner.run_case(Fp8Gemm(), _case("row", "const", "gemm", "normal", (64, 128, 32))).status == "skipped"


def test_gaudi2_mode_uses_the_240_range_and_hardware_scales(gaudi, make_runner):
    hf = gaudi(name="GAUDI2")
    rec = make_runner(HpuBackend(), graphs="off").run_case(Fp8Gemm(), _case("gaudi2", "auto", "gemm", "outliers", (64, 128, 32)))
    assert rec.status == "ok", rec.reason
    gemm = [a for n, a in hf.CALLS if n == "fp8_gemm_v2"][0]
    assert gemm["A_scale_inv"].item() in (16.0, 1.0, 1 / 16, 1 / 256)


def test_stochastic_rounding_is_passed_to_the_cast(gaudi, make_runner):
    hf = gaudi(name="GAUDI2")
    rec = make_runner(HpuBackend(), graphs="off").run_case(Fp8Gemm(), _case("gaudi2-sr", "auto", "gemm", "normal", (64, 128, 32)))
    assert rec.status == "ok", rec.reason
    assert [a["stochastic_rounding"] for n, a in hf.CALLS if n == "cast_to_fp8_v2"] == [True]


@pytest.mark.parametrize("mode, why", [
    ("tensor", "saturates at ±240"),  # OCP E4M3 range on Gaudi 2
    ("block", "per-tensor or per-token"),
    ("mx", "per-tensor or per-token"),
    ("tensor-fastacc", "fast-accumulation"),
    ("tensor-e5m2", "saturates at ±240"),  # its E4M3 weights have the OCP range
])
def test_modes_gaudi2_cannot_do_are_skipped_with_the_reason(gaudi, make_runner, mode, why):
    gaudi(name="GAUDI2")
    rec = make_runner(HpuBackend()).run_case(Fp8Gemm(), _case(mode, "auto", "gemm", "normal", (64, 128, 32)))
    assert rec.status == "skipped" and why in rec.reason, rec.reason


def test_e5m2_runs_on_gaudi2_labelled_as_not_hardware_accelerated(gaudi, make_runner, monkeypatch):
    from accelbench.quant import E4M3_GAUDI2, E5M2, MODES, OperandScheme, ScalingMode
    mode = ScalingMode("e5m2-g2", OperandScheme(E5M2, (0, 0)), OperandScheme(E4M3_GAUDI2, (0, 0), "gaudi2"))
    monkeypatch.setitem(MODES, mode.name, mode)
    gaudi(name="GAUDI2")
    rec = make_runner(HpuBackend(), graphs="off").run_case(Fp8Gemm(), _case(mode.name, "auto", "gemm", "normal", (64, 128, 32)))
    assert rec.status == "ok", rec.reason
    assert rec.facts["hardware_scaling"] == "E5M2 on Gaudi 2: scale not hardware-accelerated (only scale 1 is)"


def test_an_op_the_bridge_lacks_skips_the_case(gaudi, make_runner):
    gaudi(name="GAUDI3", fp8_gemm=False)
    rec = make_runner(HpuBackend()).run_case(Fp8Gemm(), _case("tensor", "auto", "gemm", "normal", (64, 128, 32)))
    assert rec.status == "skipped" and "no torch.ops.hpu.fp8_gemm_v2" in rec.reason


@pytest.mark.parametrize("lazy", [None, "1"])
def test_bench_run_quick_and_doctor_end_to_end_on_the_standin(gaudi, tmp_path, lazy):
    from accelbench.store import load_run
    gaudi(name="GAUDI2", lazy=lazy)
    result = CliRunner().invoke(main, ["run", "--backend", "hpu", "--suite", "quick", "--bench", "gemm,fp8",
                                       "--case", "256", "--out", str(tmp_path), "--no-report",
                                       "--min-time", "0", "--max-time", "0.02"])
    assert result.exit_code == 0, result.output
    (run_dir,) = tmp_path.iterdir()
    run = load_run(run_dir)
    assert run.info.versions["execution_mode"] == ("lazy" if lazy else "eager")
    ok = [c for c in run.cases if c.status == "ok"]
    assert ok and all(c.method.graphs == bool(lazy) or not c.method.graphs for c in ok)
    assert not any("HPUGraph" in (c.reason or "") for c in run.cases)
    if lazy:
        assert any(c.method.graphs for c in ok)  # short cases replay graphs where they measured faster
    else:
        assert not any(c.method.graphs for c in ok)
    result = CliRunner().invoke(main, ["doctor", "--backend", "hpu"])
    assert "[ok  ] GEMM vs CPU" in result.output and "[ok  ] event timing" in result.output
    assert "[ok  ] graph replay" in result.output and "[ok  ] collectives: hccl importable" in result.output
    assert "[ok  ] FP8: torch.ops.hpu.fp8_gemm_v2" in result.output
    assert "[warn] energy telemetry" in result.output  # no HLML, no hl-smi here
    assert result.exit_code == 0, result.output


def doctor_check(name):
    from accelbench.doctor import run_doctor
    return next(r for r in run_doctor("hpu") if r.name == name)


def test_doctor_fails_when_the_timed_result_is_dropped(gaudi, monkeypatch):
    gaudi(lazy="1")
    from accelbench import doctor
    assert doctor_check("event timing").ok
    monkeypatch.setattr(doctor, "_timed_gemms", lambda x, y, count: None)  # as a lazy bridge dropping the work
    check = doctor_check("event timing")
    assert check.ok is False and "did not produce their result" in check.detail


def test_doctor_fails_when_a_graph_would_capture_queued_work(gaudi, monkeypatch):
    gaudi(lazy="1")
    assert doctor_check("graph replay").ok
    monkeypatch.setattr(HpuBackend, "synchronize", lambda self: None)  # never waits: work stays queued
    check = doctor_check("graph replay")
    assert check.ok is False and "pending" in check.detail


def test_doctor_fp8_check_catches_scales_on_the_wrong_channels(gaudi):
    gaudi(name="GAUDI2")
    assert doctor_check("FP8").ok
    gaudi(name="GAUDI2", wrong_axis=True)
    check = doctor_check("FP8")
    assert check.ok is False and "differs from the reference" in check.detail


def test_doctor_without_gaudi_software_says_what_is_missing():
    proc = subprocess.run(bench_cmd("doctor", "--backend", "hpu"), capture_output=True, text=True, cwd=REPO, timeout=120)
    assert proc.returncode == 2
    assert "[FAIL] software: Intel Gaudi software not found" in proc.stdout
    assert "[--  ] GEMM vs CPU: not run" in proc.stdout and "Traceback" not in proc.stderr

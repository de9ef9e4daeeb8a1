"""The HPU backend against the stand-in bridge (tests/standin): availability, errors, the order
and arguments of bridge calls, lazy vs eager mode, FP8 ops, bench doctor."""
import importlib
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

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
    loaded = []

    def load(name="GAUDI2", lazy="1", count="1", fp8_gemm=True):
        _forget_standin()
        monkeypatch.setenv("STANDIN_HPU_NAME", name)
        monkeypatch.setenv("STANDIN_HPU_COUNT", count)
        monkeypatch.setenv("PT_HPU_LAZY_MODE", lazy)
        if not fp8_gemm:
            monkeypatch.setenv("STANDIN_HPU_NO_FP8_GEMM", "1")
        else:
            monkeypatch.delenv("STANDIN_HPU_NO_FP8_GEMM", raising=False)
        if hasattr(torch.ops, "hpu"):
            pass
        hf = importlib.import_module("habana_frameworks")
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
    assert {"fp8", "graphs", "bf16"} <= b.features() and "fp64" not in b.features()
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
    assert b.versions()["lazy_mode"] is True


def test_eager_mode_never_calls_mark_step(gaudi, make_runner):
    hf = gaudi(lazy="0")
    b = HpuBackend()
    rec = make_runner(b, graphs="off").run_case(Gemm(), gemm_case("square", "bf16", 64, 64, 64, "x"))
    assert rec.status == "ok"
    assert "mark_step" not in names(hf.CALLS) and "synchronize" in names(hf.CALLS)
    assert b.versions()["PT_HPU_LAZY_MODE"] == "0"


def test_hpu_graphs_capture_then_replay(gaudi):
    hf = gaudi()
    b = HpuBackend()
    x, out = torch.randn(8, 8), torch.empty(8, 8)
    replay = b.capture_graph(lambda: torch.mul(x, 3.0, out=out))
    out.zero_()
    replay()
    assert torch.equal(out, x * 3)
    assert names(hf.CALLS) == ["stream", "HPUGraph.capture_begin", "HPUGraph.capture_end", "HPUGraph.replay"]


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
    assert gemm["A_scale_inv"].shape == (64, 1) and gemm["B_scale_inv"].shape == (1, 32)


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
    ("tensor-e5m2", "E5M2 only with scale 1"),
])
def test_modes_gaudi2_cannot_do_are_skipped_with_the_reason(gaudi, make_runner, mode, why):
    gaudi(name="GAUDI2")
    rec = make_runner(HpuBackend()).run_case(Fp8Gemm(), _case(mode, "auto", "gemm", "normal", (64, 128, 32)))
    assert rec.status == "skipped" and why in rec.reason, rec.reason


def test_an_op_the_bridge_lacks_skips_the_case(gaudi, make_runner):
    gaudi(name="GAUDI3", fp8_gemm=False)
    rec = make_runner(HpuBackend()).run_case(Fp8Gemm(), _case("tensor", "auto", "gemm", "normal", (64, 128, 32)))
    assert rec.status == "skipped" and "no torch.ops.hpu.fp8_gemm_v2" in rec.reason


def test_bench_run_and_doctor_end_to_end_on_the_standin(gaudi, tmp_path):
    gaudi(name="GAUDI2")
    result = CliRunner().invoke(main, ["run", "--backend", "hpu", "--bench", "gemm", "--case", "bf16/square/128",
                                       "--out", str(tmp_path), "--min-time", "0", "--max-time", "0.05"])
    assert result.exit_code == 0, result.output
    result = CliRunner().invoke(main, ["doctor", "--backend", "hpu"])
    assert "[ok  ] GEMM vs CPU" in result.output and "[ok  ] event timing" in result.output
    assert "[ok  ] graph replay" in result.output and "[ok  ] collectives: hccl importable" in result.output
    assert "[ok  ] FP8: torch.ops.hpu.fp8_gemm_v2" in result.output
    assert "[warn] energy telemetry" in result.output  # no HLML, no hl-smi here
    assert result.exit_code == 0, result.output


def test_doctor_without_gaudi_software_says_what_is_missing():
    proc = subprocess.run(bench_cmd("doctor", "--backend", "hpu"), capture_output=True, text=True, cwd=REPO, timeout=120)
    assert proc.returncode == 2
    assert "[FAIL] software: Intel Gaudi software not found" in proc.stdout
    assert "[--  ] GEMM vs CPU: not run" in proc.stdout and "Traceback" not in proc.stderr

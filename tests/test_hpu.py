"""The HPU backend against the stand-in bridge (tests/standin), whose tensors report device `hpu`
and which refuses what Intel's bridge refuses: availability, errors, the order and arguments of
bridge calls, lazy vs eager mode, FP8 ops, bench doctor, and one test (or more) per finding of
the Gaudi review (issue "Gaudi, round two"), named `test_finding_N_...`. No test changes the
backend's device type: the stand-in's tensors are on "hpu"."""
import importlib
import json
import os
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
KNOBS = ("STANDIN_HPU_NAME", "STANDIN_HPU_COUNT", "STANDIN_HPU_NO_FP8_GEMM", "STANDIN_HPU_WRONG_SCALE_AXIS",
         "STANDIN_HPU_STRICT_FP64", "STANDIN_HPU_MEMORY_BYTES", "STANDIN_HPU_CAST_PRODUCT", "STANDIN_HPU_RELEASE",
         "STANDIN_HLML", "STANDIN_HLML_PCIE_GEN", "STANDIN_HLML_UNCORRECTED", "STANDIN_HLML_PENDING_ROWS",
         "HABANA_VISIBLE_MODULES", "HLS_MODULE_ID", "PT_HPU_LAZY_MODE", "LOCAL_RANK",
         "PT_HPU_ENABLE_LAZY_COLLECTIVES")


def _forget_standin():
    device = sys.modules.get("habana_frameworks.torch._device")
    if device is not None:
        device.uninstall()
    for name in [m for m in sys.modules if m.startswith("habana_frameworks")]:
        del sys.modules[name]
    if hasattr(torch, "hpu"):
        del torch.hpu
    sys.modules.pop("torch.hpu", None)


@pytest.fixture
def gaudi(monkeypatch):
    """Put the stand-in on the path; returns a loader that imports it fresh with given knobs."""
    monkeypatch.syspath_prepend(str(STANDIN))
    # The stand-in multiplies at this CPU's speed: on an AVX2 CPU bf16 products run in software.
    monkeypatch.setattr(HpuBackend, "emulated_matmul_dtypes", lambda self: CpuBackend().emulated_matmul_dtypes())
    for var in KNOBS:
        monkeypatch.delenv(var, raising=False)

    def load(name="GAUDI2", lazy=None, count="1", fp8_gemm=True, wrong_axis=False, imported=True, **knobs):
        """lazy=None leaves PT_HPU_LAZY_MODE unset: eager, as Gaudi software 1.21+ defaults
        (STANDIN_HPU_RELEASE, default 1.22). Other knobs by name: strict_fp64="1", ..."""
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
        for knob, value in knobs.items():  # strict_fp64="1" is STANDIN_HPU_STRICT_FP64=1; names in capitals as they are
            monkeypatch.setenv(knob if knob.isupper() else f"STANDIN_HPU_{knob.upper()}", value)
        hf = importlib.import_module("habana_frameworks")
        if imported:
            importlib.import_module("habana_frameworks.torch")
        hf.CALLS.clear()
        return hf

    yield load
    _forget_standin()


def standin_env(**extra: str) -> dict[str, str]:
    """The environment of a process that has the stand-in installed, as a Gaudi box has the bridge."""
    env = {k: v for k, v in os.environ.items() if k not in KNOBS and k not in ("RANK", "WORLD_SIZE")}
    env["PYTHONPATH"] = os.pathsep.join([str(STANDIN), str(REPO)])
    env.update(extra)
    return env


def run_python(code: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=300,
                          env=standin_env(**env))


def names(calls):
    return [c[0] for c in calls if c[0] != "acquire"]  # when the card is taken is its own test


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
    assert imports == [{"HABANA_VISIBLE_MODULES": "1", "HLS_MODULE_ID": "1", "lazy": False, "release": "1.22"}]
    assert b.module_id == 1 and b.device.index in (None, 0)  # never hpu:1: the bridge has device 0 only
    assert [a for n, a in hf.CALLS if n == "acquire"] == [{"module": 1}]
    assert b.versions()["module_id"] == 1
    rec_calls = [a for n, a in hf.CALLS if n == "reset_peak_memory_stats"]
    assert all(a["index"] == 0 for a in rec_calls)


def test_device_cannot_change_after_the_device_is_first_used(gaudi):
    gaudi()
    torch.ones(2, device=HpuBackend().device)  # the bridge takes its card on first use
    from accelbench.errors import BackendUnavailable
    with pytest.raises(BackendUnavailable, match="before this process first uses its HPU"):
        HpuBackend(2)


def test_hpu_graphs_capture_then_replay(gaudi):
    hf = gaudi(lazy="1")
    b = HpuBackend()
    x, out = torch.randn(8, 8, device=b.device), torch.empty(8, 8, device=b.device)
    hf.CALLS.clear()
    captured = b.capture_graph(lambda: torch.mul(x, 3.0, out=out))
    assert captured.output is out and out.device.type == "hpu"
    out.zero_()
    captured.replay()
    assert torch.equal(out.cpu(), x.cpu() * 3)
    assert names(hf.CALLS) == ["mark_step", "synchronize", "stream", "HPUGraph.capture_begin",
                               "HPUGraph.capture_end", "HPUGraph.replay"]


def test_hpu_graph_replay_writes_into_the_captured_output(gaudi):
    """A graph's output is the buffer its capture allocated: each replay's result lands there,
    also for work that allocates (no out=) and reads an earlier op's result."""
    gaudi(lazy="1")
    b = HpuBackend()
    x = torch.randn(8, 8, device=b.device)
    captured = b.capture_graph(lambda: (x * 3).sin())
    x.copy_(torch.randn(8, 8))
    captured.replay()
    assert torch.allclose(captured.output.cpu(), (x.cpu() * 3).sin())


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
    from accelbench.fp8.executors.hpu import HpuExecutor
    gaudi(name="GAUDI3")

    def old_layout(self, qa, w, mode, out):  # [1, N], the layout no public Gaudi code uses
        return out.copy_(torch.ops.hpu.fp8_gemm_v2(qa.q, False, w.q, True, None, out.dtype, qa.scale.reshape(-1, 1),
                                                   w.scale.reshape(1, -1), None, False))

    monkeypatch.setattr(HpuExecutor, "gemm", old_layout)
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
    from accelbench.fp8.formats import E4M3_GAUDI2, E5M2, MODES, OperandScheme, ScalingMode
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


# --- the Gaudi review's findings, one by one ----------------------------------------------------
def _decode_case(engine="eager", dtype="fp32"):
    from accelbench.benchmark import Case
    return Case(f"tiny-llama3/{engine}", {"model": "tiny-llama3", "engine": engine, "dtype": dtype, "fp8": "none",
                                          "batch": 1, "prompt": 16, "new_tokens": 6}, matmul_dtypes=(dtype,))


def test_finding_1_inputs_are_drawn_with_a_host_generator_onto_the_device(gaudi, make_runner):
    """torch.Generator(device="hpu") is refused; every benchmark draws through the backend's
    generator (a CPU one on Gaudi) straight into HPU tensors."""
    from accelbench.benchmark import Case
    from accelbench.e2e.decode import Decode
    from accelbench.microbench.membw import MemoryBandwidth
    gaudi(name="GAUDI3")
    b = HpuBackend()
    with pytest.raises(RuntimeError):
        torch.Generator(device=b.device)
    assert b.generator(7).device.type == "cpu"
    assert torch.randn(4, generator=b.generator(7), device=b.device).device.type == "hpu"
    runner = make_runner(b, graphs="off")
    membw = Case("torch/triad/fp32/1MiB", {"impl": "torch", "kernel": "triad", "dtype": "fp32", "array_bytes": 2**20})
    for bench, case in [(Gemm(), gemm_case("square", "fp32", 64, 64, 64, "x")),
                        (Gemm(), gemm_case("values", "fp32", 64, 64, 64, "x-full-range", "full-range")),
                        (Fp8Gemm(), _case("tensor", "auto", "gemm", "outliers", (64, 128, 32))),
                        (Fp8Gemm(), _case("tensor", "auto", "gemm", "heavy", (64, 128, 32))),
                        (MemoryBandwidth(), membw), (Decode(), _decode_case())]:
        rec = runner.run_case(bench, case)
        assert rec.status == "ok", (bench.name, case.case_id, rec.reason)


def test_finding_2_host_memory_is_pinned_for_the_hpu_by_name(gaudi, make_runner):
    from accelbench.microbench.transfer import Transfer
    hf = gaudi()
    b = HpuBackend()
    with pytest.raises(RuntimeError, match="without device='hpu'"):
        torch.ones(4).pin_memory()  # as the torch of Gaudi 1.19 on a machine without CUDA
    cases = {c.case_id: c for c in Transfer().cases("quick")}
    runner = make_runner(b, graphs="off")
    for case_id in ("h2d/pinned/1MiB", "d2h/pinned/1MiB", "h2d/pageable/1MiB", "d2d/device/1MiB"):
        rec = runner.run_case(Transfer(), cases[case_id])
        assert rec.status == "ok", (case_id, rec.reason)
    assert {a["device"] for n, a in hf.CALLS if n == "pin_memory"} == {"hpu"}


def test_finding_3_the_reference_casts_as_gaudi_does(gaudi):
    """cast_to_fp8_v2 multiplies by the reciprocal scale in the input's dtype; the reference
    quantizer's "reciprocal" cast matches it bit for bit where "divide" (exact division) does not."""
    from accelbench.fp8.formats import E4M3
    from accelbench.fp8.reference import quantize_with_scale
    gaudi(name="GAUDI3")
    gen = torch.Generator().manual_seed(5)
    x = (torch.randn(256, 512, generator=gen) * 3).to(torch.bfloat16)
    scale = torch.tensor([[x.float().abs().max().item() / 448.0 * 1.37]])
    device = HpuBackend().device
    q, _ = torch.ops.hpu.cast_to_fp8_v2(x.to(device), (1.0 / scale).reshape(1).to(device), False, False,
                                        torch.float8_e4m3fn)
    bits = q.cpu().view(torch.uint8)
    reciprocal = quantize_with_scale(x, scale, (0, 0), E4M3, "reciprocal").q.view(torch.uint8)
    divide = quantize_with_scale(x, scale, (0, 0), E4M3, "divide").q.view(torch.uint8)
    assert torch.equal(bits, reciprocal)
    assert int((bits != divide).sum()) > 0  # ties that the exact division rounds the other way


def test_finding_3_every_quick_fp8_case_on_gaudi_3_passes_its_check(gaudi, make_runner):
    gaudi(name="GAUDI3")
    runner = make_runner(HpuBackend(), graphs="off")
    records = [runner.run_case(Fp8Gemm(), case) for case in Fp8Gemm().cases("quick")]
    ran = [r for r in records if r.status != "skipped"]
    assert len(ran) >= 40 and all(r.status == "ok" for r in ran), \
        [(r.case_id, r.reason) for r in ran if r.status != "ok"]


def test_finding_4_device_n_works_after_autoload_and_is_read_when_the_card_is_taken():
    """With the autoload entry point, `import torch` imports the bridge (unless lazy mode is asked
    for); the card is chosen by the variables when the device is first used, not at import."""
    code = ("import sys, torch; print('loaded', 'habana_frameworks.torch' in sys.modules); "
            "from accelbench.backends import resolve_backend; b = resolve_backend('hpu', 1); "
            "module = b.module_id; import habana_frameworks as hf; "
            "print('acquire', [a for n, a in hf.CALLS if n == 'acquire'], module)")
    proc = run_python(code, STANDIN_HPU_COUNT="2")
    assert proc.returncode == 0, proc.stderr
    assert "loaded True" in proc.stdout and "acquire [{'module': 1}] 1" in proc.stdout
    proc = run_python("import sys, torch; print('loaded', 'habana_frameworks.torch' in sys.modules)",
                      PT_HPU_LAZY_MODE="1")
    assert "loaded False" in proc.stdout, proc.stderr  # lazy mode: the script imports the bridge itself


def test_finding_5_telemetry_reads_the_card_the_rank_took():
    """Under a launcher the bridge sets HLS_MODULE_ID per local rank: rank 1 of
    HABANA_VISIBLE_MODULES=0,1 reads module 1's energy counter (stand-in HLML: 1000 x (module+1) mJ)."""
    code = ("from accelbench.backends import resolve_backend; b = resolve_backend('hpu', 0, local_rank=1); "
            "t = b.telemetry(); print('module', b.module_id, 'energy', t.energy_j())")
    proc = run_python(code, STANDIN_HPU_COUNT="2", STANDIN_HLML="1", LOCAL_RANK="1", HABANA_VISIBLE_MODULES="0,1")
    assert proc.returncode == 0, proc.stderr
    assert "module 1 energy 2.0" in proc.stdout
    # No variable, several cards: the card is unknown, so nothing is read rather than another card.
    code = "from accelbench.backends import resolve_backend; t = resolve_backend('hpu').telemetry(); print(t.energy_j(), t.reason)"
    proc = run_python(code, STANDIN_HPU_COUNT="2", STANDIN_HLML="1")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("None") and "which card" in proc.stdout


def test_hlml_health_facts_fail_a_degraded_card_and_name_what_hlml_cannot_read():
    """HLML's health facts through the HPU backend's telemetry (stand-in HLML): a healthy card has no
    finding and says the corrected ECC count is unreadable (HLML does not support it); a link at Gen3 of
    its Gen5, an uncorrected ECC error and a pending row replacement each fail it, with their reasons."""
    code = ("from accelbench.backends import resolve_backend; from accelbench.fleet.health import health_findings; "
            "h = resolve_backend('hpu', 0).telemetry().health(); "
            "print('facts', h.pcie_gen, h.pcie_gen_max, h.pcie_width_max, h.ecc_uncorrected_volatile, h.row_remap_pending); "
            "print('unreadable', h.unreadable); print('findings', [(f.severity, f.reason) for f in health_findings(h)])")
    healthy = run_python(code, STANDIN_HLML="1")
    assert healthy.returncode == 0, healthy.stderr
    assert "facts 5 5 16 0 False" in healthy.stdout and "findings []" in healthy.stdout
    assert "corrected ECC errors: hlmlDeviceGetTotalECCErrors is not supported here" in healthy.stdout
    degraded = run_python(code, STANDIN_HLML="1", STANDIN_HLML_PCIE_GEN="3", STANDIN_HLML_UNCORRECTED="1",
                          STANDIN_HLML_PENDING_ROWS="1")
    assert degraded.returncode == 0, degraded.stderr
    findings = degraded.stdout.split("findings", 1)[1]
    assert findings.count("'fail'") == 3 and "Gen3" in findings and "uncorrected ECC" in findings and "pending" in findings


def test_finding_6_collectives_replay_in_hpu_graphs_over_hccl(tmp_path):
    """bench run --nproc sets PT_HPU_ENABLE_LAZY_COLLECTIVES=true for its ranks, so in lazy mode a
    collective is captured and replayed in an HPU graph; the ranks join through the stand-in's hccl."""
    calls = tmp_path / "calls"
    calls.mkdir()
    proc = subprocess.run(bench_cmd("run", "--backend", "hpu", "--bench", "collectives", "--nproc", "2", "--graphs", "on",
                                    "--case", "all_reduce/fp32/64KiB", "--out", str(tmp_path / "out"), "--no-report"),
                          capture_output=True, text=True, cwd=REPO, timeout=300,
                          env=standin_env(PT_HPU_LAZY_MODE="1", STANDIN_HPU_COUNT="2", STANDIN_HPU_CALLS_DIR=str(calls)))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (run_dir,) = (tmp_path / "out").iterdir()
    (case,) = [json.loads(line) for line in (run_dir / "cases.jsonl").read_text().splitlines()]
    assert case["status"] == "ok" and case["method"]["graphs"] is True, case
    info = json.loads((run_dir / "run.json").read_text())
    assert [r["versions"]["PT_HPU_ENABLE_LAZY_COLLECTIVES"] for r in info["ranks"]] == ["true", "true"]
    assert sorted(r["versions"]["module_id"] for r in info["ranks"]) == [0, 1]  # one card per local rank
    created = [a for f in calls.iterdir() for n, a in json.loads(f.read_text()) if n == "hccl.create"]
    assert sorted(a["rank"] for a in created) == [0, 1] and {a["world_size"] for a in created} == {2}


def test_finding_6_without_lazy_collectives_a_graph_is_not_tried(gaudi, make_runner):
    gaudi(lazy="1")
    why = HpuBackend().graph_collectives_unavailable()
    assert why and "PT_HPU_ENABLE_LAZY_COLLECTIVES=true" in why
    gaudi(lazy="1", PT_HPU_ENABLE_LAZY_COLLECTIVES="true")
    assert HpuBackend().graph_collectives_unavailable() is None
    assert HpuBackend.rank_environment() == {"PT_HPU_ENABLE_LAZY_COLLECTIVES": "true"}


def test_finding_7_the_bridges_out_of_memory_error_is_recognised(gaudi, make_runner):
    gaudi(memory_bytes=str(2**20))
    b = HpuBackend()
    with pytest.raises(RuntimeError) as info:
        torch.empty(2**21, dtype=torch.uint8, device=b.device)
    assert not isinstance(info.value, torch.OutOfMemoryError) and "PT_DEVMEM" in str(info.value)
    assert b.is_out_of_memory(info.value) and not b.is_out_of_memory(RuntimeError("kernel exploded"))

    class Greedy(Gemm):  # allocates past the device in prepare, after admission
        def prepare(self, case, backend):
            torch.empty(2**21, dtype=torch.uint8, device=backend.device)
            return super().prepare(case, backend)

    rec = make_runner(b, graphs="off").run_case(Greedy(), gemm_case("square", "fp32", 32, 32, 32, "x"))
    assert rec.status == "failed" and rec.reason.startswith("out of memory: "), rec.reason


def test_finding_8_no_fp64_on_the_device(gaudi, make_runner):
    """With the strict switch the stand-in refuses fp64 on the HPU (the bridge computes it as fp32):
    every reference is computed on the host."""
    from accelbench.e2e.decode import Decode
    gaudi(name="GAUDI3", strict_fp64="1")
    b = HpuBackend()
    with pytest.raises(RuntimeError, match="STANDIN_HPU_STRICT_FP64"):
        torch.ones(2, device=b.device).double()
    runner = make_runner(b, graphs="off")
    for bench, case in [(Gemm(), gemm_case("square", "fp32", 64, 64, 64, "x")),
                        (Fp8Gemm(), _case("row", "auto", "quant+gemm", "normal", (64, 128, 32))),
                        (Fp8Gemm(), _case("tensor-delayed", "auto", "gemm", "normal", (64, 128, 32))),
                        (Decode(), _decode_case())]:
        rec = runner.run_case(bench, case)
        assert rec.status == "ok", (case.case_id, rec.reason)
        assert "on cpu" in rec.accuracy.reference or bench.name == "decode"


def test_finding_8_without_the_switch_fp64_on_the_device_is_fp32(gaudi):
    gaudi()
    x = torch.tensor([1.0 + 2.0**-40], dtype=torch.float64).to(HpuBackend().device)
    assert x.dtype == torch.float64 and x.cpu().item() == 1.0  # what Gaudi does to Double: a lie we never rely on


def test_finding_9_mode_default_by_software_line_and_the_compile_path(gaudi):
    gaudi(release="1.19")  # PT_HPU_LAZY_MODE unset: 1.19 and 1.20 run lazy
    b = HpuBackend()
    assert b.lazy and b.versions()["execution_mode"] == "lazy" and b.compile_backend() is None
    gaudi(release="1.21")
    b = HpuBackend()
    assert not b.lazy and b.compile_backend() == "hpu_backend" and "hpu_backend" in b.versions()["graphs"]


def test_the_graphs_engine_compiles_the_step_where_a_device_has_no_graphs(make_runner):
    """The eager-Gaudi path of the decode graphs engine, on CPU with torch's own "eager" compile
    backend (the stand-in's emulated device cannot be traced by dynamo; the real bridge's can)."""
    from accelbench.e2e.decode import Decode

    class CompilingCpu(CpuBackend):
        def compile_backend(self):
            return "eager"

    rec = make_runner(CompilingCpu()).run_case(Decode(), _decode_case("graphs"))
    assert rec.status == "ok", rec.reason
    assert "compiled with torch.compile(backend='eager') and called each step" in rec.facts["engine_detail"]
    plain = make_runner(CpuBackend()).run_case(Decode(), _decode_case("graphs"))
    assert plain.status == "skipped" and "no torch.compile backend" in plain.reason


def test_doctor_fails_when_the_fp8_cast_rounds_the_other_way(gaudi):
    gaudi(name="GAUDI3", cast_product="fp32")
    check = doctor_check("FP8")
    assert check.ok is False and "differ from the reference quantizer" in check.detail


def test_bench_run_as_a_user_types_it_runs_the_transfer_benchmark(tmp_path):
    proc = subprocess.run(bench_cmd("run", "--backend", "hpu", "--suite", "quick", "--bench", "transfer",
                                    "--out", str(tmp_path), "--no-report"),
                          capture_output=True, text=True, cwd=REPO, timeout=300, env=standin_env())
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (run_dir,) = tmp_path.iterdir()
    cases = [json.loads(line) for line in (run_dir / "cases.jsonl").read_text().splitlines()]
    assert cases and all(c["status"] == "ok" for c in cases), [(c["case_id"], c.get("reason")) for c in cases]

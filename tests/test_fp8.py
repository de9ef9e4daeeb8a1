import math

import pytest
import torch

from accelbench.distributions import draw
from accelbench.microbench.fp8 import Fp8Gemm, _case
from accelbench.fp8.formats import E4M3, E4M3_GAUDI2, E5M2, GAUDI2_E4M3_SCALES, MODES, OperandScheme
from accelbench.fp8.reference import block_amax, DelayedScaling, quantize, scale_from_amax

CPU = torch.device("cpu")


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def direct_reference(x, scheme):
    """An independent, loop-based quantizer: each scale block on its own."""
    rows, cols = x.shape
    bh, bw = scheme.block[0] or rows, scheme.block[1] or cols
    out = torch.empty(rows, cols, dtype=torch.float64)
    for i in range(0, rows, bh):
        for j in range(0, cols, bw):
            blk = x[i:i + bh, j:j + bw].double()
            amax = blk.abs().max().item() or 1.0
            raw = amax / scheme.fmt.max_value
            if scheme.rounding == "exact":
                s = raw
            elif scheme.rounding == "pow2":
                s = 2.0 ** math.ceil(math.log2(raw))
            elif scheme.rounding == "e8m0":
                s = 2.0 ** (math.floor(math.log2(amax)) - scheme.fmt.emax)
            else:
                allowed = sorted(GAUDI2_E4M3_SCALES)
                s = next((c for c in allowed if c >= raw), allowed[-1])
            s = torch.tensor(s, dtype=torch.float32).item()  # scales are fp32
            q = (blk.float() / s).clamp(-scheme.fmt.max_value, scheme.fmt.max_value).to(scheme.fmt.dtype)
            out[i:i + bh, j:j + bw] = q.double() * s
    return out


@pytest.mark.parametrize("name", list(MODES))
@pytest.mark.parametrize("operand", ["a", "b"])
def test_each_mode_round_trip_matches_a_direct_reference(name, operand):
    scheme = getattr(MODES[name], operand)
    x = draw("heavy", (128, 256), gen(1), CPU)
    got = quantize(x, scheme).dequantize(torch.float64)
    torch.testing.assert_close(got, direct_reference(x, scheme), rtol=0, atol=0)


def test_power_of_two_scales_are_powers_of_two_and_never_saturate():
    x = draw("heavy", (64, 256), gen(2), CPU) * 37.0
    qx = quantize(x, OperandScheme(E4M3, (1, 0), "pow2"))
    mant, _ = torch.frexp(qx.scale)
    assert torch.all(mant == 0.5)  # exact powers of two
    assert qx.saturated == 0.0
    assert torch.all(block_amax(x, (1, 0)) / qx.scale <= E4M3.max_value)


def test_e8m0_scales_follow_the_ocp_mx_rule():
    amax = torch.tensor([[1.0, 3.0, 448.0, 1000.0]])
    s = scale_from_amax(amax, E4M3, "e8m0")
    assert s.tolist() == [[2.0**-8, 2.0**-7, 2.0**0, 2.0**1]]


def test_gaudi2_scales_come_from_the_hardware_set():
    amax = torch.tensor([[0.01, 1.0, 100.0, 240.0, 241.0, 3000.0, 1e6]])
    s = scale_from_amax(amax, E4M3_GAUDI2, "gaudi2")
    assert set(s.flatten().tolist()) <= set(GAUDI2_E4M3_SCALES)
    # smallest set member that keeps amax/scale <= 240, else the largest (16)
    assert s.flatten().tolist() == [1 / 256, 1 / 16, 1.0, 1.0, 16.0, 16.0, 16.0]
    q = quantize(torch.tensor([[300.0, -5000.0]]), OperandScheme(E4M3_GAUDI2, (0, 0), "gaudi2"))
    assert q.q.float().abs().max().item() <= 240.0  # the Gaudi 2 E4M3 range


def test_e5m2_keeps_range_but_loses_precision():
    x = torch.randn(256, 256, generator=gen(3))
    err = {f.name: (quantize(x, OperandScheme(f, (0, 0))).dequantize() - x).norm() / x.norm() for f in (E4M3, E5M2)}
    assert err["e5m2"] > 1.5 * err["e4m3"]


def gemm_error(mode_name, a, b):
    m = MODES[mode_name]
    exact = a.double() @ b.double()
    c = quantize(a, m.a).dequantize(torch.float64) @ quantize(b, m.b).dequantize(torch.float64)
    return ((c - exact).norm() / exact.norm()).item()


def test_per_row_error_beats_per_tensor_on_outlier_channels():
    a = draw("outliers", (512, 1024), gen(4), CPU)
    b = torch.randn(1024, 512, generator=gen(5))
    assert gemm_error("row", a, b) < gemm_error("tensor", a, b)
    assert gemm_error("block", a, b) < gemm_error("row", a, b)


def test_delayed_scaling_saturates_and_says_so_when_amax_jumps():
    policy = DelayedScaling(history_len=4)
    calm = torch.randn(64, 64, generator=gen(6))
    for _ in range(4):
        policy.amax(block_amax(calm, (0, 0)))
    jumped = calm * 10.0
    scheme = OperandScheme(E4M3, (0, 0))
    stale = scale_from_amax(policy.amax(block_amax(jumped, (0, 0))), E4M3, "exact")
    from accelbench.fp8.reference import quantize_with_scale
    q = quantize_with_scale(jumped, stale, (0, 0), E4M3)
    assert q.saturated > 0.05
    assert quantize(jumped, scheme).saturated == 0.0  # current scaling does not


def test_delayed_case_reports_saturation(cpu_backend, make_runner, monkeypatch):
    from accelbench.fp8 import executors
    scale, state = executors.policy_scale, executors.policy_state
    # The amax jumps 10x at this step, for the reference policy and the executor's history alike.
    monkeypatch.setattr("accelbench.microbench.fp8.policy_scale",
                        lambda mode, a, previous: scale(mode, a, [p / 10 for p in previous]))
    monkeypatch.setattr("accelbench.microbench.fp8.policy_state",
                        lambda mode, previous: state(mode, [p / 10 for p in previous]))
    rec = make_runner(cpu_backend).run_case(Fp8Gemm(), _case("tensor-delayed", "auto", "gemm", "normal", (128, 128, 128)))
    assert rec.status == "ok", rec.reason
    assert rec.facts["saturated_pct"] > 1 and "clamped" in rec.facts["saturation"]


def independent_error(mode_name, shape):
    """What the fp8 case draws (same seed, same order), quantized by direct_reference."""
    m, k, n = shape
    g = torch.Generator().manual_seed((m * 7919 + k * 104729 + n) % 2**31)
    a = draw("outliers", (m, k), g, CPU).to(torch.bfloat16)
    b = torch.randn(k, n, generator=g).to(torch.bfloat16)
    mode = MODES[mode_name]
    if mode.policy != "current":
        previous = [draw("outliers", (m, k), g, CPU).to(torch.bfloat16) for _ in range(4)]
        from accelbench.fp8.executors import policy_scale
        from accelbench.fp8.reference import quantize_with_scale
        qa = quantize_with_scale(a, policy_scale(mode, a, previous), mode.a.block, mode.a.fmt).dequantize(torch.float64)
    else:
        qa = direct_reference(a, mode.a)
    qb = direct_reference(b.t().contiguous(), OperandScheme(mode.b.fmt, mode.b.block[::-1], mode.b.rounding)).t()
    exact = a.double() @ b.double()
    got = (qa @ qb).to(torch.bfloat16).double()
    return ((got - exact).norm() / exact.norm()).item()


def test_cpu_runs_every_mode_emulated_with_accuracy_and_speedup(cpu_backend, make_runner):
    runner = make_runner(cpu_backend)
    shape = (128, 256, 128)
    base = runner.run_case(Fp8Gemm(), _case("bf16", "torch", "gemm", "normal", shape))
    assert base.status == "ok"
    for mode in MODES:
        for stage in ("gemm", "quant+gemm"):
            rec = runner.run_case(Fp8Gemm(), _case(mode, "auto", stage, "outliers", shape))
            if MODES[mode].stochastic_rounding:
                assert rec.status == "skipped" and "stochastic rounding" in rec.reason
                continue
            assert rec.status == "ok", (mode, rec.reason)
            assert rec.facts["execution"].startswith("emulated")
            err = rec.metric("quant_rel_error").value
            # The reported error is the mode's: an independent loop quantizer of A and B, their
            # fp64 product rounded to the bf16 output, against the unquantized product.
            assert err == pytest.approx(independent_error(mode, shape), rel=0.02), mode
            assert rec.metric("sqnr").value == pytest.approx(-20 * math.log10(err), rel=1e-6)
            assert rec.metric("speedup").value > 0 and "bf16" in rec.metric("speedup").note
            assert "emulated in software: not a hardware speed-up" in rec.metric("speedup").note
            assert rec.metric("mfu").value is None  # no FP8 peak for an emulated run
            if stage == "gemm":
                assert rec.metric("quant_cost") is None
            else:  # what quantizing costs: this call over the GEMM alone, timed side by side
                cost = rec.metric("quant_cost")
                assert cost.value > 1.0 and "GEMM alone" in cost.note and "alternating" in cost.note


def test_a_wrong_fp8_kernel_fails_its_check(cpu_backend, make_runner, monkeypatch):
    from accelbench.fp8.executors.base import EmulatedExecutor
    monkeypatch.setattr(EmulatedExecutor, "gemm", lambda self, qa, w, mode, out: out.copy_(qa.dequantize() @ w.dequantize()))
    rec = make_runner(cpu_backend).run_case(Fp8Gemm(), _case("tensor", "auto", "gemm", "normal", (128, 128, 128)))
    assert rec.status == "failed" and "wrong result" in rec.reason and rec.metric("tflops") is None


def test_triton_impl_is_skipped_on_cpu(cpu_backend, make_runner):
    rec = make_runner(cpu_backend).run_case(Fp8Gemm(), _case("block", "triton", "gemm", "normal", (128, 128, 128)))
    assert rec.status == "skipped" and "GPU" in rec.reason


def test_standard_suite_covers_modes_stages_and_distributions():
    cases = Fp8Gemm().cases("standard")
    params = [c.params for c in cases]
    assert {p["mode"] for p in params} == set(MODES) | {"bf16"}
    assert {p["stage"] for p in params} == {"gemm", "quant+gemm"}
    assert {p["dist"] for p in params} == {"normal", "heavy", "outliers"}
    assert any(p["mode"] == "block" and p["impl"] == "triton" for p in params)
    assert len({c.case_id for c in cases}) == len(cases)


def test_cublas_block_scaling_is_not_used_where_it_was_seen_wrong():
    import types
    from accelbench.fp8.executors.cuda import CudaExecutor
    gpu = types.SimpleNamespace(supports=lambda f: f == "fp8", name="cuda")
    executor = CudaExecutor(gpu, "auto")
    block = MODES["block"]
    assert "K/128 is not a multiple of 4" in executor.unsupported(block, "auto", (256, 256, 256))  # K/128 = 2
    assert "refused M not a multiple of 4" in executor.unsupported(block, "auto", (258, 512, 256))
    assert executor.unsupported(block, "auto", (4096, 4096, 4096)) is None
    assert executor.unsupported(block, "auto", (16384, 3584, 8192)) is None  # K/128 = 28
    assert executor.unsupported(block, "triton", (256, 256, 256)) is None  # the Triton kernel has no such limit
    assert executor.unsupported(MODES["tensor"], "auto", (256, 256, 256)) is None


def test_triton_block_gemm_is_the_warp_specialized_one_on_hopper_only():
    import types
    from accelbench.fp8.executors.cuda import CudaExecutor, GLUON_BLOCK_GEMM, TRITON_BLOCK_GEMM
    hopper = types.SimpleNamespace(supports=lambda f: f in ("fp8", "wgmma"), name="cuda")
    ada = types.SimpleNamespace(supports=lambda f: f == "fp8", name="cuda")
    block = MODES["block"]
    on_hopper, elsewhere = CudaExecutor(hopper, "triton"), CudaExecutor(ada, "triton")
    assert on_hopper.warp_specialized and on_hopper.execution == GLUON_BLOCK_GEMM
    assert not elsewhere.warp_specialized and elsewhere.execution == TRITON_BLOCK_GEMM
    assert not CudaExecutor(hopper, "auto").warp_specialized  # cuBLAS cases stay cuBLAS
    # Its TMA store needs 16-byte output rows: N a multiple of 8 (bf16); the other kernel has no such limit.
    assert "multiple of 8" in on_hopper.unsupported(block, "triton", (4096, 4096, 4100))
    assert on_hopper.unsupported(block, "triton", (4096, 4096, 4096)) is None
    assert elsewhere.unsupported(block, "triton", (4096, 4096, 4100)) is None


def test_the_budget_probe_leaves_delayed_scaling_as_the_checked_call_expects(cpu_backend, make_runner):
    """On a CPU a call is made once more to measure its cost against the budget; delayed scaling's
    history moves on every call, so the probe rewinds it (Workload.rewind) or the check fails."""
    rec = make_runner(cpu_backend).run_case(Fp8Gemm(), _case("row-delayed", "auto", "quant+gemm", "normal",
                                                             (256, 256, 256)))
    assert rec.status == "ok", rec.reason

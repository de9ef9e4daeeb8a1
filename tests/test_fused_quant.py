"""The fused FP8 quantizers' interface against the reference (accelbench.fp8.reference), bit for bit,
through the emulated path (the kernels' arithmetic in torch ops: Triton does not run on a CPU); the
fused delayed quantizer's history against the reference policy's, step for step; the torchao
executor's scale rounding and its skip reasons."""
import itertools
import sys

import pytest
import torch

from accelbench.fp8 import fused
from accelbench.fp8.executors import executor_for, policy_scale, policy_state
from accelbench.fp8.executors.base import EmulatedExecutor
from accelbench.fp8.executors.torchao import TorchaoExecutor
from accelbench.fp8.fused import emulated_round_scale
from accelbench.fp8.formats import E4M3, E4M3_GAUDI2, MODES, OperandScheme
from accelbench.fp8.reference import (DelayedScaling, block_amax, quantize, quantize_with_scale, round_scale,
                                      scale_from_amax)

BLOCKS = [(0, 0), (1, 0), (1, 128)]
ROUNDINGS = ["exact", "pow2", "gaudi2"]


def scheme_of(block, rounding):
    return OperandScheme(E4M3_GAUDI2 if rounding == "gaudi2" else E4M3, block, rounding)


def activations(seed, rows=16, cols=384, spread=1.0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(rows, cols, generator=g) * spread
    x[3] *= 40.0  # an outlier row
    x[5, :128] = 0.0  # an all-zero 1x128 block: scale 1
    return x.to(torch.bfloat16)


def same_bits(a, b):
    return torch.equal(a.view(torch.uint8), b.view(torch.uint8))


def test_scale_rounding_from_the_bits_matches_the_reference():
    raw = torch.cat([torch.rand(1000) * 2.0 ** torch.randint(-30, 10, (1000,)).float(),
                     torch.tensor([2.0 ** -8, 2.0 ** -4, 1.0, 16.0, 0.75, 3.0, 1 / 256 + 1e-9, 16.5])])
    for rounding in ROUNDINGS:
        assert torch.equal(emulated_round_scale(raw, rounding), round_scale(raw, raw * 448, E4M3, rounding)), rounding
    assert round_scale(torch.tensor([1.0, 1.0000001, 0.5]), None, E4M3, "pow2").tolist() == [1.0, 2.0, 0.5]


@pytest.mark.parametrize("block,rounding", list(itertools.product(BLOCKS, ROUNDINGS)))
def test_current_scaling_fused_matches_the_reference(block, rounding):
    scheme = scheme_of(block, rounding)
    x = activations(1)
    found, ref = fused.current(x, scheme), quantize(x, scheme)
    assert same_bits(found.q, ref.q) and torch.equal(found.scale, ref.scale)


@pytest.mark.parametrize("block,rounding", list(itertools.product(BLOCKS, ROUNDINGS)))
def test_static_scaling_is_one_cast_with_the_calibrated_scale(block, rounding):
    scheme = scheme_of(block, rounding)
    calibrated = scale_from_amax(block_amax(activations(2), block), scheme.fmt, rounding)
    x = activations(3, spread=1.5)  # wider than calibration: values clamp (exact scales), identically
    found, ref = fused.static(x, calibrated, scheme), quantize_with_scale(x, calibrated, block, scheme.fmt)
    assert same_bits(found.q, ref.q) and torch.equal(found.scale, ref.scale)
    assert ref.saturated > 0 or rounding != "exact"


@pytest.mark.parametrize("reduce", ["max", "most_recent"])
@pytest.mark.parametrize("block,rounding", [((0, 0), "exact"), ((1, 0), "exact"), ((0, 0), "pow2"),
                                            ((1, 0), "gaudi2")])
def test_delayed_history_advances_as_the_reference_policy(block, rounding, reduce):
    """20 steps (more than the 16-step history) with amax jumps up and down: each step's scale and
    FP8 values equal the reference's, which takes its scale from the policy's own history."""
    scheme = scheme_of(block, rounding)
    policy = DelayedScaling(history_len=16, reduce=reduce)
    history = None
    for step in range(20):
        x = activations(10 + step, spread=[1.0, 8.0, 0.1, 30.0][step % 4] * (1 + step / 10))
        amax = block_amax(x, block)
        if history is None:
            history = DelayedScaling.empty(tuple(amax.shape), x.device, length=16, reduce=reduce)
        ref = quantize_with_scale(x, scale_from_amax(policy.amax(amax), scheme.fmt, rounding), block, scheme.fmt)
        found = fused.delayed(x, history, scheme)
        assert same_bits(found.q, ref.q) and torch.equal(found.scale, ref.scale), step
        assert history.filled == min(step + 1, 16)
        assert torch.equal(history.ring, policy.ring) and history.slot == policy.slot


def test_engine_state_follows_the_reference_policy_in_the_benchmark():
    """policy_state (what an engine carries) and policy_scale (the reference policy) give the same
    first scale, for static and delayed, per tensor and per row."""
    for name in ("tensor-static", "tensor-delayed", "row-static", "row-delayed"):
        mode = MODES[name]
        previous = [activations(20 + i, spread=1 + i) for i in range(4)]
        a = activations(30, spread=2.0)
        expected = quantize_with_scale(a, policy_scale(mode, a, previous), mode.a.block, mode.a.fmt)
        got = fused.delayed(a, policy_state(mode, previous), mode.a) if mode.policy == "delayed" \
            else fused.static(a, policy_state(mode, previous), mode.a)
        assert same_bits(got.q, expected.q), name
        engine_q = EmulatedExecutor(None).quantize_activations(a, mode, policy_state(mode, previous))
        assert same_bits(engine_q.q, expected.q), name


def test_fused_quantizers_cover_every_policy_at_tensor_row_and_block_granularity():
    covered = {name for name, mode in MODES.items() if fused.covers(mode.a)}
    assert {"tensor", "row", "block", "tensor-pow2", "row-pow2", "tensor-static", "row-static",
            "tensor-delayed", "row-delayed", "gaudi2", "gaudi2-row"} <= covered
    assert "mx" not in covered  # E8M0 1x32: no Hopper path, emulated


def test_bf16_scale_rounding_is_what_computing_the_scale_in_bf16_gives():
    """torchao divides a bf16 amax by the format's max in bf16: the reference's 'bf16' rounding."""
    for seed in range(50):
        x = activations(seed, spread=0.01 + seed)
        in_bf16 = (x.abs().amax() / E4M3.max_value).float()
        ours = round_scale(x.abs().amax().float() / E4M3.max_value, None, E4M3, "bf16")
        assert torch.equal(in_bf16, ours)


def test_torchao_cases_skip_with_the_reason(cpu_backend, monkeypatch):
    with pytest.raises(ValueError, match="cuda backend"):
        executor_for(cpu_backend, MODES["tensor"], "torchao")
    monkeypatch.setitem(sys.modules, "torchao", None)  # not installed
    engine = TorchaoExecutor(cpu_backend)
    assert engine.unsupported(MODES["tensor"], "torchao") == "torchao is not installed (pip install torchao)"
    assert [m.a.rounding for m in engine.reference_modes(MODES["row"])] == ["bf16", "exact"]


def test_torchao_modes_outside_its_configuration_are_skipped(cpu_backend):
    reason = TorchaoExecutor(cpu_backend).unsupported(MODES["block"], "torchao")
    assert "per-tensor and per-row" in reason

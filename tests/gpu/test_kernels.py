"""The Triton and Gluon kernels against the reference, on a CUDA GPU (`python -m pytest -m gpu`).

The fused FP8 quantizers promise to match the reference quantizer (accelbench.fp8.reference) bit for bit: FP8
values and scales. The GEMM kernels promise the product of the quantized operands to fp32 accumulation:
checked against the fp64 product of the dequantized operands. The STREAM kernels promise their
BabelStream result: copy and add exactly, mul and triad to one rounding (a fused multiply-add may
round once where torch rounds twice), reductions to fp32 summation.
"""
from __future__ import annotations

import itertools

import pytest
import torch

from accelbench.fp8 import fused
from accelbench.fp8.formats import E4M3, E4M3_GAUDI2, OperandScheme
from accelbench.fp8.reference import block_amax, DelayedScaling, quantize, quantize_with_scale, scale_from_amax

SHAPES = [(8192, 8192), (1024, 3584), (333, 1280)]
BLOCKS = [(0, 0), (1, 0), (1, 128)]
ROUNDINGS = ["exact", "pow2", "gaudi2"]
QUANTIZER_CASES = [(s, b, r) for s, b, r in itertools.product(SHAPES, BLOCKS, ROUNDINGS)
                   if not (b == (1, 128) and s[1] % 128)]


def scheme_of(block, rounding):
    return OperandScheme(E4M3_GAUDI2 if rounding == "gaudi2" else E4M3, block, rounding)


def draw(shape, seed, spread=1.0, dtype=torch.bfloat16):
    g = torch.Generator(device="cuda").manual_seed(seed)
    x = torch.randn(shape, generator=g, device="cuda") * spread
    x[::97] *= 50.0  # outlier rows
    return x.to(dtype)


def assert_bit_exact(found, ref):
    values = (found.q.view(torch.uint8) != ref.q.view(torch.uint8)).sum().item()
    scales = (found.scale.reshape(ref.scale.shape) != ref.scale).sum().item()
    assert (values, scales) == (0, 0), f"{values} FP8 values and {scales} scales differ from the reference"


@pytest.mark.parametrize("shape,block,rounding", QUANTIZER_CASES, ids=str)
def test_fused_current_scaling_is_bit_exact(shape, block, rounding):
    scheme = scheme_of(block, rounding)
    x = draw(shape, 1)
    assert_bit_exact(fused.current(x, scheme), quantize(x, scheme))


@pytest.mark.parametrize("shape,block,rounding", QUANTIZER_CASES, ids=str)
def test_fused_static_scaling_is_bit_exact(shape, block, rounding):
    scheme = scheme_of(block, rounding)
    calibrated = scale_from_amax(block_amax(draw(shape, 2), block), scheme.fmt, rounding)
    y = draw(shape, 3, spread=1.5)  # past the calibration: some values clamp
    assert_bit_exact(fused.static(y, calibrated, scheme), quantize_with_scale(y, calibrated, block, scheme.fmt))


@pytest.mark.parametrize("reduce", ["max", "most_recent"])
@pytest.mark.parametrize("shape,block,rounding", [c for c in QUANTIZER_CASES if c[1] != (1, 128)], ids=str)
def test_fused_delayed_scaling_follows_the_reference_step_for_step(shape, block, rounding, reduce):
    scheme, policy, history = scheme_of(block, rounding), DelayedScaling(reduce=reduce), None
    for step in range(20):  # past the 16-step history, amax jumping up and down
        z = draw(shape, 10 + step, spread=[1.0, 8.0, 0.1, 30.0][step % 4])
        amax = block_amax(z, block)
        if history is None:
            history = fused.DelayedScaling.empty(tuple(amax.shape), z.device, reduce=reduce)
        ref = quantize_with_scale(z, scale_from_amax(policy.amax(amax), scheme.fmt, rounding), block, scheme.fmt)
        assert_bit_exact(fused.delayed(z, history, scheme), ref)
    assert torch.equal(history.ring, policy.ring) and history.slot == policy.slot


def assert_product_of_quantized(out, qa, qw):
    """out against the fp64 product of the dequantized operands: fp32 accumulation, bf16 output."""
    ref = qa.dequantize(torch.float64) @ qw.dequantize(torch.float64).t()
    err = (out.double() - ref)
    rel = (err.norm() / ref.norm()).item()
    worst = (err.abs().max() / ref.abs().max()).item()
    assert rel < 4e-3 and worst < 8e-3, f"relative Frobenius error {rel:.2e}, largest error {worst:.2e} of max"


@pytest.mark.parametrize("m,n,k", [(512, 1024, 1024), (258, 640, 2048), (1000, 384, 512)])
def test_triton_block_scaled_gemm_computes_the_quantized_product(m, n, k):
    from accelbench.fp8.kernels.quantize import block_scaled_gemm
    qa = quantize(draw((m, k), 4), OperandScheme(E4M3, (1, 128)))
    qw = quantize(draw((n, k), 5), OperandScheme(E4M3, (128, 128)))
    out = torch.empty(m, n, dtype=torch.bfloat16, device="cuda")
    assert_product_of_quantized(block_scaled_gemm(qa.q, qw.q.t(), qa.scale, qw.scale.t(), out), qa, qw)


@pytest.mark.skipif(not torch.cuda.is_available() or torch.cuda.get_device_capability() != (9, 0),
                    reason="the warp-specialized Gluon kernel is for Hopper (sm_90)")
@pytest.mark.parametrize("m,n,k", [(512, 1024, 1024), (200, 640, 2048), (1000, 384, 512)])
def test_gluon_block_scaled_gemm_computes_the_quantized_product(m, n, k):
    from accelbench.fp8.kernels.block_gemm_ws import block_scaled_gemm_ws
    qa = quantize(draw((m, k), 6), OperandScheme(E4M3, (1, 128)))
    qw = quantize(draw((n, k), 7), OperandScheme(E4M3, (128, 128)))
    out = torch.empty(m, n, dtype=torch.bfloat16, device="cuda")
    assert_product_of_quantized(block_scaled_gemm_ws(qa.q, qw.q, qa.scale, qw.scale, out), qa, qw)


@pytest.mark.parametrize("rows", [1, 5, 16])
@pytest.mark.parametrize("split", [1, 2, 4])
@pytest.mark.parametrize("grain", [(0, 0), (1, 0)])
def test_fp8_gemv_computes_the_quantized_product(rows, split, grain):
    from accelbench.fp8.kernels.gemv import fp8_gemv_tc
    n, k = 1536, 4096
    qa = quantize(draw((rows, k), 8), OperandScheme(E4M3, grain))
    qw = quantize(draw((n, k), 9), OperandScheme(E4M3, grain))
    out = fp8_gemv_tc(qa.q, qw.q, qa.scale, qw.scale, torch.bfloat16, split)
    if split > 1:
        assert out.shape == (split, rows, n) and out.dtype == torch.float32
        out = out.sum(0).to(torch.bfloat16)
    assert_product_of_quantized(out, qa, qw)


@pytest.mark.parametrize("op", ["copy", "mul", "add", "triad"])
@pytest.mark.parametrize("sweeps", [1, 3])
def test_stream_elementwise_kernels_are_exact(op, sweeps):
    from accelbench.kernels.stream import elementwise
    n = (1 << 20) + 17
    a, b = draw((n,), 11, dtype=torch.float32), draw((n,), 12, dtype=torch.float32)
    c = torch.full((n,), float("nan"), device="cuda")
    scalar = 0.4
    expected = {"copy": a, "mul": scalar * a, "add": a + b, "triad": a + scalar * b}[op]
    elementwise(op, a, b, c, scalar, sweeps)
    if op in ("copy", "add"):
        assert torch.equal(c, expected)
    else:  # the kernel may fuse multiply and add (one rounding where torch rounds twice): one ulp
        bound = 2**-23 * (a.abs() + (scalar * b).abs() * (op == "triad"))
        assert ((c - expected).abs() <= bound).all()


@pytest.mark.parametrize("two", [False, True])
@pytest.mark.parametrize("sweeps", [1, 3])
def test_stream_reductions_sum_every_element(two, sweeps):
    from accelbench.kernels.stream import reduction
    n = (1 << 22) + 5
    a, b = draw((n,), 13, dtype=torch.float32), draw((n,), 14, dtype=torch.float32)
    partials = torch.empty(1024, dtype=torch.float32, device="cuda")
    found = reduction(a, b if two else None, partials, sweeps).item()
    terms = (a.double() * b.double()) if two else a.double()
    bound = 16 * 2**-24 * terms.abs().sum().item()
    assert abs(found - terms.sum().item()) <= bound

"""FP8 as data: formats, the scale sets hardware applies, how a scale is rounded and applied,
how one operand is quantized (`OperandScheme`) and the GEMM recipes the suite measures
(`ScalingMode`, `MODES`). reference.py says what each means, in torch ops.

Conventions:
- A scale is the *dequantization* multiplier: x ~ q * scale, q = saturate(x / scale) cast to
  the FP8 format. torch._scaled_mm takes these scales as is (its "scale_a/scale_b" are inverse
  scales of the quantization step); Gaudi's fp8 ops take the reciprocal (see the HPU executor).
- A scale block is (rows, cols) of the 2-D operand; 0 means the whole dimension. Activations A
  are M x K, weights B are K x N, so per-token is (1, 0) on A, per-channel is (0, 1) on B,
  DeepSeek-style blocks are (1, 128) on A and (128, 128) on B, MX blocks (1, 32) on A and
  (32, 1) on B (MX blocks always run along the reduction dimension K).
- Scale policies (of the activations; weights are quantized once, ahead of time): "current"
  (each call's own amax; other projects say "dynamic"), "delayed" (an amax history of earlier
  calls), "static" (calibrated once).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Fp8Format:
    name: str
    dtype: torch.dtype
    max_value: float  # largest finite magnitude used; values beyond saturate to it
    emax: int  # exponent of the largest power of two <= max_value (OCP MX "emax_elem")


E4M3 = Fp8Format("e4m3", torch.float8_e4m3fn, 448.0, 8)  # OCP E4M3FN
E5M2 = Fp8Format("e5m2", torch.float8_e5m2, 57344.0, 15)  # OCP E5M2
# Gaudi 2's E4M3 keeps the top exponent for Inf/NaN: same bias as OCP E4M3, top binade gone,
# so its values are exactly the OCP E4M3 values of magnitude <= 240.
E4M3_GAUDI2 = Fp8Format("e4m3-gaudi2", torch.float8_e4m3fn, 240.0, 7)
FORMATS = {f.name: f for f in (E4M3, E5M2, E4M3_GAUDI2)}

# Scale sets Gaudi applies in hardware (as dequantization multipliers). Gaudi 2 accelerates
# E4M3 scales 2^4, 2^0, 2^-4, 2^-8 and E5M2 scale 1 only; Gaudi 3 any power of two.
GAUDI2_E4M3_SCALES = (16.0, 1.0, 1.0 / 16, 1.0 / 256)
GAUDI2_E5M2_SCALES = (1.0,)

ROUNDINGS = ("exact", "pow2", "e8m0", "gaudi2", "bf16")


# How a cast applies the scale. divide: x / scale, correctly rounded in fp32 (the reference's
# definition, and what the CUDA quantizers match bit for bit). reciprocal: x * (1 / scale) with the
# reciprocal rounded to x's dtype and the product rounded to x's dtype before the FP8 cast, which is
# how Gaudi's cast_to_fp8_v2 computes (the bridge's bit-exact test models it as
# `input * scale.to(input.dtype)`); on a bf16 input a value on an FP8 rounding tie can land one FP8
# step away from the divide rule's.
CASTS = ("divide", "reciprocal")



@dataclass(frozen=True)
class OperandScheme:
    """How one operand is quantized."""

    fmt: Fp8Format
    block: tuple[int, int]
    rounding: str = "exact"
    cast: str = "divide"  # how the scale is applied (CASTS)


@dataclass(frozen=True)
class ScalingMode:
    """One FP8 GEMM recipe: how A (activations) and B (weights) are scaled, by which policy,
    and whether the accumulation is fast (reduced precision) or full."""

    name: str
    a: OperandScheme
    b: OperandScheme
    policy: str = "current"  # current / delayed / static (POLICIES), for the activations
    fast_accum: bool = False
    stochastic_rounding: bool = False  # of the activation cast (Gaudi's cast_to_fp8_v2 has it)
    description: str = ""

    @property
    def granularity(self) -> str:
        return {(0, 0): "tensor", (1, 0): "row", (1, 128): "block", (1, 32): "mx"}.get(self.a.block, str(self.a.block))


TENSOR = (0, 0)
MODES = {m.name: m for m in (
    ScalingMode("tensor", OperandScheme(E4M3, TENSOR), OperandScheme(E4M3, TENSOR),
                description="per-tensor, current amax, exact scales"),
    ScalingMode("tensor-fastacc", OperandScheme(E4M3, TENSOR), OperandScheme(E4M3, TENSOR), fast_accum=True,
                description="per-tensor with fast (reduced-precision) accumulation"),
    ScalingMode("row", OperandScheme(E4M3, (1, 0)), OperandScheme(E4M3, (0, 1)),
                description="per-token activations, per-channel weights"),
    ScalingMode("block", OperandScheme(E4M3, (1, 128)), OperandScheme(E4M3, (128, 128)),
                description="1x128 activation blocks, 128x128 weight blocks"),
    ScalingMode("mx", OperandScheme(E4M3, (1, 32), "e8m0"), OperandScheme(E4M3, (32, 1), "e8m0"),
                description="MX-style 1x32 blocks along K with power-of-two (E8M0) scales"),
    ScalingMode("tensor-pow2", OperandScheme(E4M3, TENSOR, "pow2"), OperandScheme(E4M3, TENSOR, "pow2"),
                description="per-tensor, power-of-two scales (any power of two, as Gaudi 3)"),
    ScalingMode("tensor-delayed", OperandScheme(E4M3, TENSOR), OperandScheme(E4M3, TENSOR), policy="delayed",
                description="per-tensor, delayed scaling (amax history 16, max)"),
    ScalingMode("tensor-static", OperandScheme(E4M3, TENSOR), OperandScheme(E4M3, TENSOR), policy="static",
                description="per-tensor, static scale calibrated once"),
    ScalingMode("row-pow2", OperandScheme(E4M3, (1, 0), "pow2"), OperandScheme(E4M3, (0, 1), "pow2"),
                description="per-token / per-channel, power-of-two scales"),
    ScalingMode("row-delayed", OperandScheme(E4M3, (1, 0)), OperandScheme(E4M3, (0, 1)), policy="delayed",
                description="per-token, delayed scaling (amax history 16 per row, max)"),
    ScalingMode("row-static", OperandScheme(E4M3, (1, 0)), OperandScheme(E4M3, (0, 1)), policy="static",
                description="per-token, static scales calibrated once"),
    ScalingMode("tensor-e5m2", OperandScheme(E5M2, TENSOR), OperandScheme(E4M3, TENSOR),
                description="E5M2 activations, E4M3 weights, per-tensor"),
    ScalingMode("gaudi2", OperandScheme(E4M3_GAUDI2, TENSOR, "gaudi2"), OperandScheme(E4M3_GAUDI2, TENSOR, "gaudi2"),
                description="Gaudi 2 E4M3 (max 240) with its hardware scale set {16, 1, 1/16, 1/256}"),
    ScalingMode("gaudi2-row", OperandScheme(E4M3_GAUDI2, (1, 0), "gaudi2"),
                OperandScheme(E4M3_GAUDI2, (0, 1), "gaudi2"),
                description="Gaudi 2 E4M3 per-token / per-channel, each scale from its hardware set"),
    ScalingMode("gaudi2-sr", OperandScheme(E4M3_GAUDI2, TENSOR, "gaudi2"), OperandScheme(E4M3_GAUDI2, TENSOR, "gaudi2"),
                stochastic_rounding=True,
                description="as gaudi2, activations cast with stochastic rounding (Gaudi hardware only)"),
)}

"""FP8 quantization as data: formats, scale-block shapes, scale policies and scale rounding.

One reference implementation in plain torch ops, used by every backend for emulation and as
the ground truth the fast kernels are checked against (and, later, by the decode benchmark).

Conventions:
- A scale is the *dequantization* multiplier: x ~ q * scale, q = saturate(x / scale) cast to
  the FP8 format. torch._scaled_mm takes these scales as is (its "scale_a/scale_b" are inverse
  scales of the quantization step); Gaudi's fp8 ops take the reciprocal (see HPU backend).
- A scale block is (rows, cols) of the 2-D operand; 0 means the whole dimension. Activations A
  are M x K, weights B are K x N, so per-token is (1, 0) on A, per-channel is (0, 1) on B,
  DeepSeek-style blocks are (1, 128) on A and (128, 128) on B, MX blocks (1, 32) on A and
  (32, 1) on B (MX blocks always run along the reduction dimension K).
"""
from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from typing import Optional

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


def round_scale(raw: torch.Tensor, amax: torch.Tensor, fmt: Fp8Format, rounding: str) -> torch.Tensor:
    """Turn the exact scale amax/max into the scale a mode actually uses.

    exact: amax / max. pow2: the next power of two up (never saturates), found exactly from the
    binary exponent (a log2 rounded to fp32 can land on the integer below). e8m0: the OCP MX
    rule, 2^(floor(log2 amax) - emax_elem), which may saturate the block's largest values.
    gaudi2: the smallest scale of Gaudi 2's hardware set that does not saturate, else its
    largest. bf16: amax / max rounded to bf16, as libraries that compute the scale in the
    input's dtype do (torchao)."""
    if rounding == "exact":
        return raw
    if rounding == "pow2":
        mantissa, exponent = torch.frexp(raw)  # raw = mantissa * 2^exponent, mantissa in [0.5, 1)
        return torch.ldexp(torch.ones_like(raw), torch.where(mantissa == 0.5, exponent - 1, exponent))
    if rounding == "bf16":
        return raw.to(torch.bfloat16).float()
    if rounding == "e8m0":
        return torch.exp2(torch.floor(torch.log2(amax)) - fmt.emax)
    if rounding == "gaudi2":
        allowed = sorted(GAUDI2_E5M2_SCALES if fmt.dtype == torch.float8_e5m2 else GAUDI2_E4M3_SCALES)
        # From the largest down, each scale that still fits replaces the choice: the smallest
        # that fits wins, the largest where none does. No host-to-device copy (graph-capturable).
        chosen = torch.full_like(raw, allowed[-1])
        for candidate in reversed(allowed):
            chosen = torch.where(raw <= candidate, torch.full_like(raw, candidate), chosen)
        return chosen
    raise ValueError(f"unknown scale rounding {rounding!r}; choose from {ROUNDINGS}")


def _block_dims(shape: tuple[int, int], block: tuple[int, int]) -> tuple[int, int]:
    rows, cols = shape
    bh, bw = (block[0] or rows), (block[1] or cols)
    if rows % bh or cols % bw:
        raise ValueError(f"shape {shape} is not divisible into scale blocks {block}")
    return bh, bw


def block_amax(x: torch.Tensor, block: tuple[int, int]) -> torch.Tensor:
    """amax per scale block, shaped (rows/bh, cols/bw)."""
    bh, bw = _block_dims(tuple(x.shape), block)
    r, c = x.shape
    return x.abs().reshape(r // bh, bh, c // bw, bw).amax(dim=(1, 3)).float()


def expand_blocks(scales: torch.Tensor, shape: tuple[int, int], block: tuple[int, int]) -> torch.Tensor:
    bh, bw = _block_dims(shape, block)
    return scales.repeat_interleave(bh, 0).repeat_interleave(bw, 1)


@dataclass
class Quantized:
    q: torch.Tensor  # FP8 values, same shape as the input
    scale: torch.Tensor  # per block, (rows/bh, cols/bw), fp32 dequantization multipliers
    block: tuple[int, int]
    # Count of elements clamped to the format's max, kept on the device (reading it would
    # synchronize, which a captured graph cannot do); None where the quantizer does not count.
    clamped: Optional[torch.Tensor] = None

    @property
    def saturated(self) -> float:
        """Fraction of elements clamped to the format's max."""
        return 0.0 if self.clamped is None else self.clamped.item() / self.q.numel()

    def dequantize(self, dtype: torch.dtype = torch.float32, device: Optional[torch.device] = None) -> torch.Tensor:
        """The values q * scale in `dtype`, computed on `device` (default: where q is). fp64 on a
        device without fp64 (Gaudi computes it as fp32) is never asked for: pass the host."""
        q, scale = (self.q, self.scale) if device is None else (self.q.to(device), self.scale.to(device))
        return q.to(dtype) * expand_blocks(scale.to(dtype), tuple(q.shape), self.block)


# How a cast applies the scale. divide: x / scale, correctly rounded in fp32 (the reference's
# definition, and what the CUDA quantizers match bit for bit). reciprocal: x * (1 / scale) with the
# reciprocal rounded to x's dtype and the product rounded to x's dtype before the FP8 cast, which is
# how Gaudi's cast_to_fp8_v2 computes (the bridge's bit-exact test models it as
# `input * scale.to(input.dtype)`); on a bf16 input a value on an FP8 rounding tie can land one FP8
# step away from the divide rule's.
CASTS = ("divide", "reciprocal")


def quantize_with_scale(x: torch.Tensor, scale: torch.Tensor, block: tuple[int, int], fmt: Fp8Format,
                        cast: str = "divide") -> Quantized:
    full = expand_blocks(scale, tuple(x.shape), block)
    if cast == "divide":
        scaled = x.float() / full
    elif cast == "reciprocal":
        scaled = (x * (1.0 / full).to(x.dtype)).float()
    else:
        raise ValueError(f"unknown cast {cast!r}; choose from {CASTS}")
    # Above max by more than rounding of the division: those values really are clamped.
    clamped = (scaled.abs() > fmt.max_value * (1 + 2**-10)).sum()
    q = scaled.clamp(-fmt.max_value, fmt.max_value).to(fmt.dtype)
    return Quantized(q, scale, block, clamped)


def scale_from_amax(amax: torch.Tensor, fmt: Fp8Format, rounding: str) -> torch.Tensor:
    safe = torch.where(amax > 0, amax, torch.ones_like(amax))  # an all-zero block keeps scale 1
    # A correctly rounded division, the same on every device: torch divides a tensor by a Python
    # number on CUDA as a product with its reciprocal, one ulp off at times, and with bf16 inputs
    # x / scale lands exactly on a rounding tie often enough for that ulp to flip values.
    return round_scale(safe / torch.full_like(safe, fmt.max_value), safe, fmt, rounding)


# --- scale policies --------------------------------------------------------------------------------
@dataclass
class CurrentScaling:
    """Scale from this tensor's own amax (dynamic scaling)."""

    name = "current"

    def amax(self, observed: torch.Tensor) -> torch.Tensor:
        return observed


@dataclass
class DelayedScaling:
    """Scale from the amax history of previous steps (Transformer Engine's delayed scaling):
    the current tensor's amax only enters the history after it has been quantized, so a jump
    in amax saturates until the history catches up."""

    history_len: int = 16
    reduce: str = "max"  # max or most_recent
    history: deque = field(default_factory=deque)
    name = "delayed"

    def amax(self, observed: torch.Tensor) -> torch.Tensor:
        if not self.history:
            used = observed
        elif self.reduce == "max":
            used = torch.stack(list(self.history)).amax(0)
        else:
            used = self.history[-1]
        self.history.append(observed.clone())
        while len(self.history) > self.history_len:
            self.history.popleft()
        return used


@dataclass
class StaticScaling:
    """Scale calibrated once (from a calibration tensor) and frozen."""

    calibrated: Optional[torch.Tensor] = None
    name = "static"

    def calibrate(self, amax: torch.Tensor) -> None:
        self.calibrated = amax.clone()

    def amax(self, observed: torch.Tensor) -> torch.Tensor:
        if self.calibrated is None:
            raise RuntimeError("static scaling used before calibration")
        return self.calibrated


POLICIES = {"current": CurrentScaling, "delayed": DelayedScaling, "static": StaticScaling}


@dataclass(frozen=True)
class OperandScheme:
    """How one operand is quantized."""

    fmt: Fp8Format
    block: tuple[int, int]
    rounding: str = "exact"
    cast: str = "divide"  # how the scale is applied (CASTS)


def quantize(x: torch.Tensor, scheme: OperandScheme, policy=None) -> Quantized:
    policy = policy or CurrentScaling()
    amax = policy.amax(block_amax(x, scheme.block))
    return quantize_with_scale(x, scale_from_amax(amax, scheme.fmt, scheme.rounding), scheme.block, scheme.fmt,
                               scheme.cast)


@dataclass(frozen=True)
class ScalingMode:
    """One FP8 GEMM recipe: how A (activations) and B (weights) are scaled, by which policy,
    and whether the accumulation is fast (reduced precision) or full."""

    name: str
    a: OperandScheme
    b: OperandScheme
    policy: str = "current"  # for the activations; weights are quantized once, ahead of time
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


def sqnr_db(signal_norm: float, error_norm: float) -> Optional[float]:
    if error_norm == 0 or signal_norm == 0:
        return None
    return 20.0 * math.log10(signal_norm / error_norm)

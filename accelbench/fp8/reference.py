"""FP8 quantization in plain torch ops: the one reference implementation of every scale rounding
and scale policy, used by every backend for emulation and as the ground truth the fused quantizers
and kernels are checked against (bit for bit where they promise it). The formats and recipes are
data, in formats.py.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import torch

from accelbench.fp8.formats import (GAUDI2_E4M3_SCALES, GAUDI2_E5M2_SCALES, ROUNDINGS, CASTS, Fp8Format,
                                    OperandScheme)


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
    """Scale from the amax history of previous steps (Transformer Engine's delayed scaling): the
    current tensor's amax only enters the history after it has been quantized, so a jump in amax
    saturates until the history catches up. The history is a ring of `history_len` steps of
    per-block amax, on the tensor's device (a fused quantizer reads and writes it without a host
    round trip); unwritten slots hold 0, below any amax. The first step, with nothing to delay
    from, scales from its own amax."""

    history_len: int = 16
    reduce: str = "max"  # max (over the history) or most_recent
    ring: Optional[torch.Tensor] = None  # (history_len, *scale shape), fp32; made by the first step
    slot: int = 0  # where this step's amax goes
    filled: int = 0
    name = "delayed"

    @classmethod
    def empty(cls, scale_shape: tuple[int, ...], device, length: int = 16, reduce: str = "max") -> "DelayedScaling":
        return cls(length, reduce, torch.zeros((length, *scale_shape), dtype=torch.float32, device=device))

    @property
    def length(self) -> int:
        return self.history_len

    def used_amax(self) -> torch.Tensor:
        """The amax this step's scale comes from (after at least one step)."""
        if self.reduce == "max":
            return self.ring.amax(0)
        return self.ring[(self.slot - 1) % self.history_len]

    def advance(self) -> None:
        self.slot = (self.slot + 1) % self.history_len
        self.filled = min(self.filled + 1, self.history_len)

    def record(self, amax: torch.Tensor) -> None:
        if self.ring is None:
            self.ring = torch.zeros((self.history_len, *amax.shape), dtype=torch.float32, device=amax.device)
        self.ring[self.slot] = amax.reshape(self.ring.shape[1:])
        self.advance()

    def amax(self, observed: torch.Tensor) -> torch.Tensor:
        used = observed if self.filled == 0 else self.used_amax().clone()
        self.record(observed)
        return used

    def rewinder(self):
        """A function that puts the history back as it is now (after a call made only to be timed)."""
        ring = None if self.ring is None else self.ring.clone()
        slot, filled = self.slot, self.filled

        def rewind() -> None:
            if ring is None:
                self.ring = None
            else:
                self.ring.copy_(ring)
            self.slot, self.filled = slot, filled
        return rewind


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


def quantize(x: torch.Tensor, scheme: OperandScheme, policy=None) -> Quantized:
    policy = policy or CurrentScaling()
    amax = policy.amax(block_amax(x, scheme.block))
    return quantize_with_scale(x, scale_from_amax(amax, scheme.fmt, scheme.rounding), scheme.block, scheme.fmt,
                               scheme.cast)


def reference_quantize(x: torch.Tensor, scheme: OperandScheme, scaling) -> Quantized:
    """The reference under a policy's state as an executor carries it: None (current scaling), a
    DelayedScaling (read, then this step's amax recorded), or a scale tensor (static, or any scale
    given)."""
    if scaling is None or isinstance(scaling, DelayedScaling):
        return quantize(x, scheme, scaling)
    return quantize_with_scale(x, scaling, scheme.block, scheme.fmt, scheme.cast)


def sqnr_db(signal_norm: float, error_norm: float) -> Optional[float]:
    if error_norm == 0 or signal_norm == 0:
        return None
    return 20.0 * math.log10(signal_norm / error_norm)

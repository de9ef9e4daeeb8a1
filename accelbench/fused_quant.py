"""Fused FP8 activation quantizers: what an engine times for every scale policy.

The reference (accelbench.quant) is the definition and stays plain torch ops; these are the
fast paths, one pass over the tensor where the policy allows it:
- current (dynamic): per row or 1x128 block, amax+scale+cast in one pass; per tensor, an amax
  pass then a scale-and-cast pass (a global amax must exist before any element is cast);
- static: the scale is given, so a single scale-and-cast pass;
- delayed: a tiny kernel turns the amax history into this step's scale, then one pass casts with
  it and keeps each chunk's amax, which a tiny kernel folds into the history's next slot.
Scale rounding: exact, power of two, Gaudi 2's hardware set, per tensor / per row / 1x128.

On a CUDA tensor the Triton kernels of accelbench.kernels.fp8 run; elsewhere (CPU, no Triton)
the same arithmetic in torch ops, step for step (`emulated`), so the interface and the policies'
state are tested where Triton cannot run. Both must agree with the reference bit for bit.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch

from accelbench.quant import (GAUDI2_E4M3_SCALES, OperandScheme, Quantized, block_amax, expand_blocks,
                              scale_from_amax)

FUSED_BLOCKS = ((0, 0), (1, 0), (1, 128))
FUSED_ROUNDINGS = ("exact", "pow2", "gaudi2")
ROUNDING_CODES = {"exact": 0, "pow2": 1, "gaudi2": 2}


def covers(scheme: OperandScheme) -> bool:
    """Whether a fused quantizer exists for this operand scheme (Gaudi 2 rounding: E4M3 only)."""
    if scheme.block not in FUSED_BLOCKS or scheme.rounding not in FUSED_ROUNDINGS:
        return False
    return scheme.rounding != "gaudi2" or scheme.fmt.dtype == torch.float8_e4m3fn


@dataclass
class DelayedHistory:
    """The amax history of delayed scaling as a device ring buffer, `length` steps of per-block
    amax: this step's scale comes from the steps before it (their max, or the most recent), and
    this step's amax then replaces the oldest. Starts empty: the first step scales from its own
    amax, as Transformer Engine's recipe does. Follows accelbench.quant.DelayedScaling step for
    step (tested), without a host round trip."""

    ring: torch.Tensor  # (length, *scale shape), fp32, zeros where no step has written yet
    reduce: str = "max"
    slot: int = 0  # where this step's amax goes
    filled: int = 0

    @classmethod
    def empty(cls, scale_shape: tuple[int, ...], device, length: int = 16, reduce: str = "max") -> "DelayedHistory":
        return cls(torch.zeros((length, *scale_shape), dtype=torch.float32, device=device), reduce)

    @property
    def length(self) -> int:
        return self.ring.shape[0]

    def used_amax(self) -> torch.Tensor:
        """The amax this step's scale comes from (torch ops: the reference engines' path)."""
        if self.reduce == "max":
            return self.ring.amax(0)  # unwritten slots hold 0, below any amax
        return self.ring[(self.slot - 1) % self.length]

    def advance(self) -> None:
        self.slot = (self.slot + 1) % self.length
        self.filled = min(self.filled + 1, self.length)

    def record(self, amax: torch.Tensor) -> None:
        self.ring[self.slot] = amax.reshape(self.ring.shape[1:])
        self.advance()

    def rewinder(self):
        """A function that puts the history back as it is now (after a call made only to be timed)."""
        ring, slot, filled = self.ring.clone(), self.slot, self.filled

        def rewind() -> None:
            self.ring.copy_(ring)
            self.slot, self.filled = slot, filled
        return rewind


def _triton_here(x: torch.Tensor) -> bool:
    if not x.is_cuda:
        return False
    try:
        import triton  # noqa: F401
    except ImportError:
        return False
    return True


def _scale_shape(x: torch.Tensor, block: tuple[int, int]) -> tuple[int, int]:
    rows, cols = x.shape
    bh, bw = block[0] or rows, block[1] or cols
    return rows // bh, cols // bw


# --- the kernels' arithmetic in torch ops (where Triton cannot run) -----------------------------
def emulated_round_scale(raw: torch.Tensor, rounding: str) -> torch.Tensor:
    """The kernels' scale rounding: pow2 from the float's bits (exponent up one unless the
    mantissa is zero), Gaudi 2 as a chain of selects from the largest scale down."""
    if rounding == "pow2":
        bits = raw.view(torch.int32)
        exponent = bits & 0x7F800000
        return torch.where((bits & 0x007FFFFF) != 0, exponent + 0x00800000, exponent).view(torch.float32)
    if rounding == "gaudi2":
        chosen = torch.full_like(raw, max(GAUDI2_E4M3_SCALES))
        for candidate in sorted(GAUDI2_E4M3_SCALES, reverse=True):
            chosen = torch.where(raw <= candidate, torch.full_like(raw, candidate), chosen)
        return chosen
    return raw


def _emulated_scale(amax: torch.Tensor, scheme: OperandScheme) -> torch.Tensor:
    safe = torch.where(amax > 0, amax, torch.ones_like(amax))
    return emulated_round_scale(safe / torch.full_like(safe, scheme.fmt.max_value), scheme.rounding)


def _emulated_cast(x: torch.Tensor, scale: torch.Tensor, scheme: OperandScheme) -> torch.Tensor:
    scaled = x.float() / expand_blocks(scale, tuple(x.shape), scheme.block)
    return scaled.clamp(-scheme.fmt.max_value, scheme.fmt.max_value).to(scheme.fmt.dtype)


# --- the fused quantizers -----------------------------------------------------------------------
def dynamic(x: torch.Tensor, scheme: OperandScheme) -> Quantized:
    """Current scaling: each block's scale from its own amax."""
    if _triton_here(x):
        from accelbench.kernels import fp8 as k
        q, scale = k.quantize_dynamic(x, scheme.block, scheme.fmt.dtype, scheme.fmt.max_value,
                                      ROUNDING_CODES[scheme.rounding])
        return Quantized(q, scale, scheme.block)
    scale = _emulated_scale(block_amax(x, scheme.block), scheme)
    return Quantized(_emulated_cast(x, scale, scheme), scale, scheme.block)


def static(x: torch.Tensor, scale: torch.Tensor, scheme: OperandScheme) -> Quantized:
    """The scale is known ahead (calibrated): one scale-and-cast pass."""
    scale = scale.reshape(_scale_shape(x, scheme.block)).float()
    if _triton_here(x):
        from accelbench.kernels import fp8 as k
        q = k.scaled_cast(x, scale, scheme.block, scheme.fmt.dtype, scheme.fmt.max_value)
        return Quantized(q, scale, scheme.block)
    return Quantized(_emulated_cast(x, scale, scheme), scale, scheme.block)


def delayed(x: torch.Tensor, history: DelayedHistory, scheme: OperandScheme) -> Quantized:
    """Delayed scaling: cast with the scale of the history, record this step's amax into it."""
    if history.filled == 0:  # nothing to delay from yet: current scaling, and the history starts
        quantized = dynamic(x, scheme)
        history.record(block_amax(x, scheme.block))
        return quantized
    if _triton_here(x):
        from accelbench.kernels import fp8 as k
        scale = k.scale_from_history(history.ring, history.slot, history.reduce == "most_recent",
                                     scheme.fmt.max_value, ROUNDING_CODES[scheme.rounding])
        q = k.scaled_cast(x, scale, scheme.block, scheme.fmt.dtype, scheme.fmt.max_value,
                          record_amax=history.ring[history.slot])
        history.advance()
        return Quantized(q, scale, scheme.block)
    scale = _emulated_scale(history.used_amax(), scheme)
    quantized = Quantized(_emulated_cast(x, scale, scheme), scale, scheme.block)
    history.record(block_amax(x, scheme.block))
    return quantized


def describe(scheme: OperandScheme, scaling) -> str:
    """What a fused quantizer does for this policy, for the case's record."""
    if scaling is None:
        return ("Triton fused: amax pass, then one scale-and-cast pass" if scheme.block == (0, 0)
                else "Triton fused: amax+scale+cast in one pass")
    if isinstance(scaling, DelayedHistory):
        return "Triton fused: scale from the amax history, then one cast pass that records this step's amax"
    return "Triton fused: one scale-and-cast pass (static scale)"


def reference_quantize(x: torch.Tensor, scheme: OperandScheme, scaling: Optional[object]) -> Quantized:
    """The reference (accelbench.quant) under any policy state: a given scale, a delayed history
    (read, then this step's amax recorded), or none (current scaling)."""
    from accelbench.quant import quantize, quantize_with_scale
    if scaling is None:
        return quantize(x, scheme)
    if isinstance(scaling, DelayedHistory):
        amax = block_amax(x, scheme.block)
        used = scaling.used_amax() if scaling.filled else amax
        scaling.record(amax)
        return quantize_with_scale(x, scale_from_amax(used, scheme.fmt, scheme.rounding), scheme.block, scheme.fmt,
                                   scheme.cast)
    return quantize_with_scale(x, scaling, scheme.block, scheme.fmt, scheme.cast)

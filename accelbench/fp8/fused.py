"""Fused FP8 activation quantizers: what an engine times for every scale policy.

The reference (reference.py) is the definition and stays plain torch ops; these are the
fast paths, one pass over the tensor where the policy allows it:
- current: per row or 1x128 block, amax+scale+cast in one pass; per tensor, an amax
  pass then a scale-and-cast pass (a global amax must exist before any element is cast);
- static: the scale is given, so a single scale-and-cast pass;
- delayed: a tiny kernel turns the amax history into this step's scale, then one pass casts with
  it and keeps each chunk's amax, which a tiny kernel folds into the history's next slot.
Scale rounding: exact, power of two, Gaudi 2's hardware set, per tensor / per row / 1x128.

On a CUDA tensor the Triton kernels of kernels/quantize.py run; elsewhere (CPU, no Triton)
the same arithmetic in torch ops, step for step (`emulated`), so the interface and the policies'
state are tested where Triton cannot run. Both must agree with the reference bit for bit.
"""
from __future__ import annotations

import torch

from accelbench.fp8.formats import E4M3, OperandScheme
from accelbench.fp8.reference import DelayedScaling, Quantized, block_amax, expand_blocks, round_scale

FUSED_BLOCKS = ((0, 0), (1, 0), (1, 128))
FUSED_ROUNDINGS = ("exact", "pow2", "gaudi2")
ROUNDING_CODES = {"exact": 0, "pow2": 1, "gaudi2": 2}


def covers(scheme: OperandScheme) -> bool:
    """Whether a fused quantizer exists for this operand scheme (Gaudi 2 rounding: E4M3 only)."""
    if scheme.block not in FUSED_BLOCKS or scheme.rounding not in FUSED_ROUNDINGS:
        return False
    return scheme.rounding != "gaudi2" or scheme.fmt.dtype == torch.float8_e4m3fn


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
    """The kernels' scale rounding. Power of two (the kernels' exponent-bit rule: the exponent up one
    unless the mantissa is zero) and Gaudi 2's set are the reference's own arithmetic, exact for
    every normal scale; the kernels are checked against it bit for bit."""
    return round_scale(raw, raw, E4M3, rounding)


def _emulated_scale(amax: torch.Tensor, scheme: OperandScheme) -> torch.Tensor:
    safe = torch.where(amax > 0, amax, torch.ones_like(amax))
    return emulated_round_scale(safe / torch.full_like(safe, scheme.fmt.max_value), scheme.rounding)


def _emulated_cast(x: torch.Tensor, scale: torch.Tensor, scheme: OperandScheme) -> torch.Tensor:
    scaled = x.float() / expand_blocks(scale, tuple(x.shape), scheme.block)
    return scaled.clamp(-scheme.fmt.max_value, scheme.fmt.max_value).to(scheme.fmt.dtype)


# --- the fused quantizers -----------------------------------------------------------------------
def current(x: torch.Tensor, scheme: OperandScheme) -> Quantized:
    """Current scaling: each block's scale from its own amax."""
    if _triton_here(x):
        from accelbench.fp8.kernels import quantize as k
        q, scale = k.quantize_current(x, scheme.block, scheme.fmt.dtype, scheme.fmt.max_value,
                                      ROUNDING_CODES[scheme.rounding])
        return Quantized(q, scale, scheme.block)
    scale = _emulated_scale(block_amax(x, scheme.block), scheme)
    return Quantized(_emulated_cast(x, scale, scheme), scale, scheme.block)


def static(x: torch.Tensor, scale: torch.Tensor, scheme: OperandScheme) -> Quantized:
    """The scale is known ahead (calibrated): one scale-and-cast pass."""
    scale = scale.reshape(_scale_shape(x, scheme.block)).float()
    if _triton_here(x):
        from accelbench.fp8.kernels import quantize as k
        q = k.scaled_cast(x, scale, scheme.block, scheme.fmt.dtype, scheme.fmt.max_value)
        return Quantized(q, scale, scheme.block)
    return Quantized(_emulated_cast(x, scale, scheme), scale, scheme.block)


def delayed(x: torch.Tensor, history: DelayedScaling, scheme: OperandScheme) -> Quantized:
    """Delayed scaling: cast with the scale of the history, record this step's amax into it."""
    if history.filled == 0:  # nothing to delay from yet: current scaling, and the history starts
        quantized = current(x, scheme)
        history.record(block_amax(x, scheme.block))
        return quantized
    if _triton_here(x):
        from accelbench.fp8.kernels import quantize as k
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
    if isinstance(scaling, DelayedScaling):
        return "Triton fused: scale from the amax history, then one cast pass that records this step's amax"
    return "Triton fused: one scale-and-cast pass (static scale)"

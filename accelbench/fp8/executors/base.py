"""The FP8 executor every backend has: emulation with the reference quantizer, and the interface
the native executors (one module per backend family, discovered by executors/__init__.py)
implement. An executor quantizes activations per call and runs the scaled GEMM with pre-quantized
weights, held as W = B^T (N x K, row-major), the layout cuBLAS and Gaudi take for the second operand.
("Executor", not "engine": the decode benchmark's engines are whole generation loops.)
"""
from __future__ import annotations

from typing import Optional, Union

import torch

from accelbench.backends.base import Backend
from accelbench.fp8.formats import ScalingMode
from accelbench.fp8.reference import DelayedScaling, Quantized, reference_quantize

# A policy's state as an executor carries it from call to call: nothing (current scaling), a
# scale tensor (static), or the amax history (delayed).
Scaling = Union[None, torch.Tensor, DelayedScaling]
CONSTANT_SCALES_ELSEWHERE = "constant (compile-time) scales are a Gaudi path (torch.ops.hpu.*.scalar ops)"


class EmulatedExecutor:
    """Quantize with the reference implementation, dequantize, GEMM in fp32: exact FP8 numerics
    of a mode on any backend; its timings are labelled emulated."""

    execution = "emulated (reference quantizer, dequantize, fp32 GEMM)"
    native = False
    # With impl=auto, a mode this executor cannot run natively is emulated (labelled) instead of
    # skipped, so the device's report still shows that mode's accuracy beside the native ones.
    emulate_unsupported = True

    def __init__(self, backend: Backend):
        self.backend = backend

    def unsupported(self, mode: ScalingMode, impl: str, shape: Optional[tuple[int, int, int]] = None) -> Optional[str]:
        """Why this executor cannot run `mode` (for an M x K x N `shape`, where given), or None."""
        if impl == "const":
            return CONSTANT_SCALES_ELSEWHERE
        if impl not in ("auto", "emulated"):
            return f"impl {impl} needs a GPU backend"
        if mode.stochastic_rounding:
            return "stochastic rounding is not emulated (it runs on Gaudi hardware only)"
        return None

    def quantize_activations(self, a: torch.Tensor, mode: ScalingMode, scaling: Scaling) -> Quantized:
        """`scaling` is the policy's state: None (current: the scale from `a` itself), a scale
        tensor (static, or any scale given), or a DelayedScaling (read, then this step recorded)."""
        return reference_quantize(a, mode.a, scaling)

    def activation_quantizer(self, mode: ScalingMode, scaling: Scaling) -> str:
        return "reference torch ops (accelbench.fp8.reference)"

    def reference_modes(self, mode: ScalingMode) -> list[ScalingMode]:
        """The mode as this executor actually quantizes it, for the reference it is checked against:
        one way, or, for a library that may round its scales either of two ways, each way."""
        return [mode]

    def take_weight(self, weight: torch.Tensor, mode: ScalingMode) -> None:
        """The unquantized weight W = B^T (N x K), for an executor that quantizes it itself."""

    def quantize_and_gemm(self, a: torch.Tensor, w: Quantized, mode: ScalingMode, scaling: Scaling,
                          out: torch.Tensor) -> torch.Tensor:
        """One quantize+GEMM call, what the quant+gemm stage times."""
        return self.gemm(self.quantize_activations(a, mode, scaling), w, mode, out)

    def notes(self, mode: ScalingMode) -> dict[str, str]:
        """Facts about how this executor runs `mode`, recorded with the case."""
        return {}

    def gemm(self, qa: Quantized, w: Quantized, mode: ScalingMode, out: torch.Tensor) -> torch.Tensor:
        return out.copy_(qa.dequantize() @ w.dequantize().t())

"""The Intel Gaudi FP8 executor: torch.ops.hpu.cast_to_fp8_v2 and fp8_gemm_v2."""
from __future__ import annotations

from typing import Optional

import torch

from accelbench.backends.base import Backend
from accelbench.fp8.executors.base import EmulatedExecutor, Scaling
from accelbench.fp8.formats import ScalingMode
from accelbench.fp8.reference import DelayedScaling, Quantized, block_amax, scale_from_amax

BACKEND = "hpu"


class HpuExecutor(EmulatedExecutor):
    """Intel Gaudi: torch.ops.hpu.cast_to_fp8_v2 and torch.ops.hpu.fp8_gemm_v2 (MME).

    Conventions (Intel's API, as vLLM's Gaudi path and neural-compressor call it):
    cast_to_fp8_v2(x, scale, stochastic_rounding, is_amax, dtype) multiplies by `scale` before
    the cast, so it takes the *reciprocal* of our dequantization scale; fp8_gemm_v2(A, trans_A,
    B, trans_B, D, out_dtype, A_scale_inv, B_scale_inv, bias, accumulate) takes the
    dequantization scales themselves: per-tensor as [1], per-token A as [M, 1], per-channel
    weights as [N]. Weights are W = B^T, hence trans_B=True. impl=const passes per-tensor scales
    as Python floats through the `.scalar` overloads: constants the graph compiler can fold
    into the hardware's exponent bias, where runtime tensors may not be."""

    native = True
    execution = "torch.ops.hpu.fp8_gemm_v2 (Gaudi MME)"
    # On Gaudi a mode the device cannot do is skipped with the reason: the first Gaudi reports
    # must show exactly what the hardware path supports.
    emulate_unsupported = False

    def __init__(self, backend: Backend, impl: str):
        super().__init__(backend)
        self.generation = getattr(backend, "generation", None)
        self.constant_scales = impl == "const"
        if self.constant_scales:
            self.execution = "torch.ops.hpu.fp8_gemm_v2.scalar (Gaudi MME, constant scales)"

    def unsupported(self, mode: ScalingMode, impl: str, shape: Optional[tuple[int, int, int]] = None) -> Optional[str]:
        if impl not in ("auto", "const"):
            return f"impl {impl} does not exist on Gaudi"
        ops = torch.ops.hpu
        for op in ("cast_to_fp8_v2", "fp8_gemm_v2"):
            if not hasattr(ops, op):
                return f"the installed Gaudi bridge has no torch.ops.hpu.{op}"
        if mode.granularity not in ("tensor", "row"):
            return "fp8_gemm_v2 takes per-tensor or per-token/per-channel scales only"
        if impl == "const" and mode.granularity != "tensor":
            return "constant scales are per-tensor only"
        if mode.fast_accum:
            return "fp8_gemm_v2 has no fast-accumulation switch"
        if self.generation == 2 and any(f.dtype == torch.float8_e4m3fn and f.max_value > 240
                                        for f in (mode.a.fmt, mode.b.fmt)):
            return ("Gaudi 2 E4M3 saturates at ±240 (IEEE-style E4M3), so this OCP-range mode would clip; "
                    "its Gaudi 2 counterpart is the gaudi2 mode")
        return None

    def reference_modes(self, mode: ScalingMode) -> list[ScalingMode]:
        """cast_to_fp8_v2 multiplies by the reciprocal scale in the input's dtype: the reference
        quantizes the activations the same way (formats.CASTS), so a value on an FP8 rounding tie
        lands where the hardware puts it. Weights go through the reference quantizer itself."""
        from dataclasses import replace
        return [replace(mode, a=replace(mode.a, cast="reciprocal"))]

    def notes(self, mode: ScalingMode) -> dict[str, str]:
        if self.generation == 2 and torch.float8_e5m2 in (mode.a.fmt.dtype, mode.b.fmt.dtype):
            return {"hardware_scaling": "E5M2 on Gaudi 2: scale not hardware-accelerated (only scale 1 is)"}
        return {}

    def activation_quantizer(self, mode: ScalingMode, scaling: Scaling) -> str:
        op = "torch.ops.hpu.cast_to_fp8_v2" + (".scalar (constant scale)" if self.constant_scales else "")
        if isinstance(scaling, DelayedScaling) and mode.a.block == (0, 0):
            op += " (amax of this step returned by the same cast)"
        return op + (" (stochastic rounding)" if mode.stochastic_rounding else "")

    def quantize_activations(self, a: torch.Tensor, mode: ScalingMode, scaling: Scaling) -> Quantized:
        s = mode.a
        per_tensor = s.block == (0, 0)
        history = scaling if isinstance(scaling, DelayedScaling) and scaling.filled else None
        if history is not None:
            scale = scale_from_amax(history.used_amax(), s.fmt, s.rounding)
        elif scaling is None or isinstance(scaling, DelayedScaling):
            scale = scale_from_amax(block_amax(a, s.block), s.fmt, s.rounding)
        else:
            scale = scaling
        if self.constant_scales:
            q, _amax = torch.ops.hpu.cast_to_fp8_v2.scalar(a, float(1.0 / scale), mode.stochastic_rounding, False,
                                                         s.fmt.dtype)
            return Quantized(q, scale.reshape(1, 1), s.block)
        scale = scale.reshape((1,) if per_tensor else (-1, 1))
        # is_amax: the cast also returns the input's amax (per tensor), which delayed scaling records.
        want_amax = isinstance(scaling, DelayedScaling) and per_tensor
        q, amax = torch.ops.hpu.cast_to_fp8_v2(a, 1.0 / scale, mode.stochastic_rounding, want_amax, s.fmt.dtype)
        if isinstance(scaling, DelayedScaling):
            scaling.record(amax.float() if want_amax else block_amax(a, s.block))
        return Quantized(q, scale.reshape(1, 1) if per_tensor else scale, s.block)

    def gemm(self, qa: Quantized, w: Quantized, mode: ScalingMode, out: torch.Tensor) -> torch.Tensor:
        if self.constant_scales:
            result = torch.ops.hpu.fp8_gemm_v2.scalar(qa.q, False, w.q, True, None, out.dtype,
                                                      float(qa.scale), float(w.scale), None, False)
            return out.copy_(result)
        if mode.granularity == "tensor":
            sa, sb = qa.scale.reshape(1), w.scale.reshape(1)
        else:  # per-token [M, 1]; per-channel weights (W's rows) as [N]
            sa, sb = qa.scale.reshape(-1, 1), w.scale.reshape(-1)
        result = torch.ops.hpu.fp8_gemm_v2(qa.q, False, w.q, True, None, out.dtype, sa, sb, None, False)
        return out.copy_(result)


EXECUTOR = HpuExecutor

"""Who executes an FP8 GEMM on a backend: one engine class per backend family, plus emulation.

An engine quantizes activations per call and runs the scaled GEMM with pre-quantized weights.
Weights are held as W = B^T (N x K, row-major), the layout cuBLAS and Gaudi take for the second
operand. `ENGINES` maps a backend name to its engine; a backend without one is emulated.
"""
from __future__ import annotations

from typing import Optional, Union

import torch

from accelbench import fused_quant
from accelbench.backends.base import Backend
from accelbench.fused_quant import DelayedHistory, reference_quantize
from accelbench.quant import OperandScheme, Quantized, ScalingMode, block_amax, scale_from_amax


Scaling = Union[None, torch.Tensor, DelayedHistory]
CONSTANT_SCALES_ELSEWHERE = "constant (compile-time) scales are a Gaudi path (torch.ops.hpu.*.scalar ops)"


class EmulatedEngine:
    """Quantize with the reference implementation, dequantize, GEMM in fp32: exact FP8 numerics
    of a mode on any backend; its timings are labelled emulated."""

    execution = "emulated (reference quantizer, dequantize, fp32 GEMM)"
    native = False
    # With impl=auto, a mode this engine cannot run natively is emulated (labelled) instead of
    # skipped, so the device's report still shows that mode's accuracy beside the native ones.
    emulate_unsupported = True

    def __init__(self, backend: Backend):
        self.backend = backend

    def unsupported(self, mode: ScalingMode, impl: str, shape: Optional[tuple[int, int, int]] = None) -> Optional[str]:
        """Why this engine cannot run `mode` (for an M x K x N `shape`, where given), or None."""
        if impl == "const":
            return CONSTANT_SCALES_ELSEWHERE
        if impl not in ("auto", "emulated"):
            return f"impl {impl} needs a GPU backend"
        if mode.stochastic_rounding:
            return "stochastic rounding is not emulated (it runs on Gaudi hardware only)"
        return None

    def quantize_activations(self, a: torch.Tensor, mode: ScalingMode, scaling: Scaling) -> Quantized:
        """`scaling` is the policy's state: None (current: the scale from `a` itself), a scale
        tensor (static, or any scale given), or a DelayedHistory (read, then this step recorded)."""
        return reference_quantize(a, mode.a, scaling)

    def activation_quantizer(self, mode: ScalingMode, scaling: Scaling) -> str:
        return "reference torch ops (accelbench.quant)"

    def reference_modes(self, mode: ScalingMode) -> list[ScalingMode]:
        """The mode as this engine actually quantizes it, for the reference it is checked against:
        one way, or, for a library that may round its scales either of two ways, each way."""
        return [mode]

    def take_weight(self, weight: torch.Tensor, mode: ScalingMode) -> None:
        """The unquantized weight W = B^T (N x K), for an engine that quantizes it itself."""

    def quantize_and_gemm(self, a: torch.Tensor, w: Quantized, mode: ScalingMode, scaling: Scaling,
                          out: torch.Tensor) -> torch.Tensor:
        """One quantize+GEMM call, what the quant+gemm stage times."""
        return self.gemm(self.quantize_activations(a, mode, scaling), w, mode, out)

    def notes(self, mode: ScalingMode) -> dict[str, str]:
        """Facts about how this engine runs `mode`, recorded with the case."""
        return {}

    def gemm(self, qa: Quantized, w: Quantized, mode: ScalingMode, out: torch.Tensor) -> torch.Tensor:
        return out.copy_(qa.dequantize() @ w.dequantize().t())


TRITON_BLOCK_GEMM = "Triton block-scaled GEMM"
GLUON_BLOCK_GEMM = "Triton (Gluon) warp-specialized block-scaled GEMM"


class CudaEngine(EmulatedEngine):
    """torch._scaled_mm (cuBLAS) for tensor-, row- and 1x128/128x128 block-wise scaling; for
    impl=triton a Triton block-scaled kernel: on Hopper the warp-specialized Gluon one
    (kernels/fp8_block_ws.py), elsewhere the single-partition one (kernels/fp8.py). Triton fused
    quantizers for dynamic scaling."""

    native = True

    def __init__(self, backend: Backend, impl: str):
        super().__init__(backend)
        self.impl = impl
        self.warp_specialized = impl == "triton" and backend.supports("wgmma")
        if impl != "triton":
            self.execution = "torch._scaled_mm (cuBLAS)"
        elif self.warp_specialized:
            self.execution = GLUON_BLOCK_GEMM
        else:
            self.execution = TRITON_BLOCK_GEMM

    def unsupported(self, mode: ScalingMode, impl: str, shape: Optional[tuple[int, int, int]] = None) -> Optional[str]:
        if impl == "const":
            return CONSTANT_SCALES_ELSEWHERE
        if not self.backend.supports("fp8"):
            return "this GPU has no FP8 tensor cores (needs compute capability 8.9 or newer)"
        grain = mode.granularity
        if impl == "triton":
            if grain != "block":
                return "the Triton kernel does 1x128 x 128x128 block scaling only"
            if self.warp_specialized and shape is not None and shape[2] % 8:
                return "the warp-specialized kernel's TMA store needs N a multiple of 8 (16-byte bf16 rows)"
            return None
        if grain == "mx":
            return "MX (E8M0, 1x32) block scaling has no Hopper tensor-core path (Blackwell has one)"
        if mode.a.fmt.dtype == torch.float8_e5m2 and mode.b.fmt.dtype == torch.float8_e5m2:
            return "cuBLAS has no E5M2 x E5M2 GEMM"
        if grain == "block" and mode.fast_accum:
            return "cuBLAS block-wise scaling has no fast-accumulation variant"
        if grain == "block" and shape is not None and (shape[1] // 128) % 4:
            # Seen on an H200 (torch 2.11, cuBLAS via CUDA 13.0): K/128 = 2, 3, 5 returned results
            # off by relative errors of 49, 0.19 and 0.19, where K/128 = 4 and 8 were right
            # (results/crosschecks/h200-cublas-blockwise-probe.txt). Other users pad the scales to
            # multiples of 4 for this; we do not.
            return "cuBLAS block-wise scaling returned wrong results where K/128 is not a multiple of 4"
        if grain == "block" and shape is not None and shape[0] % 4:
            return "cuBLAS block-wise scaling refused M not a multiple of 4 (CUBLAS_STATUS_NOT_SUPPORTED, M=258)"
        if mode.stochastic_rounding:
            return "stochastic rounding of the cast is a Gaudi feature"
        return None

    def quantize_activations(self, a: torch.Tensor, mode: ScalingMode, scaling: Scaling) -> Quantized:
        if not fused_quant.covers(mode.a):
            return super().quantize_activations(a, mode, scaling)
        if scaling is None:
            return fused_quant.dynamic(a, mode.a)
        if isinstance(scaling, DelayedHistory):
            return fused_quant.delayed(a, scaling, mode.a)
        return fused_quant.static(a, scaling, mode.a)

    def activation_quantizer(self, mode: ScalingMode, scaling: Scaling) -> str:
        if fused_quant.covers(mode.a):
            return fused_quant.describe(mode.a, scaling)
        return super().activation_quantizer(mode, scaling)

    def gemm(self, qa: Quantized, w: Quantized, mode: ScalingMode, out: torch.Tensor) -> torch.Tensor:
        if self.warp_specialized:  # takes W itself (N x K, K contiguous): what its TMA boxes read
            from accelbench.kernels.fp8_block_ws import block_scaled_gemm_ws
            return block_scaled_gemm_ws(qa.q, w.q, qa.scale, w.scale, out)
        b = w.q.t()  # K x N, column-major
        if self.impl == "triton":
            from accelbench.kernels.fp8 import block_scaled_gemm
            return block_scaled_gemm(qa.q, b, qa.scale, w.scale.t(), out)
        grain = mode.granularity
        if grain == "tensor":
            sa, sb = qa.scale.reshape(()), w.scale.reshape(())
        elif grain == "row":
            sa, sb = qa.scale.reshape(-1, 1), w.scale.reshape(1, -1).contiguous()
        else:  # 1x128 activations need outer-dim-major scales; 128x128 weights pass transposed
            sa, sb = qa.scale.t().contiguous().t(), w.scale.t()
        return torch._scaled_mm(qa.q, b, scale_a=sa, scale_b=sb, out_dtype=out.dtype,
                                use_fast_accum=mode.fast_accum, out=out)


class HpuEngine(EmulatedEngine):
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
        quantizes the activations the same way (quant.CASTS), so a value on an FP8 rounding tie
        lands where the hardware puts it. Weights go through the reference quantizer itself."""
        from dataclasses import replace
        return [replace(mode, a=replace(mode.a, cast="reciprocal"))]

    def notes(self, mode: ScalingMode) -> dict[str, str]:
        if self.generation == 2 and torch.float8_e5m2 in (mode.a.fmt.dtype, mode.b.fmt.dtype):
            return {"hardware_scaling": "E5M2 on Gaudi 2: scale not hardware-accelerated (only scale 1 is)"}
        return {}

    def activation_quantizer(self, mode: ScalingMode, scaling: Scaling) -> str:
        op = "torch.ops.hpu.cast_to_fp8_v2" + (".scalar (constant scale)" if self.constant_scales else "")
        if isinstance(scaling, DelayedHistory) and mode.a.block == (0, 0):
            op += " (amax of this step returned by the same cast)"
        return op + (" (stochastic rounding)" if mode.stochastic_rounding else "")

    def quantize_activations(self, a: torch.Tensor, mode: ScalingMode, scaling: Scaling) -> Quantized:
        s = mode.a
        per_tensor = s.block == (0, 0)
        history = scaling if isinstance(scaling, DelayedHistory) and scaling.filled else None
        if history is not None:
            scale = scale_from_amax(history.used_amax(), s.fmt, s.rounding)
        elif scaling is None or isinstance(scaling, DelayedHistory):
            scale = scale_from_amax(block_amax(a, s.block), s.fmt, s.rounding)
        else:
            scale = scaling
        if self.constant_scales:
            q, _amax = torch.ops.hpu.cast_to_fp8_v2.scalar(a, float(1.0 / scale), mode.stochastic_rounding, False,
                                                         s.fmt.dtype)
            return Quantized(q, scale.reshape(1, 1), s.block)
        scale = scale.reshape((1,) if per_tensor else (-1, 1))
        # is_amax: the cast also returns the input's amax (per tensor), which delayed scaling records.
        want_amax = isinstance(scaling, DelayedHistory) and per_tensor
        q, amax = torch.ops.hpu.cast_to_fp8_v2(a, 1.0 / scale, mode.stochastic_rounding, want_amax, s.fmt.dtype)
        if isinstance(scaling, DelayedHistory):
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


class TorchaoEngine(CudaEngine):
    """torchao's FP8 inference recipe, the library users would otherwise reach for: an nn.Linear
    quantized by Float8DynamicActivationFloat8WeightConfig (E4M3 activations quantized per call,
    weights once, per-tensor or per-row, torch._scaled_mm underneath, accumulation not fast).
    torchao computes each scale in the input's dtype (amax / max in bf16), so its reference is
    the same mode with bf16-rounded scales. It quantizes inside its linear: quantize+GEMM only.
    The linear is compiled (torch.compile), as torchao's documentation runs it."""

    TORCHAO_MODES = {"tensor": "PerTensor", "row": "PerRow"}

    def __init__(self, backend: Backend, impl: str = "torchao"):
        super().__init__(backend, "auto")
        self.linear = None
        try:
            import torchao
            self.version = torchao.__version__
        except ImportError:
            self.version = None
        self.execution = (f"torchao {self.version} Float8DynamicActivationFloat8WeightConfig, torch.compile "
                          "(torch._scaled_mm)")

    def unsupported(self, mode: ScalingMode, impl: str, shape: Optional[tuple[int, int, int]] = None) -> Optional[str]:
        if mode.name not in self.TORCHAO_MODES:
            return "torchao's float8 inference configuration offers per-tensor and per-row scaling (modes tensor, row)"
        if self.version is None:
            return "torchao is not installed (pip install torchao)"
        return super().unsupported(mode, "auto", shape)

    def reference_modes(self, mode: ScalingMode) -> list[ScalingMode]:
        """Weights are quantized eagerly (bf16-rounded scales). The activations' amax / max is a
        bf16 operation too, but inside the compiled linear Inductor may keep it in fp32: seen on
        an H100 (torch 2.11, torchao 0.17), per-row matched fp32 scales where per-tensor matched bf16."""
        from dataclasses import replace
        weights = replace(mode.b, rounding="bf16")
        return [replace(mode, a=replace(mode.a, rounding="bf16"), b=weights), replace(mode, b=weights)]

    def take_weight(self, weight: torch.Tensor, mode: ScalingMode) -> None:
        import torchao.quantization as tq
        from torchao.float8.inference import Float8MMConfig
        n, k = weight.shape
        linear = torch.nn.Linear(k, n, bias=False, dtype=weight.dtype, device=weight.device)
        with torch.no_grad():
            linear.weight.copy_(weight)
        granularity = getattr(tq, self.TORCHAO_MODES[mode.name])()
        tq.quantize_(linear, tq.Float8DynamicActivationFloat8WeightConfig(
            granularity=granularity, mm_config=Float8MMConfig(use_fast_accum=False)))
        # As torchao's docs run it: compiled, so its activation quantization is one fused kernel
        # rather than a handful of eager ops (the harness's warm-up takes the compile).
        self.linear = torch.compile(linear, dynamic=False)

    def activation_quantizer(self, mode: ScalingMode, scaling: Scaling) -> str:
        return f"torchao {self.version} (inside its linear)"

    def quantize_and_gemm(self, a: torch.Tensor, w: Quantized, mode: ScalingMode, scaling: Scaling,
                          out: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self.linear(a)


ENGINES = {"cuda": CudaEngine, "hpu": HpuEngine}


def engine_for(backend: Backend, mode: ScalingMode, impl: str, shape: Optional[tuple[int, int, int]] = None):
    """The engine that runs `mode` (on an M x K x N `shape`) on `backend`, and why it is emulated
    where it is. Returns (engine, reason_or_None); raises ValueError(reason) when `impl` cannot
    run here."""
    if impl == "torchao":
        if backend.name != "cuda":
            raise ValueError("torchao's float8 inference path runs on the cuda backend")
        engine = TorchaoEngine(backend)
        reason = engine.unsupported(mode, impl, shape)
        if reason:
            raise ValueError(reason)
        return engine, None
    if impl == "emulated" or backend.name not in ENGINES:
        engine = EmulatedEngine(backend)
        reason = engine.unsupported(mode, impl, shape)
        if reason:
            raise ValueError(reason)
        return engine, None if impl == "emulated" else f"no native FP8 engine for the {backend.name} backend"
    engine = ENGINES[backend.name](backend, impl)
    reason = engine.unsupported(mode, impl, shape)
    if reason is None:
        return engine, None
    if impl == "auto" and engine.emulate_unsupported:
        return EmulatedEngine(backend), reason
    raise ValueError(reason)


def weight_scheme(mode: ScalingMode) -> OperandScheme:
    """B's scheme restated for W = B^T: its block transposes."""
    bk, bn = mode.b.block
    return OperandScheme(mode.b.fmt, (bn, bk), mode.b.rounding)


def policy_scale(mode: ScalingMode, a: torch.Tensor, previous: list[torch.Tensor]) -> Optional[torch.Tensor]:
    """The activation scale a delayed or static policy would use for `a`, given tensors of
    previous steps (delayed: their amax history; static: calibration on the first), by the
    reference policies of accelbench.quant: the definition the engines are checked against. None
    for current scaling, whose scale comes from `a` itself at quantization time."""
    if mode.policy == "current":
        return None
    from accelbench.quant import DelayedScaling, StaticScaling
    if mode.policy == "static":
        policy = StaticScaling()
        policy.calibrate(block_amax(previous[0], mode.a.block))
    else:
        policy = DelayedScaling()
        for p in previous:
            policy.amax(block_amax(p, mode.a.block))
    return scale_from_amax(policy.amax(block_amax(a, mode.a.block)), mode.a.fmt, mode.a.rounding)


def policy_state(mode: ScalingMode, previous: list[torch.Tensor]) -> Scaling:
    """What an engine carries from call to call under the mode's policy, after the previous
    steps: nothing (current), the calibrated scale (static), the amax history (delayed)."""
    if mode.policy == "current":
        return None
    first = block_amax(previous[0], mode.a.block)
    if mode.policy == "static":
        return scale_from_amax(first, mode.a.fmt, mode.a.rounding)
    history = DelayedHistory.empty(tuple(first.shape), first.device)
    for p in previous:
        history.record(block_amax(p, mode.a.block))
    return history

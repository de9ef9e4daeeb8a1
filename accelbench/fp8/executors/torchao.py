"""torchao's FP8 inference linear on CUDA (`impl=torchao`): the library users would otherwise use,
measured beside ours."""
from __future__ import annotations

from typing import Optional

import torch

from accelbench.backends.base import Backend
from accelbench.fp8.executors.base import Scaling
from accelbench.fp8.executors.cuda import CudaExecutor
from accelbench.fp8.formats import ScalingMode
from accelbench.fp8.reference import Quantized


class TorchaoExecutor(CudaExecutor):
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

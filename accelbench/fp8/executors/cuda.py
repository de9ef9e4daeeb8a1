"""The CUDA FP8 executor: cuBLAS through torch._scaled_mm, Triton and Gluon block-scaled GEMMs,
the fused Triton activation quantizers."""
from __future__ import annotations

from typing import Optional

import torch

from accelbench.backends.base import Backend
from accelbench.fp8 import fused
from accelbench.fp8.executors.base import CONSTANT_SCALES_ELSEWHERE, EmulatedExecutor, Scaling
from accelbench.fp8.formats import ScalingMode
from accelbench.fp8.reference import DelayedScaling, Quantized

BACKEND = "cuda"


TRITON_BLOCK_GEMM = "Triton block-scaled GEMM"
GLUON_BLOCK_GEMM = "Triton (Gluon) warp-specialized block-scaled GEMM"


class CudaExecutor(EmulatedExecutor):
    """torch._scaled_mm (cuBLAS) for tensor-, row- and 1x128/128x128 block-wise scaling; for
    impl=triton a Triton block-scaled kernel: on Hopper the warp-specialized Gluon one
    (kernels/block_gemm_ws.py), elsewhere the single-partition one (kernels/quantize.py). Triton fused
    quantizers for every scale policy (fused.py)."""

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
        if not fused.covers(mode.a):
            return super().quantize_activations(a, mode, scaling)
        if scaling is None:
            return fused.current(a, mode.a)
        if isinstance(scaling, DelayedScaling):
            return fused.delayed(a, scaling, mode.a)
        return fused.static(a, scaling, mode.a)

    def activation_quantizer(self, mode: ScalingMode, scaling: Scaling) -> str:
        if fused.covers(mode.a):
            return fused.describe(mode.a, scaling)
        return super().activation_quantizer(mode, scaling)

    def gemm(self, qa: Quantized, w: Quantized, mode: ScalingMode, out: torch.Tensor) -> torch.Tensor:
        if self.warp_specialized:  # takes W itself (N x K, K contiguous): what its TMA boxes read
            from accelbench.fp8.kernels.block_gemm_ws import block_scaled_gemm_ws
            return block_scaled_gemm_ws(qa.q, w.q, qa.scale, w.scale, out)
        b = w.q.t()  # K x N, column-major
        if self.impl == "triton":
            from accelbench.fp8.kernels.quantize import block_scaled_gemm
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


EXECUTOR = CudaExecutor

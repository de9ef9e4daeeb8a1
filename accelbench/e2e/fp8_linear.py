"""The decoder's linear layers in FP8, with the FP8 module's scaling modes (quant.py) and engines
(fp8_engines.py): what the FP8 GEMM benchmark measures on one shape, here in a whole model.

- W8A8: every projection of every decoder layer has its weights quantized once, ahead of time (the
  mode's weight scheme), and its activations quantized on every call (current scaling, plain torch
  ops that the graphs engine's compiled step fuses); the GEMM
  runs on the backend's FP8 engine (cuBLAS on Hopper; emulated, and labelled so, elsewhere).
  Activations are padded to 16 rows for the native engine, as serving engines do at small batch.
- weight-only: the same FP8 weights, dequantized to the activation dtype on every call, then an
  ordinary matmul: the model's FP8 accuracy at BF16 GEMM speed (no fused kernel here).
The embedding table and the output projection stay in the model's dtype, as is usual.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from accelbench.fp8_engines import engine_for, weight_scheme
from accelbench.quant import MODES, quantize
from accelbench.backends.base import Backend

# The decoder's projections as it multiplies them: q/k/v and gate/up stacked (llama.py), so that
# their rows share the mode's weight scales where the scheme has one per tensor.
PROJECTIONS = ("self_attn.qkv_proj", "self_attn.o_proj", "mlp.gate_up_proj", "mlp.down_proj")
PAD_ROWS = 16


class Fp8Linears:
    def __init__(self, weights: dict[str, torch.Tensor], layers: int, mode_name: str, weight_only: bool,
                 backend: Backend):
        self.mode = MODES[mode_name]
        if self.mode.policy != "current":
            raise ValueError(f"FP8 decode uses current scaling; mode {mode_name} scales by a {self.mode.policy} policy")
        self.weight_only = weight_only
        self.weights = weights
        self.engine, self.emulated_because = engine_for(backend, self.mode, "auto")
        self.q = {f"model.layers.{i}.{p}": quantize(weights[f"model.layers.{i}.{p}.weight"].contiguous(),
                                                    weight_scheme(self.mode))
                  for i in range(layers) for p in PROJECTIONS}

    @property
    def execution(self) -> str:
        if self.weight_only:
            return "FP8 weights dequantized per call, then a matmul in the activation dtype"
        return self.engine.execution + (f" ({self.emulated_because})" if self.emulated_because else "")

    def fp8_bytes(self) -> int:
        """Bytes of the FP8 weights and their scales (what a step streams instead of the originals)."""
        return sum(q.q.numel() + q.scale.numel() * q.scale.element_size() for q in self.q.values())

    def __call__(self, x: torch.Tensor, name: str) -> torch.Tensor:
        bias = self.weights.get(f"{name}.bias")
        if name not in self.q:
            return F.linear(x, self.weights[f"{name}.weight"], bias)
        w = self.q[name]
        a = x.reshape(-1, x.shape[-1])
        if self.weight_only:
            y = F.linear(a, w.dequantize(a.dtype))
        else:
            rows = a.shape[0]
            if self.engine.native and rows % PAD_ROWS:
                a = F.pad(a, (0, 0, 0, PAD_ROWS - rows % PAD_ROWS))
            out = torch.empty(a.shape[0], w.q.shape[0], dtype=x.dtype, device=x.device)
            # The reference quantizer's torch ops, which a compiled step fuses; the engine's own Triton
            # quantizers broke torch.compile of the whole step (H100, torch 2.11).
            y = self.engine.gemm(quantize(a, self.mode.a), w, self.mode, out)[:rows]
        if bias is not None:
            y = y + bias
        return y.view(*x.shape[:-1], y.shape[-1])


def kl_and_agreement(reference_logits: torch.Tensor, logits: torch.Tensor) -> tuple[float, float]:
    """Mean KL(reference || other) of next-token distributions, and top-1 agreement, over positions."""
    p = torch.log_softmax(reference_logits.float(), dim=-1)
    q = torch.log_softmax(logits.float(), dim=-1)
    kl = (p.exp() * (p - q)).sum(-1).mean()
    agree = (reference_logits.argmax(-1) == logits.argmax(-1)).float().mean()
    return float(kl), float(agree)

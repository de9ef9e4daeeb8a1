"""The decoder's linear layers in FP8, with the FP8 module's scaling modes (quant.py) and engines
(fp8_engines.py): what the FP8 GEMM benchmark measures on one shape, here in a whole model.

- W8A8: every projection of every decoder layer has its weights quantized once, ahead of time (the
  mode's weight scheme), and its activations quantized on every call (current scaling, plain torch
  ops that the graphs engine's compiled step fuses); the GEMM
  runs on the backend's FP8 engine (cuBLAS on Hopper; emulated, and labelled so, elsewhere).
  Activations are padded to 16 rows for the native engine, as serving engines do at small batch.
- weight-only: the same FP8 weights, dequantized to the activation dtype on every call, then an
  ordinary matmul: the model's FP8 accuracy at BF16 GEMM speed.
- On CUDA, W8A8 at most `GEMV_ROWS` activation rows (batch-1 decode) with per-tensor or per-row
  scales may run instead as a Triton GEMV on CUDA cores (kernels/fp8_gemv.py) that reads each FP8
  weight byte once without padding one row to a tensor-core tile: the same numbers (FP8 operands,
  fp32 accumulation). Neither kernel wins on every shape (8B shape on an H100: with per-row scales
  the GEMV won on all four projections; with per-tensor scales on q/k/v and o, cuBLAS on gate/up and
  down), so `choose_kernels` times both on each projection's shape before the step is captured and
  keeps the faster; `execution` says which ran.
The embedding table and the output projection stay in the model's dtype, as is usual.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from accelbench.fp8_engines import engine_for, weight_scheme
from accelbench.quant import MODES, Quantized, quantize
from accelbench.backends.base import Backend

# The decoder's projections as it multiplies them: q/k/v and gate/up stacked (llama.py), so that
# their rows share the mode's weight scales where the scheme has one per tensor.
PROJECTIONS = ("self_attn.qkv_proj", "self_attn.o_proj", "mlp.gate_up_proj", "mlp.down_proj")
PAD_ROWS = 16
GEMV_ROWS = 4


class Fp8Linears:
    def __init__(self, weights: dict[str, torch.Tensor], layers: int, mode_name: str, weight_only: bool,
                 backend: Backend):
        self.mode = MODES[mode_name]
        if self.mode.policy != "current":
            raise ValueError(f"FP8 decode uses current scaling; mode {mode_name} scales by a {self.mode.policy} policy")
        self.weight_only = weight_only
        self.weights = weights
        self.engine, self.emulated_because = engine_for(backend, self.mode, "auto")
        self.gemv_capable = backend.name == "cuda" and self.engine.native and not weight_only \
            and self.mode.granularity in ("tensor", "row")
        self.gemv_for: dict[str, str] = {}  # projection -> why the GEMV runs it (choose_kernels)
        self.q = {f"model.layers.{i}.{p}": quantize(weights[f"model.layers.{i}.{p}.weight"].contiguous(),
                                                    weight_scheme(self.mode))
                  for i in range(layers) for p in PROJECTIONS}

    @property
    def execution(self) -> str:
        if self.weight_only:
            text = "FP8 weights dequantized per call, then a matmul in the activation dtype"
        else:
            text = self.engine.execution + (f" ({self.emulated_because})" if self.emulated_because else "")
        if self.gemv_for:
            chosen = "; ".join(f"{p.split('.')[-1]} ({why})" for p, why in self.gemv_for.items())
            text += f"; at <= {GEMV_ROWS} rows a Triton FP8 GEMV on CUDA cores where it timed faster: {chosen}"
        return text

    def choose_kernels(self, rows: int) -> None:
        """Before a step at `rows` activation rows is captured: per projection, time the GEMV and the
        engine's padded GEMM on this device (as graph replays over every layer's weights,
        triton.testing.do_bench_cudagraph) and let the faster run it. Both are checked against each
        other first."""
        if not self.gemv_capable or rows > GEMV_ROWS:
            return
        from triton.testing import do_bench_cudagraph
        for projection in PROJECTIONS:
            w = self.q[f"model.layers.0.{projection}"]
            dtype = self.weights[f"model.layers.0.{projection}.weight"].dtype
            x = torch.randn(rows, w.q.shape[1], device=w.q.device, dtype=dtype)
            qa = quantize(x, self.mode.a)
            if not torch.allclose(self._gemv(qa, w, x.dtype), self._padded_gemm(qa, w, x.dtype), rtol=2e-2,
                                  atol=1e-2 * float(self._padded_gemm(qa, w, x.dtype).abs().max())):
                continue  # never swap in a kernel that disagrees with the engine
            # Each call on the next layer's weights, as the step streams them: one projection's
            # weights alone (16-117 MB) would stay in L2 from replay to replay and time too fast.
            layers = [self.q[key] for key in self.q if key.endswith(projection)]
            gemv = lambda: [self._gemv(qa, w, x.dtype) for w in layers]  # noqa: E731
            padded = lambda: [self._padded_gemm(qa, w, x.dtype) for w in layers]  # noqa: E731
            t_gemv, t_padded = (do_bench_cudagraph(fn) / len(layers) for fn in (gemv, padded))
            if t_gemv < t_padded:
                self.gemv_for[projection] = f"{t_gemv * 1e3:.1f} vs {t_padded * 1e3:.1f} us"

    @staticmethod
    def _gemv(qa, w, dtype: torch.dtype) -> torch.Tensor:
        from accelbench.kernels.fp8_gemv import fp8_gemv
        return fp8_gemv(qa.q, w.q, qa.scale, w.scale, dtype)

    def _padded_gemm(self, qa, w, dtype: torch.dtype) -> torch.Tensor:
        rows = qa.q.shape[0]
        if self.engine.native and rows % PAD_ROWS:
            # Padding rows quantize to zeros; the slice drops them again.
            pad = (0, 0, 0, PAD_ROWS - rows % PAD_ROWS)
            per_row = self.mode.granularity != "tensor"
            qa = Quantized(F.pad(qa.q.view(torch.uint8), pad).view(qa.q.dtype),
                           F.pad(qa.scale, pad, value=1.0) if per_row else qa.scale, qa.block)
        out = torch.empty(qa.q.shape[0], w.q.shape[0], dtype=dtype, device=qa.q.device)
        return self.engine.gemm(qa, w, self.mode, out)[:rows]

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
            # The reference quantizer's torch ops, which a compiled step fuses; the engine's own Triton
            # quantizers broke torch.compile of the whole step (H100, torch 2.11).
            qa = quantize(a, self.mode.a)
            if a.shape[0] <= GEMV_ROWS and name.split(".", 3)[-1] in self.gemv_for:
                y = self._gemv(qa, w, x.dtype)
            else:
                y = self._padded_gemm(qa, w, x.dtype)
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

"""The decoder's linear layers in FP8, with the FP8 package's scaling modes (fp8/formats.py) and
executors (fp8/executors/): what the FP8 GEMM benchmark measures on one shape, here in a whole model.

- W8A8: every projection of every decoder layer has its weights quantized once, ahead of time (the
  mode's weight scheme), and its activations quantized on every call (current scaling, plain torch
  ops that the graphs engine's compiled step fuses); the GEMM
  runs on the backend's FP8 executor (cuBLAS on Hopper; emulated, and labelled so, elsewhere).
  Activations are padded to 16 rows for the native executor, as serving engines do at small batch.
- weight-only: the same FP8 weights, dequantized to the activation dtype on every call, then an
  ordinary matmul: the model's FP8 accuracy at BF16 GEMM speed.
- On CUDA, W8A8 at a decode step's few activation rows (the batch) with per-tensor or per-row
  scales may run instead as a Triton GEMV (fp8/kernels/gemv.py) that reads each FP8 weight byte
  once without padding the rows in memory, on tensor cores with the operands swapped (at most 16
  rows); the same numbers (FP8 operands, fp32 accumulation). Neither it nor cuBLAS wins every
  shape on every device (8B shape: on an H100 the GEMV won all four projections, on an H200 cuBLAS
  won down), so `choose_kernels` times both on each projection's shape before the step is
  captured and keeps the faster; `execution` says which ran, with the times. The GEMV also runs
  with K cut in 2 or 4 parts (more programs where the output rows alone leave SMs idle: on an
  H100 qkv, o and down were 7-15 % faster so), its fp32 partial products summed by the compiled
  step in the kernel that reads them next.
- Static and delayed scaling (the accuracy benchmark): each projection keeps its own activation
  scale state, a scale calibrated once from the projections' activations over a calibration text
  (`calibrating()`: the maximum amax seen, as Intel Neural Compressor's `maxabs` measurement), or
  an amax history of its earlier calls (fp8/reference.DelayedScaling), and quantizes with the
  reference quantizer under that state. The decode benchmark runs current scaling only.
The embedding table stays in the model's dtype. So does the output projection, as serving recipes
usually keep it, unless the variant is `w8a8+head` (`head` below): then it is quantized like the
projections, as gpt-fast and torchao's `quantize_` do by default; its accuracy cost is in the KL.
"""
from __future__ import annotations

import collections
import contextlib
from typing import Optional

import torch
import torch.nn.functional as F

from accelbench.fp8 import fused
from accelbench.fp8.executors import executor_for, weight_scheme
from accelbench.fp8.formats import MODES
from accelbench.fp8.reference import (DelayedScaling, Quantized, block_amax, quantize, reference_quantize,
                                      scale_from_amax)
from accelbench.backends.base import Backend

# The decoder's projections as it multiplies them: q/k/v and gate/up stacked (llama.py), so that
# their rows share the mode's weight scales where the scheme has one per tensor.
PROJECTIONS = ("self_attn.qkv_proj", "self_attn.o_proj", "mlp.gate_up_proj", "mlp.down_proj")
PAD_ROWS = 16
GEMV_ROWS = 16  # the GEMV's limit (fp8/kernels/gemv.MAX_ROWS)
OWN_GEMM = "cuBLAS"  # choose_kernels' names: the executor's own (padded) GEMM, and the GEMV
TENSOR_CORE = "tensor-core GEMV"
# The GEMV with K cut in parts (fp8/kernels/gemv.py): the parts' sum fuses into the next kernel of
# a compiled step; it fills SMs that a shape with few output rows leaves idle (down_proj).
SPLIT_K = {TENSOR_CORE: 1, f"{TENSOR_CORE}, K in 2": 2, f"{TENSOR_CORE}, K in 4": 4}


class Fp8Linears:
    def __init__(self, weights: dict[str, torch.Tensor], layers: int, mode_name: str, weight_only: bool,
                 backend: Backend, head: Optional[str] = None):
        """`head`: the output projection's name, where it is quantized too."""
        self.mode = MODES[mode_name]
        if self.mode.policy != "current" and self.mode.granularity != "tensor":
            raise ValueError(f"mode {mode_name}: a {self.mode.policy} scale per token does not carry from one "
                             "input to the next (tokens differ); static and delayed scaling are per tensor here")
        self.calibration: dict[str, torch.Tensor] = {}  # projection -> largest activation amax seen (static)
        self.histories: dict[str, DelayedScaling] = {}  # projection -> amax history (delayed)
        self._calibrating = False
        self.weight_only = weight_only
        self.weights = weights
        self.executor, self.emulated_because = executor_for(backend, self.mode, "auto")
        self.gemv_capable = backend.name == "cuda" and self.executor.native and not weight_only \
            and self.mode.granularity in ("tensor", "row") and self.mode.a.fmt.dtype == self.mode.b.fmt.dtype
        self.chosen_rows: Optional[int] = None  # the activation rows choose_kernels timed at
        self.times_for: dict[str, dict[str, float]] = {}  # projection -> kernel -> us per call, at chosen_rows
        self.left_out: dict[str, str] = {}  # kernel -> why choose_kernels did not consider it
        self.q = {f"model.layers.{i}.{p}": quantize(weights[f"model.layers.{i}.{p}.weight"].contiguous(),
                                                    weight_scheme(self.mode))
                  for i in range(layers) for p in PROJECTIONS}
        self.head = head
        if head is not None:
            self.q[head] = quantize(weights[f"{head}.weight"].contiguous(), weight_scheme(self.mode))

    @property
    def execution(self) -> str:
        if self.weight_only:
            text = "FP8 weights dequantized per call, then a matmul in the activation dtype"
        else:
            text = self.executor.execution + (f" ({self.emulated_because})" if self.emulated_because else "")
        if self.head is not None:
            text += f"; the output projection ({self.head}) in FP8 too"
        if self.times_for:
            chosen = "; ".join(f"{p.split('.')[-1]} {self._kernel_for(p)} (" + ", ".join(
                f"{name} {us:.1f}" for name, us in sorted(times.items(), key=lambda x: x[1])) + " us)"
                for p, times in self.times_for.items())
            text += f"; at {self.chosen_rows} rows the fastest kernel timed per projection: {chosen}"
        if self.left_out:
            text += "; left out: " + "; ".join(f"{k} ({why})" for k, why in self.left_out.items())
        return text

    @staticmethod
    def _kernels(rows: int) -> list[str]:
        """The kernels that can multiply `rows` activation rows."""
        return [OWN_GEMM] + list(SPLIT_K) * (rows <= GEMV_ROWS)

    def projections_timed_s(self) -> Optional[float]:
        """A step's FP8 projections as choose_kernels timed them (each projection's fastest kernel, per
        call, times its layers), or None where it timed none or not all of them."""
        counts = collections.Counter(map(_projection, self.q))
        if not self.times_for or set(self.times_for) != set(counts):
            return None
        return sum(min(self.times_for[p].values()) * 1e-6 * n for p, n in counts.items())

    def _kernel_for(self, projection: str) -> str:
        """The fastest kernel choose_kernels timed on `projection` (the executor's GEMM where it timed none)."""
        times = self.times_for.get(projection)
        return min(times, key=times.get) if times else OWN_GEMM

    def _multiply(self, kernel: str, qa: Quantized, w: Quantized, dtype: torch.dtype) -> torch.Tensor:
        product = self._product(kernel, qa, w, dtype)
        return product if product.dim() == 2 else product.sum(0).to(dtype)

    def _product(self, kernel: str, qa: Quantized, w: Quantized, dtype: torch.dtype) -> torch.Tensor:
        """What `kernel` writes: the product, or (K in parts) the parts' fp32 partial products."""
        if kernel == OWN_GEMM:
            return self._padded_gemm(qa, w, dtype)
        from accelbench.fp8.kernels.gemv import fp8_gemv_tc  # Triton: only where choose_kernels chose it
        return fp8_gemv_tc(qa.q, w.q, qa.scale, w.scale, dtype, SPLIT_K[kernel])

    def choose_kernels(self, rows: int) -> None:
        """Before a step at `rows` activation rows is captured: per projection, time every kernel
        that can run it on this device (as graph replays over every layer's weights,
        triton.testing.do_bench_cudagraph, activations quantized ahead) and let the fastest run it.
        Each is checked against the executor's GEMM first; one that disagrees is never used."""
        kernels = self._kernels(rows)
        if not self.gemv_capable or len(kernels) == 1:
            return
        from triton.testing import do_bench_cudagraph
        self.chosen_rows = rows
        for projection in dict.fromkeys(map(_projection, self.q)):
            names = [name for name in self.q if _projection(name) == projection]  # every layer's
            layers = [self.q[name] for name in names]
            w, dtype = layers[0], self.weights[f"{names[0]}.weight"].dtype
            x = torch.randn(rows, w.q.shape[1], device=w.q.device, dtype=dtype)
            qa = quantize(x, self.mode.a)
            expected = self._multiply(OWN_GEMM, qa, w, dtype)
            tolerance = 1e-2 * float(expected.abs().max())
            agree = [OWN_GEMM]
            for k in kernels[1:]:
                try:
                    if torch.allclose(self._multiply(k, qa, w, dtype), expected, rtol=2e-2, atol=tolerance):
                        agree.append(k)
                    else:
                        self.left_out[k] = "disagreed with the executor's GEMM"
                except Exception as exc:  # a kernel this Triton cannot compile here is left out, not fatal
                    self.left_out[k] = f"failed: {str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__}"
            # Each call on the next layer's weights, as the step streams them: one projection's
            # weights alone (16-117 MB) would stay in L2 from replay to replay and time too fast.
            # Partial products are timed as written: a compiled step sums them in the next kernel.
            every_layer = {k: (lambda k=k: [self._product(k, qa, w, dtype) for w in layers]) for k in agree}
            self.times_for[projection] = {k: do_bench_cudagraph(fn) * 1e3 / len(layers)  # ms per replay -> us a call
                                          for k, fn in every_layer.items()}

    def _padded_gemm(self, qa, w, dtype: torch.dtype) -> torch.Tensor:
        rows = qa.q.shape[0]
        if self.executor.native and rows % PAD_ROWS:
            # Padding rows quantize to zeros; the slice drops them again.
            pad = (0, 0, 0, PAD_ROWS - rows % PAD_ROWS)
            per_row = self.mode.granularity != "tensor"
            qa = Quantized(F.pad(qa.q.view(torch.uint8), pad).view(qa.q.dtype),
                           F.pad(qa.scale, pad, value=1.0) if per_row else qa.scale, qa.block)
        out = torch.empty(qa.q.shape[0], w.q.shape[0], dtype=dtype, device=qa.q.device)
        return self.executor.gemm(qa, w, self.mode, out)[:rows]

    @contextlib.contextmanager
    def calibrating(self):
        """A context in which calls run in the weights' own dtype and record each projection's
        largest activation amax: the static scales, once it ends."""
        self._calibrating = True
        try:
            yield self
        finally:
            self._calibrating = False

    def _scaling(self, name: str, a: torch.Tensor):
        """The activation scaling state of projection `name` under the mode's policy (see
        fp8/reference.reference_quantize): None (current), a scale (static), a history (delayed)."""
        if self.mode.policy == "static":
            if name not in self.calibration:
                raise RuntimeError(f"static scaling: projection {name} was never calibrated")
            return scale_from_amax(self.calibration[name], self.mode.a.fmt, self.mode.a.rounding)
        if self.mode.policy == "delayed":
            return self.histories.setdefault(name, DelayedScaling())
        return None

    def _quantize_activations(self, a: torch.Tensor, name: str = "") -> Quantized:
        """Inside a compiled step, the reference quantizer's torch ops, which Inductor fuses into
        the kernels around them (the fused Triton quantizers broke torch.compile of the whole step:
        H100, torch 2.11). Run eagerly (prefill, the eager engine), the fused quantizers: the same
        values bit for bit (fused.py), in one or two passes instead of a chain of torch ops,
        which made FP8 prefill several times slower than BF16. Static and delayed scaling: the
        reference quantizer under the projection's own state."""
        if self.mode.policy != "current":
            return reference_quantize(a, self.mode.a, self._scaling(name, a))
        if torch.compiler.is_compiling() or not fused.covers(self.mode.a):
            return quantize(a, self.mode.a)
        return fused.current(a.contiguous(), self.mode.a)

    def fp8_bytes(self) -> int:
        """Bytes of the FP8 weights and their scales (what a step streams instead of the originals)."""
        return sum(q.q.numel() + q.scale.numel() * q.scale.element_size() for q in self.q.values())

    def __call__(self, x: torch.Tensor, name: str) -> torch.Tensor:
        bias = self.weights.get(f"{name}.bias")
        if name not in self.q:
            return F.linear(x, self.weights[f"{name}.weight"], bias)
        w = self.q[name]
        a = x.reshape(-1, x.shape[-1])
        if self._calibrating:
            amax = block_amax(a, self.mode.a.block).float()
            seen = self.calibration.get(name)
            self.calibration[name] = amax if seen is None else torch.maximum(seen, amax)
            y = F.linear(a, self.weights[f"{name}.weight"])
        elif self.weight_only:
            y = F.linear(a, w.dequantize(a.dtype))
        else:
            kernel = self._kernel_for(_projection(name)) if a.shape[0] == self.chosen_rows else OWN_GEMM
            y = self._multiply(kernel, self._quantize_activations(a, name), w, x.dtype)
        if bias is not None:
            y = y + bias
        return y.view(*x.shape[:-1], y.shape[-1])


def _projection(name: str) -> str:
    """A weight's name without its layer: what every layer's copy of it shares."""
    return name.split(".", 3)[-1] if name.startswith("model.layers.") else name


def kl_and_agreement(reference_logits: torch.Tensor, logits: torch.Tensor) -> tuple[float, float]:
    """Mean KL(reference || other) of next-token distributions, and top-1 agreement, over positions."""
    p = torch.log_softmax(reference_logits.float(), dim=-1)
    q = torch.log_softmax(logits.float(), dim=-1)
    kl = (p.exp() * (p - q)).sum(-1).mean()
    agree = (reference_logits.argmax(-1) == logits.argmax(-1)).float().mean()
    return float(kl), float(agree)

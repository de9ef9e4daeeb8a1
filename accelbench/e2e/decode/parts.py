"""The decode step and the prefill without their projections: what a step costs besides streaming
its weights (norms, RoPE, attention over the cache, the activation quantizers, sampling, launches
and, under tensor parallelism, the all-reduces), timed on the same engine as the case itself.

Every projection (q/k/v, o, gate/up, down, the output layer) is replaced by a stand-in that reads
its input and broadcasts one value of it across the projection's output features: no weight is
read, every other operation runs on tensors of its real shape, and each still depends on the one
before it, so a compiler cannot drop any of it. For FP8 the stand-in quantizes its input first, as
the real projection does. The stand-in's outputs are meaningless, so nothing is checked here: this
is the timing of a part (accelbench/explain/model.py adds it to the weights' streaming time), never
a figure of its own.
"""
from __future__ import annotations

import statistics
from typing import Callable, Optional

import torch

from accelbench.e2e.decode.model import Llama
from accelbench.timing import StepMarks

CALLS = 3  # generations timed; the median of their steps, as the case's own TPOT is


class ProjectionStandIn:
    """A `Linear` (model.py) that reads no weight: out[..., j] = x[..., 0] for every output j."""

    def __init__(self, out_features: dict[str, int],
                 quantize: Optional[Callable[[torch.Tensor, str], torch.Tensor]] = None,
                 contiguous: bool = False):
        self.out_features = out_features
        self.quantize = quantize  # FP8: (activations [rows, K], name) -> their FP8 values
        self.contiguous = contiguous  # a collective (tensor parallelism) needs a contiguous tensor

    def __call__(self, x: torch.Tensor, name: str) -> torch.Tensor:
        first = x[..., :1]
        if self.quantize is not None:
            q = self.quantize(x.reshape(-1, x.shape[-1]), name)
            first = q[:, :1].to(x.dtype).view(*x.shape[:-1], 1)
        out = first.expand(*x.shape[:-1], self.out_features[name])
        return out.contiguous() if self.contiguous else out


def without_projections(model: Llama, quantize=None, tensor_parallel: bool = False) -> Llama:
    """The same model (its weights shared, not copied) with every projection a stand-in."""
    out_features = {name[:-len(".weight")]: t.shape[0] for name, t in model.w.items()
                    if name.endswith("_proj.weight")}
    out_features[model.head] = model.w[model.head_weight].shape[0]
    stand_in = ProjectionStandIn(out_features, quantize, contiguous=tensor_parallel)
    return Llama(model.config, model.w, linear=stand_in, reduce=model.reduce)


def fp8_activation_quantizer(fp8) -> Callable[[torch.Tensor, str], torch.Tensor]:
    """The FP8 projections' own activation quantizer (their scaling policy and state), values only."""
    def quantize(a: torch.Tensor, name: str) -> torch.Tensor:
        if name not in fp8.q or fp8.weight_only:  # weight-only and unquantized layers quantize nothing
            return a
        return fp8._quantize_activations(a, name).q
    return quantize


def time_without_projections(engine_class, model: Llama, prompt: torch.Tensor, new: int, backend,
                             quantize=None, tensor_parallel: bool = False) -> tuple[float, float]:
    """(TTFT, TPOT) medians of `CALLS` generations on `engine_class` (the case's own engine: a
    graphs case compiles and captures the stand-in step as it does the real one)."""
    clock = StepMarks(backend, keep_calls=CALLS)
    engine = engine_class(without_projections(model, quantize, tensor_parallel), prompt, new, clock, backend)
    engine.run()  # warm-up (eager kernels' first launches, allocator)
    clock.calls.clear()
    for _ in range(CALLS):
        engine.run()
    return statistics.median(clock.first()), statistics.median(clock.steps())

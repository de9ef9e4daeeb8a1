"""End-to-end LLM decode (docs/benchmarks.md, LLM decode; docs/metrics.md): how fast a Llama-family model generates
tokens, and how close that is to the memory-bandwidth floor.

One timed call is one whole greedy generation: prefill of the prompt, then `new_tokens - 1`
single-token decode steps on a static KV cache. The harness times the call end to end on the
device's clock; inside it, the engine marks the first token and every step with the harness's
`timing.StepMarks` (the same clock), which gives TTFT = prefill + first token and each step's
time, so TPOT = (end-to-end - TTFT) / (new_tokens - 1) is reported as the median and p90 over
steps of the timed calls.

Engines run the same cases from the same weights:
- `eager`: the decoder of `model.py`, one kernel launch at a time (launch-bound at batch 1);
- `graphs`: the same decoder, its decode step captured once as a device graph (CUDA graphs, HPU
  graphs in lazy mode) and replayed for every step; prefill eager. Where the device has no graph
  replay but a torch.compile backend (Gaudi in eager mode: `hpu_backend`), the step compiled by it
  and called each step, which `engine_detail` says;
- `hf`: Hugging Face transformers' `generate` (greedy, its default dynamic cache), what users would
  otherwise run; needs `transformers` (pip install 'accelbench[decode]').

Bytes per step = every weight but the embedding table (only gathered; a tied table is read as the
output projection) + the KV cache the step attends to. Fraction of the floor = (bytes / bandwidth)
/ TPOT, with the bandwidth the run's measured `membw.device` ceiling (each decode run measures one
first: the `floor/copy` case) or else the datasheet's; the metric's name says which
(`Decode.derived`, a `view.FloorFraction`).

Correctness: the logits of the first steps of a call are checked against an eager reference, a
forward pass without cache over the prompt and the generated tokens, in the same dtype.

The package: benchmark.py (the cases, what one call is, the declarations of how its figures are
shown), engines.py (eager, graphs, hf), quality.py (the logits check, FP8's cost against the
unquantized model, perplexity of a text), model.py (the decoder), weights.py (synthetic weights and
local checkpoints), fp8_linear.py (FP8 projections), tensor_parallel.py (the model split over ranks).
"""
from accelbench.e2e.decode.benchmark import TINY, Decode, TensorParallelDecode
from accelbench.e2e.decode.engines import EagerEngine, GraphEngine, HfEngine

__all__ = ["TINY", "Decode", "TensorParallelDecode", "EagerEngine", "GraphEngine", "HfEngine"]

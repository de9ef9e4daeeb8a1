"""Probe: the Llama-3.1-8B decode step (batch 1, a 768-position cache) compiled and captured as the
graphs engine does it, in bf16 and FP8 W8A8 tensor-wise (the kernels chosen as the benchmark
chooses them), under variants of the compiled step, all in one process: ms per step (best of
three medians of graph replays) and bf16 / FP8 per variant.

Variants, PRECISION-VARIANT with PRECISION bf16 or fp8:
  sdpa  the step as the benchmark compiles it (scaled_dot_product_attention under a mask)
  mk    Inductor's multi-kernel reductions (persistent reductions up to 16x longer, benchmarked)
  pdl   Inductor's programmatic dependent launch (its kernels overlap the previous one's tail)
  flex  FlexAttention with the mask as a score_mod instead of SDPA
PROFILE=VARIANT prints that variant's kernels by total time.
Usage: python3 scripts/probe_decode_variants.py fp8-sdpa,bf16-sdpa[,...]"""
import os
import sys

import torch
import torch._dynamo
from torch.nn.attention.flex_attention import flex_attention

from accelbench.backends import resolve_backend
from accelbench.e2e import llama
from accelbench.e2e.decode import CONFIGS
from accelbench.e2e.fp8_linear import Fp8Linears
from accelbench.e2e.llama import KVCache, Llama
from accelbench.e2e.weights import synthetic_weights
from decode_probe_step import captured_step, print_kernels, step_ms  # scripts/

variants = sys.argv[1].split(",")
backend = resolve_backend("cuda")
config = CONFIGS["llama3.1-8b"]
batch, cache_len = 1, 768
bf16 = Llama(config, synthetic_weights(config, torch.bfloat16, backend.device))
fp8 = Fp8Linears(bf16.w, config.layers, "tensor", False, backend)
fp8.choose_kernels(rows=batch)
print(fp8.execution, flush=True)
models = {"bf16": bf16, "fp8": Llama(config, bf16.w, linear=fp8)}
cache = KVCache.empty(config, batch, cache_len, torch.bfloat16, backend.device)
sdpa = llama.attention


def flex(q, k, v, causal=False, offset=0, mask=None):
    if mask is None:
        return sdpa(q, k, v, causal, offset, mask)
    valid = mask[0]
    return flex_attention(q, k, v, score_mod=lambda s, b, h, qi, ki: torch.where(valid[ki], s, -float("inf")),
                          enable_gqa=True)


options = {"sdpa": {}, "flex": {}, "mk": {"triton.multi_kernel": 1}, "pdl": {"triton.enable_pdl": True}}
results = {}
for variant in variants:
    precision, how = variant.split("-")
    llama.attention = flex if how == "flex" else sdpa
    torch._dynamo.reset()
    try:
        replay, setup = captured_step(backend, models[precision], cache, batch, cache_len // 2, **options[how])
    except Exception as exc:  # a variant this torch cannot compile is reported, not fatal
        print(f"{variant}: failed {str(exc)[:300]}", flush=True)
        continue
    results[variant] = step_ms(replay, repeats=3)
    print(f"{variant}: {results[variant]:.4f} ms/step (best of 3 medians; setup {setup:.0f} s)", flush=True)
    if variant == os.environ.get("PROFILE", ""):
        print_kernels(replay)
for how in options:
    if f"bf16-{how}" in results and f"fp8-{how}" in results:
        print(f"{how}: bf16 / fp8 = {results[f'bf16-{how}'] / results[f'fp8-{how}']:.3f}")

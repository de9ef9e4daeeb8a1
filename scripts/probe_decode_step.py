"""Probe: where a decode step's time goes (one model, one batch): each projection alone as a matmul
at the step's batch (GB/s), the whole compiled-and-captured step, and its kernels by total time
(torch.profiler); with FP8 (w8a8-MODE or w8-MODE, as the decode benchmark names them), the step
of that FP8 model, its kernels chosen as the benchmark chooses them.
Usage: python3 scripts/probe_decode_step.py [MODEL] [BATCH] [CACHE_LEN] [FP8]"""
import sys

import torch
import torch.nn.functional as F
from triton.testing import do_bench_cudagraph

from accelbench.backends import resolve_backend
from accelbench.e2e.decode import CONFIGS
from accelbench.e2e.fp8_linear import Fp8Linears
from accelbench.e2e.llama import KVCache, Llama
from accelbench.e2e.weights import synthetic_weights
from decode_probe_step import captured_step, print_kernels, step_ms  # scripts/

name, batch, cache_len, fp8_name = (sys.argv[1:] + ["llama3.1-8b", "1", "768", "none"][len(sys.argv) - 1:])[:4]
batch, cache_len = int(batch), int(cache_len)
backend = resolve_backend("cuda")
config = CONFIGS[name]
model = Llama(config, synthetic_weights(config, torch.bfloat16, backend.device))
if fp8_name != "none":
    kind, _, mode = fp8_name.partition("-")
    fp8 = Fp8Linears(model.w, config.layers, mode, kind == "w8", backend)
    fp8.choose_kernels(rows=batch)
    print(fp8.execution)
    model = Llama(config, model.w, linear=fp8)


def timed(fn) -> float:
    """Seconds per call of a lone projection, as calls captured in one CUDA graph (as the step runs
    them): no host overhead in the figure."""
    return do_bench_cudagraph(fn, rep=20, return_mode="median") / 1e3


x = torch.randn(batch, config.hidden, device="cuda", dtype=torch.bfloat16)
for proj in ("self_attn.qkv_proj", "self_attn.o_proj", "mlp.gate_up_proj", "mlp.down_proj"):
    w = model.w[f"model.layers.0.{proj}.weight"]
    a = torch.randn(batch, w.shape[1], device="cuda", dtype=torch.bfloat16)
    t = timed(lambda: F.linear(a, w))
    print(f"{proj:20s} {tuple(w.shape)}: {t * 1e6:8.1f} us  {w.numel() * 2 / t / 1e9:7.0f} GB/s")
w = model.w[model.head_weight]
t = timed(lambda: F.linear(x, w))
print(f"{'lm_head':20s} {tuple(w.shape)}: {t * 1e6:8.1f} us  {w.numel() * 2 / t / 1e9:7.0f} GB/s")

cache = KVCache.empty(config, batch, cache_len, torch.bfloat16, backend.device)
streamed = sum(v.numel() for k, v in model.w.items() if k != "model.embed_tokens.weight") * 2
for label, compiled in (("eager step", False), ("compiled step", True)):
    replay, setup = captured_step(backend, model, cache, batch, cache_len // 2, compiled)
    t = step_ms(replay) / 1e3
    print(f"{label}, captured: {t * 1e3:.3f} ms/step, {streamed / t / 1e9:.0f} GB/s of weights (setup {setup:.0f} s)")
print_kernels(replay, rows=25)

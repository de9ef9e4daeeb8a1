"""Shared by the decode probes (probe_decode_step.py, probe_decode_variants.py): a decode step
captured as one graph replay, as the graphs engine captures it, its time, and its kernels."""
import time

import torch
import torch._inductor.config as inductor
from triton.testing import do_bench

from accelbench.e2e.llama import StaticStep


def captured_step(backend, model, cache, batch: int, position: int, compiled: bool = True, **inductor_options):
    """(replay, setup seconds): one step at `position` of `model` on `cache`, compiled (coordinate-
    descent tuning, as the graphs engine compiles it, plus `inductor_options`) or eager, then
    captured; each replay starts again from `position`, so every replay is the same step."""
    step = StaticStep(model, cache, batch)
    step.start(torch.zeros(batch, dtype=torch.long, device="cuda"), position)
    fn = torch.compile(step, fullgraph=True, dynamic=False) if compiled else step
    t0 = time.perf_counter()
    with inductor.patch({"coordinate_descent_tuning": True, **inductor_options}):
        graph = backend.capture_graph(fn)

    def replay():
        step.position.fill_(position)
        graph.replay()
    return replay, time.perf_counter() - t0


def step_ms(replay, repeats: int = 1) -> float:
    """ms per step: the best of `repeats` medians of replays (a whole step, not launch-bound)."""
    return min(do_bench(replay, warmup=25, rep=200, return_mode="median") for _ in range(repeats))


def print_kernels(replay, rows: int = 16) -> None:
    """The kernels of 10 replays by total device time."""
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as prof:
        for _ in range(10):
            replay()
        torch.cuda.synchronize()
    print(prof.key_averages().table(sort_by="cuda_time_total", row_limit=rows, max_name_column_width=60), flush=True)

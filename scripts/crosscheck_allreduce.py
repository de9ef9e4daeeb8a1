"""The collectives cross-check: a plain torch.distributed.all_reduce loop timed with CUDA events,
none of accelbench's code, to set beside the suite's all_reduce figure (not part of the suite).

  torchrun --standalone --nproc-per-node N scripts/crosscheck_allreduce.py --out DIR [--bytes 1G]

Each rank times ITERS in-place all-reduces of the message back to back, each between two CUDA
events, after WARMUP untimed ones; the per-iteration time is the slowest rank's; busbw = S / median
x 2(n-1)/n (nccl-tests). Rank 0 prints one JSON line per dtype and writes DIR/allreduce.json.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
from pathlib import Path

import torch
import torch.distributed as dist

WARMUP, ITERS = 20, 100


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--bytes", type=int, default=2**30)
    args = parser.parse_args()
    local = int(os.environ["LOCAL_RANK"])
    torch.cuda.set_device(local)
    dist.init_process_group("nccl", device_id=torch.device("cuda", local))
    n = dist.get_world_size()
    results = []
    for dtype in (torch.bfloat16, torch.float32):
        x = torch.ones(args.bytes // dtype.itemsize, dtype=dtype, device="cuda")
        for _ in range(WARMUP):
            dist.all_reduce(x)
        torch.cuda.synchronize()
        events = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)) for _ in range(ITERS)]
        for start, end in events:
            start.record()
            dist.all_reduce(x)
            end.record()
        torch.cuda.synchronize()
        times = torch.tensor([s.elapsed_time(e) / 1e3 for s, e in events], dtype=torch.float64, device="cuda")
        dist.all_reduce(times, op=dist.ReduceOp.MAX)  # the slowest rank's time per iteration
        t = statistics.median(times.tolist())
        algbw = x.numel() * dtype.itemsize / t
        results.append({"check": "plain all_reduce loop", "dtype": str(dtype).removeprefix("torch."), "ranks": n,
                        "bytes": x.numel() * dtype.itemsize, "median_s": t, "algbw_GBps": algbw / 1e9,
                        "busbw_GBps": algbw * 2 * (n - 1) / n / 1e9, "iters": ITERS,
                        "device": torch.cuda.get_device_name(), "nccl": ".".join(map(str, torch.cuda.nccl.version()))})
        del x
    if dist.get_rank() == 0:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "allreduce.json").write_text(json.dumps(results, indent=2) + "\n")
        for r in results:
            print(json.dumps(r))
    dist.destroy_process_group()


if __name__ == "__main__":
    main()

"""Cross-checks run on a GPU machine (not part of the suite; quoted in closing notes).

  python3 scripts/crosscheck.py gemm   --out DIR   # harness vs triton.testing.do_bench, bf16 8192^3
  python3 scripts/crosscheck.py energy --out DIR   # 5 s energy-counter window vs 100 ms power samples

Each check prints one JSON line and writes it to DIR/<check>.json.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from accelbench.backends import resolve_backend
from accelbench.benchmark import Case
from accelbench.energy import energy_window, measure_idle_power
from accelbench.harness import RunOptions, Runner
from accelbench.microbench.gemm import Gemm, gemm_case
from accelbench.records import RunInfo
from accelbench.store import RunWriter, utc_now
from accelbench.timing import policy_for


def _runner(backend, out: Path, energy: bool) -> Runner:
    info = RunInfo(schema_version=1, run_id="crosscheck", status="running", started_at=utc_now(),
                   backend=backend.name, device_name=backend.device_name(), device_count=1, host="",
                   accelbench_version="", commit=None, argv=[], suite="standard")
    writer = RunWriter(out / f"crosscheck-{int(time.time())}", info)
    return Runner(backend, writer, RunOptions(policy=policy_for("standard"), energy=energy))


def check_gemm(out: Path) -> dict:
    import triton.testing
    backend = resolve_backend("cuda")
    case: Case = gemm_case("square", "bf16", 8192, 8192, 8192, "8192")
    record = _runner(backend, out, energy=False).run_case(Gemm(), case)
    harness_tflops = record.metric("tflops").value
    a = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
    ms = triton.testing.do_bench(lambda: a @ b, warmup=200, rep=2000, return_mode="median")
    do_bench_tflops = 2 * 8192**3 / (ms / 1e3) / 1e12
    return {"check": "gemm bf16 8192^3", "device": backend.device_name(), "status": record.status,
            "harness_tflops": harness_tflops, "harness_mfu_pct": record.metric("mfu").value,
            "do_bench_tflops": do_bench_tflops,
            "rel_diff": abs(harness_tflops - do_bench_tflops) / do_bench_tflops,
            "harness_samples": record.stats.n, "harness_cv": record.stats.cv}


def check_energy(out: Path) -> dict:
    backend = resolve_backend("cuda")
    telemetry = backend.telemetry()
    idle = measure_idle_power(telemetry, seconds=2.0)
    a = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
    c = torch.empty_like(a)
    call = lambda: torch.matmul(a, b, out=c)  # noqa: E731
    # Bring the device to steady load first, as the harness does (warm-up and samples precede
    # every energy window), so both readings see the same steady state.
    t_end = time.perf_counter() + 2.0
    while time.perf_counter() < t_end:
        for _ in range(50):
            call()
        backend.synchronize()
    per_call = 0.0015
    rec = energy_window(backend, call, telemetry, 5.0, per_call, idle)
    flops = 2 * 8192**3 * rec.iterations
    return {"check": "energy 5 s bf16 8192^3", "device": backend.device_name(), "source": rec.source,
            "window_s": rec.window_s, "iterations": rec.iterations, "joules": rec.joules,
            "counter_avg_w": rec.avg_power_w, "sampled_avg_w": rec.sampled_avg_power_w,
            "power_samples": rec.power_samples,
            "rel_diff": abs(rec.avg_power_w - rec.sampled_avg_power_w) / rec.avg_power_w,
            "idle_w": idle, "tflops": flops / rec.window_s / 1e12,
            "tflops_per_w": flops / rec.joules / 1e12,
            "throttle_reasons_seen": rec.throttle_reasons_seen,
            "power_limit_w": telemetry.state().power_limit_w}


CHECKS = {"gemm": check_gemm, "energy": check_energy}

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checks", nargs="+", choices=sorted(CHECKS))
    parser.add_argument("--out", type=Path, default=Path("."))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for name in args.checks:
        result = CHECKS[name](args.out)
        line = json.dumps(result)
        print(line, flush=True)
        (args.out / f"{name}.json").write_text(line + "\n")

"""Cross-checks run on a GPU machine (not part of the suite; quoted in closing notes).

  python3 scripts/crosscheck.py gemm   --out DIR   # harness vs triton.testing.do_bench, bf16 8192^3
  python3 scripts/crosscheck.py energy --out DIR   # 5 s energy-counter window vs 100 ms power samples
  python3 scripts/crosscheck.py flush  --out DIR   # --flush always vs do_bench, bf16 4096^3 and 8192^3, same inputs

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


def _runner(backend, out: Path, energy: bool, **options) -> Runner:
    info = RunInfo(schema_version=1, run_id="crosscheck", status="running", started_at=utc_now(),
                   backend=backend.name, device_name=backend.device_name(), device_count=1, host="",
                   accelbench_version="", commit=None, argv=[], suite="standard")
    writer = RunWriter(out / f"crosscheck-{int(time.time())}", info)
    return Runner(backend, writer, RunOptions(policy=policy_for("standard"), energy=energy, **options))


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


class _Prepared(Gemm):
    """The GEMM benchmark handing out one workload already prepared: the harness times the very
    tensors another timer is given."""

    def __init__(self, workload):
        self.workload = workload

    def prepare(self, case, backend):
        return self.workload


def check_flush(out: Path) -> dict:
    """The harness with the cache flushed before every call (--flush always) beside
    triton.testing.do_bench (which flushes L2 before every call), on the very same input tensors:
    sustained against a 2 s do_bench, burst against do_bench's default 100 ms."""
    import triton.testing
    from accelbench.timing import REGIMES
    backend = resolve_backend("cuda")
    rows = []
    for n in (4096, 8192):
        case = gemm_case("square", "bf16", n, n, n, str(n))
        workload = Gemm().prepare(case, backend)
        flops = 2.0 * n**3
        for regime, rep_ms in (("sustained", 2000), ("burst", 100)):
            record = _runner(backend, out, energy=False, flush_always=True,
                             regimes=(REGIMES[regime],)).run_case(_Prepared(workload), case)
            ms = triton.testing.do_bench(workload.run, warmup=25 if rep_ms == 100 else 200, rep=rep_ms,
                                         return_mode="median")
            suite, reference = record.metric("tflops").value, flops / (ms / 1e3) / 1e12
            rows.append({"n": n, "regime": regime, "do_bench_rep_ms": rep_ms, "status": record.status,
                         "cache": record.method.cache, "harness_tflops": suite, "do_bench_tflops": reference,
                         "rel_diff": abs(suite - reference) / reference,
                         "harness_sm_clock_avg": record.metric("sm_clock_avg") and record.metric("sm_clock_avg").value})
    return {"check": "--flush always vs do_bench, bf16", "device": backend.device_name(), "rows": rows,
            "max_rel_diff": max(r["rel_diff"] for r in rows)}


CHECKS = {"gemm": check_gemm, "energy": check_energy, "flush": check_flush}

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

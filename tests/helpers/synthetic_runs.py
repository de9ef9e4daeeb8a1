"""Run folders made of synthetic records (GEMM, bandwidth, decode cases with realistic fields),
for report and comparison tests that need many cases or several devices without running any."""
from __future__ import annotations

import random
from pathlib import Path

from accelbench.records import CaseRecord, Ceiling, Metric
from accelbench.stats import SampleStats
from accelbench.store import RunWriter

from conftest import make_info

SPEC = {"name": "Synthetic SXM", "source": "made up for tests", "estimated": False, "notes": [],
        "peak_flops": {"bf16": 1.0e15, "fp8": 2.0e15, "fp32": 6.0e13}, "mem_bandwidth_Bps": 3.0e12,
        "tdp_w": 700}


def gemm_record(n: int, tflops: float, power: float = 500.0, dtype: str = "bf16", status: str = "ok",
                reason: str = None) -> CaseRecord:
    time = 2 * n ** 3 / (tflops * 1e12) if tflops else 0.0
    samples = [time * (1 + 0.001 * i) for i in range(5)]
    metrics = [] if status != "ok" else [
        Metric("time", time, "s"), Metric("tflops", tflops, "TFLOP/s"), Metric("mfu", tflops / 10, "%"),
        Metric("avg_power", power, "W"), Metric("tflops_per_w", tflops / power, "TFLOP/s/W")]
    return CaseRecord("gemm", f"{dtype}/square/{n}", {"dtype": dtype, "group": "square", "m": n, "n": n, "k": n},
                      status, reason, samples_s=samples if status == "ok" else [],
                      stats=SampleStats.from_samples(samples) if status == "ok" else None, metrics=metrics,
                      ceiling=f"matmul.{dtype}")


def membw_record(size: int, gbps: float, kernel: str = "triad") -> CaseRecord:
    time = 3 * size / (gbps * 1e9)
    samples = [time] * 3
    return CaseRecord("membw", f"torch/{kernel}/fp32/{size}", {"impl": "torch", "kernel": kernel, "dtype": "fp32",
                                                              "array_bytes": size},
                      "ok", samples_s=samples, stats=SampleStats.from_samples(samples),
                      metrics=[Metric("time", time, "s"), Metric("gbps", gbps, "GB/s")],
                      facts={"memory_level": "device", "working_set_bytes": 3 * size, "cache_bytes": 50 * 2**20})


def decode_record(batch: int, tokens_per_s: float, power: float = 600.0, fp8: str = "none", model: str = "m") -> CaseRecord:
    tpot = batch / tokens_per_s
    samples = [tpot * 256] * 3
    return CaseRecord("decode", f"{model}/graphs/bf16/b{batch}/p512/n256",
                      {"model": model, "engine": "graphs", "dtype": "bf16", "fp8": fp8, "batch": batch, "prompt": 512,
                       "new_tokens": 256}, "ok", samples_s=samples, stats=SampleStats.from_samples(samples),
                      metrics=[Metric("ttft", 0.03, "s"), Metric("tpot", tpot, "s"),
                               Metric("decode_tokens_per_s", tokens_per_s, "tokens/s"), Metric("avg_power", power, "W"),
                               Metric("tokens_per_j", tokens_per_s / power, "tokens/J")],
                      facts={"parameters": 8.0e9, "bytes_per_step": 1.5e10, "memory_level": "device"})


def fp8_record(mode: str, n: int, tflops: float, error: float, impl: str = "auto") -> CaseRecord:
    time = 2 * n ** 3 / (tflops * 1e12)
    samples = [time] * 3
    return CaseRecord("fp8", f"{mode}/{impl}/gemm/normal/m{n}k{n}n{n}",
                      {"mode": mode, "impl": impl, "stage": "gemm", "dist": "normal", "m": n, "k": n, "n": n},
                      "ok", samples_s=samples, stats=SampleStats.from_samples(samples),
                      metrics=[Metric("time", time, "s"), Metric("tflops", tflops, "TFLOP/s"),
                               Metric("quant_rel_error", error, ""), Metric("mfu", tflops / 20, "%")])


def write_synthetic_run(directory: Path, device: str, records: list[CaseRecord], label: str = None,
                        ceilings: dict = None, **info) -> Path:
    info.setdefault("backend", "cuda")
    writer = RunWriter(directory, make_info(run_id=directory.name, label=label, device_name=device,
                                            spec=SPEC, ceilings=ceilings or {}, **info))
    for record in records:
        writer.append(record)
    writer.finish("complete")
    return directory


def many_cases(count: int, speed: float, seed: int) -> list[CaseRecord]:
    """`count` cases: square GEMMs, bandwidth kernels and decode batches, in that proportion 3:1:1."""
    rng = random.Random(seed)
    out = []
    for i in range(count):
        kind = i % 5
        if kind < 3:
            out.append(gemm_record(64 + i, speed * rng.uniform(100, 700), dtype=("bf16", "fp16", "fp32")[kind]))
        elif kind == 3:
            out.append(membw_record(2 ** 20 + i, speed * rng.uniform(2000, 3000), ("mul", "add", "triad", "dot")[i % 4]))
        else:
            out.append(decode_record(1 + i, speed * rng.uniform(100, 5000)))
    return out


def ceiling_pair(tflops: float, gbps: float) -> dict:
    return {"matmul.bf16": Ceiling(tflops * 1e12, "FLOP/s", "bf16/square/4096"),
            "membw.device": Ceiling(gbps * 1e9, "B/s", "torch/copy/fp32/1GiB")}


def write_nightly_runs(root: Path, runs: int, cases: int, samples: int = 10, slowdown_at: int = None,
                       slowdown: float = 1.0) -> None:
    """`runs` nightly GEMM runs of `cases` cases each under `root`, one a day, written as the store
    writes them (run.json + cases.jsonl) without its per-line fsync, to make a large history quickly.
    From run `slowdown_at` on, case 0 is `slowdown` times slower."""
    import json
    from datetime import datetime, timedelta, timezone
    from accelbench.records import to_json_dict
    templates = [to_json_dict(gemm_record(256 + 64 * i, 100.0 + i)) for i in range(cases)]
    start = datetime(2026, 1, 1, tzinfo=timezone.utc)
    rng = random.Random(0)
    for r in range(runs):
        day = start + timedelta(days=r)
        folder = root / f"{day:%Y%m%dT%H%M%SZ}-cuda-ci-nightly"
        folder.mkdir(parents=True)
        info = to_json_dict(make_info(run_id=folder.name, device_name="Synthetic SXM", backend="cuda", status="complete",
                                      started_at=day.isoformat(), commit=f"{r:07x}", spec=SPEC))
        (folder / "run.json").write_text(json.dumps(info))
        lines = []
        for i, record in enumerate(templates):
            base = record["metrics"][0]["value"] * (slowdown if i == 0 and slowdown_at is not None and r >= slowdown_at else 1.0)
            times = [base * (1 + 0.002 * rng.random()) for _ in range(samples)]
            median = sorted(times)[samples // 2]
            flops = 2 * record["params"]["m"] ** 3
            record = dict(record, samples_s=times, throttled=r % 7 == 0,
                          stats=dict(record["stats"], n=samples, median=median, p10=min(times), p90=max(times)),
                          metrics=[dict(m, value=median if m["name"] == "time" else flops / median / 1e12
                                        if m["name"] == "tflops" else m["value"]) for m in record["metrics"]])
            lines.append(json.dumps(record))
        (folder / "cases.jsonl").write_text("\n".join(lines) + "\n")

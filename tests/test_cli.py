import os
import signal
import subprocess
import sys
import time

import pytest
from click.testing import CliRunner

from accelbench.cli import main
from accelbench.store import load_run

from conftest import REPO, bench_cmd

FAST = ["--min-time", "0", "--max-time", "0.05", "--min-samples", "2"]


def run_cli(*args):
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.output


def test_hpu_without_gaudi_software_is_one_clear_line_and_exit_2(tmp_path):
    proc = subprocess.run(bench_cmd("run", "--backend", "hpu", "--out", str(tmp_path)), capture_output=True,
                          text=True, cwd=REPO, timeout=120)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "habana_frameworks" in lines[0] and "install" in lines[0].lower()
    assert "Traceback" not in proc.stderr and not any(tmp_path.iterdir())


@pytest.mark.parametrize("args, message", [
    (["run", "--backend", "tpu"], "unknown backend 'tpu'"),
    (["run", "--bench", "nope"], "unknown benchmark(s) nope"),
    (["run", "--backend", "cpu", "--bench", "gemm", "--case", "no-such-case"], "no cases match"),
    (["run", "--suite", "huge"], "Invalid value for '--suite'"),
    (["report", "/no/such/run"], "not found"),
])
def test_bad_input_exits_2_with_a_message(args, message):
    code, output = run_cli(*args)
    assert code == 2 and message in output and "Traceback" not in output


@pytest.mark.parametrize("args", [["run", "--suite", "huge"], ["run", "--bogus"], ["nosuchcommand"],
                                  ["run", "--backend", "tpu"], ["report"]])
def test_usage_errors_are_one_line_on_stderr(args):
    proc = subprocess.run(bench_cmd(*args), capture_output=True, text=True, cwd=REPO, timeout=120)
    assert proc.returncode == 2 and proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("bench: error: "), proc.stderr


def test_run_writes_results_and_report_and_exits_0(tmp_path):
    code, output = run_cli("run", "--backend", "cpu", "--bench", "gemm", "--case", "fp32/square/128",
                           "--out", str(tmp_path), "--label", "ci", *FAST)
    assert code == 0, output
    (run_dir,) = tmp_path.iterdir()
    run = load_run(run_dir)
    assert run.complete and run.info.label == "ci" and run.info.backend == "cpu"
    assert [c.case_id for c in run.cases] == ["fp32/square/128"] and run.cases[0].status == "ok"
    assert (run_dir / "report.html").read_text().count("fp32/square/128") >= 1


def test_repeated_case_filters_select_any_of_them(tmp_path):
    code, output = run_cli("run", "--backend", "cpu", "--bench", "gemm", "--case", "fp32/square/128",
                           "--case", "fp32/square/256", "--out", str(tmp_path), "--no-report", *FAST)
    assert code == 0, output
    (run_dir,) = tmp_path.iterdir()
    assert [c.case_id for c in load_run(run_dir).cases] == ["fp32/square/128", "fp32/square/256"]


def test_a_failed_case_makes_exit_1(tmp_path, monkeypatch):
    from accelbench.microbench import gemm
    monkeypatch.setattr(gemm.Gemm, "matmul", lambda self, a, b, out: out.fill_(3.0))
    code, output = run_cli("run", "--backend", "cpu", "--bench", "gemm", "--case", "fp32/square/128",
                           "--out", str(tmp_path), "--no-report", *FAST)
    assert code == 1 and "1 failed" in output


@pytest.mark.parametrize("sig, status", [(signal.SIGKILL, "running"), (signal.SIGINT, "interrupted")])
def test_killed_run_keeps_finished_cases(tmp_path, sig, status):
    proc = subprocess.Popen(bench_cmd("run", "--backend", "cpu", "--bench", "gemm", "--case", "fp32/square",
                                      "--out", str(tmp_path), "--no-report", "--min-time", "1.0", "--max-time", "1.0"),
                            cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 90
    cases = None
    while time.time() < deadline:
        found = list(tmp_path.glob("*/cases.jsonl"))
        if found and found[0].read_text().count("\n") >= 1:
            cases = found[0]
            break
        time.sleep(0.05)
    assert cases is not None, "no case finished in time"
    proc.send_signal(sig)
    proc.wait(timeout=60)
    run = load_run(cases.parent)
    assert not run.complete and run.info.status == status
    assert 1 <= len(run.cases) < 4 and all(c.status == "ok" for c in run.cases)
    assert run.status_text.startswith("incomplete")
    if sig == signal.SIGINT:
        assert proc.returncode == 130 and "Traceback" not in proc.stderr


def test_list_and_env_describe_the_suite():
    code, output = run_cli("list")
    assert code == 0 and "gemm:" in output and "quick:" in output
    code, output = run_cli("env")
    assert code == 0 and "cpu: available" in output and "hpu: unavailable" in output
    assert "estimated" in output


def test_help_states_exit_codes_and_the_quick_suite_rules():
    code, output = run_cli("run", "--help")
    text = " ".join(output.split())
    assert code == 0 and "--backend" in text and "--call-budget" in text and "--no-energy" in text
    assert "Exit codes: 0 every case passed" in text and "1 some case failed" in text and "2 bad usage" in text
    assert "software" in text and "0.25 s" in text


def test_list_states_each_suites_duration():
    code, output = run_cli("list")
    assert code == 0
    for suite in ("quick", "standard", "full"):
        line = next(li for li in output.splitlines() if li.strip().startswith(f"{suite}:") and "min" in li)
        assert "cases" in line and "skipped" in line


def test_bench_help_lists_every_verb_with_its_own_summary():
    from accelbench.cli.app import VERBS
    code, output = run_cli("--help")
    assert code == 0
    for name, verb in VERBS.items():
        command = main.get_command(None, name)
        assert command is not None and " ".join(command.help.split()).startswith(verb.summary), name
        assert f"  {name}  " in output and verb.summary in " ".join(output.split())


def _modules_after(args, cwd):
    """The heavy modules a `bench` command imported, run in a fresh interpreter."""
    probe = ("import runpy, sys\n"
             f"sys.argv = ['bench', *{list(args)!r}]\n"
             "try:\n    runpy.run_module('accelbench', run_name='__main__')\n"
             "except SystemExit as exc:\n    code = exc.code\n"
             "print(code, sorted(m for m in ('torch', 'matplotlib', 'pandas', 'duckdb', 'scipy') if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=cwd, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    return proc.stdout.strip().splitlines()[-1]


def test_help_typos_and_reading_runs_never_import_torch(tmp_path):
    from accelbench.benchmark import benchmark_classes
    from accelbench import METHOD_VERSION
    from helpers.synthetic_runs import decode_record, gemm_record, write_synthetic_run
    views = {name: cls.view() for name, cls in benchmark_classes().items()}
    run = write_synthetic_run(tmp_path / "r", "Device A", [gemm_record(1024, 100.0), decode_record(1, 90.0)],
                              views=views, method_version=METHOD_VERSION)
    assert _modules_after(["--help"], tmp_path) == "0 []"
    assert _modules_after(["report", "--help"], tmp_path) == "0 []"
    assert _modules_after(["rnu"], tmp_path).startswith("2 []")
    code, imported = _modules_after(["report", str(run)], tmp_path).split(" ", 1)
    assert code == "0" and "torch" not in imported and (tmp_path / "report.html").is_file()  # beside the run

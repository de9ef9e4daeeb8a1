"""A new benchmark is one file: docs/extending.md's example, run as written, from a plugin folder."""
import json
import os
import re
import subprocess
import sys

from accelbench.store import load_run

from conftest import REPO


def example_benchmark() -> str:
    text = (REPO / "docs" / "extending.md").read_text()
    return re.search(r"```python\n(.*?)```", text, re.S).group(1)


def bench(*args, plugins, cwd):
    env = dict(os.environ, ACCELBENCH_PLUGINS=str(plugins), PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, "-m", "accelbench", *args], capture_output=True, text=True, env=env,
                          cwd=cwd, timeout=300)


def test_the_documented_example_benchmark_runs_compares_and_reports_from_one_file(tmp_path):
    plugins = tmp_path / "my_benchmarks"
    plugins.mkdir()
    (plugins / "scale.py").write_text(example_benchmark())
    listed = bench("list", plugins=plugins, cwd=tmp_path)
    assert listed.returncode == 0 and "scale" in listed.stdout

    ran = bench("run", "--backend", "cpu", "--bench", "scale", "--suite", "quick", "--out", str(tmp_path / "runs"),
                "--no-energy", plugins=plugins, cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr[-2000:]
    (run_dir,) = (tmp_path / "runs").iterdir()
    run = load_run(run_dir)
    assert [c.case_id for c in run.cases] == ["fp32/65536", "fp32/1048576"]
    assert all(c.status == "ok" and c.accuracy.passed and c.metric("gbps").value > 0 for c in run.cases)
    printed = ran.stdout + ran.stderr
    assert re.search(r"scale .*GB/s", printed), printed[-2000:]  # a summary line per case, and the table

    compared = bench("compare", str(run_dir), str(run_dir), "--format", "json", plugins=plugins, cwd=tmp_path)
    assert compared.returncode == 0
    verdicts = {c["case_id"]: (c["verdict"], c["metric"]) for c in json.loads(compared.stdout)["cases"]}
    assert verdicts == {"fp32/65536": ("unchanged", "gbps"), "fp32/1048576": ("unchanged", "gbps")}

    reported = bench("report", str(run_dir), "--format", "md", "-o", str(tmp_path / "r.md"), plugins=plugins,
                     cwd=tmp_path)
    assert reported.returncode == 0
    md = (tmp_path / "r.md").read_text()
    assert re.search(r"\| scale bandwidth \(example\) \| [\d.,]+ GB/s \|", md)  # its overview row, with a figure
    assert "## scale" in md and "| case | gbps [GB/s] | time |" in md  # its table, its declared columns

    # The HTML report draws its plot and its roofline points, from the run files alone.
    from accelbench.reports.html import Report
    from accelbench.reports.roofline import points
    report = Report.build([run])
    section = next(s for s in report.sections() if s.name == "scale")
    assert len(section.plots) == 1
    assert {(p.kind, p.case_id) for p in points(report.frame)} == {("scale", "fp32/65536"), ("scale", "fp32/1048576")}


def test_a_plugin_that_fails_to_import_is_one_line_naming_the_file(tmp_path):
    plugins = tmp_path / "broken"
    plugins.mkdir()
    (plugins / "oops.py").write_text("import not_a_module_anywhere\n")
    found = bench("list", plugins=plugins, cwd=tmp_path)
    assert found.returncode == 2
    assert found.stderr.strip().count("\n") == 0 and "oops.py" in found.stderr and "Traceback" not in found.stderr

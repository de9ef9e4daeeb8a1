from accelbench.records import CaseRecord
from accelbench.reports.html import render_report, write_report
from accelbench.store import RunWriter, load_run

from conftest import make_info
from test_store import full_record


def make_run(tmp_path, label, name="run"):
    writer = RunWriter(tmp_path / name, make_info(run_id=name, label=label))
    writer.append(full_record("bf16/square/64"))
    writer.append(CaseRecord(benchmark="gemm", case_id="bad<b>", params={"dtype": "bf16", "group": "square"},
                             status="failed", reason="wrong result: <img src=x onerror=alert(1)>"))
    writer.finish("complete")
    return load_run(tmp_path / name)


def test_label_with_script_is_escaped(tmp_path):
    html = render_report([make_run(tmp_path, "<script>alert('x')</script>")])
    assert "<script>" not in html
    assert "&lt;script&gt;alert(" in html
    assert "<img src=x" not in html and "&lt;img src=x" in html


def test_report_is_self_contained_with_tables_and_plot(tmp_path):
    out = write_report([make_run(tmp_path, "a")], tmp_path / "r.html")
    html = out.read_text()
    assert "data:image/png;base64," in html  # the TFLOP/s-vs-size plot is embedded
    assert "tflops [TFLOP/s]" in html and "Failed and skipped cases" in html
    assert "http://" not in html and "https://" not in html  # nothing fetched from elsewhere


def test_comparison_of_two_runs_warns_on_differing_fingerprints(tmp_path):
    a, b = make_run(tmp_path, "a", "r1"), make_run(tmp_path, "b", "r2")
    a.info.fingerprint, b.info.fingerprint = {"power_limit_w": 700.0}, {"power_limit_w": 600.0}
    html = render_report([a, b])
    assert "differ in power_limit_w" in html and "run</th>" in html

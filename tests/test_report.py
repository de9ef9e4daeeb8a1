import csv
import io

import pytest

from accelbench.records import CaseRecord
from accelbench.reports.formats import markdown, overview_csv
from accelbench.reports.html import Report, render_report, write_report
from accelbench.reports.numbers import quantity
from accelbench.reports.procurement import Prices, cost_row
from accelbench.store import RunWriter, load_run, load_runs

from conftest import make_info
from helpers.synthetic_runs import (ceiling_pair, decode_record, gemm_record, many_cases, membw_record,
                                    write_synthetic_run)
from test_store import full_record


def make_run(tmp_path, label, name="run"):
    writer = RunWriter(tmp_path / name, make_info(run_id=name, label=label))
    writer.append(full_record("bf16/square/64"))
    writer.append(CaseRecord(benchmark="gemm", case_id="bad<b>", params={"dtype": "bf16", "group": "square"},
                             status="failed", reason="wrong result: <img src=x onerror=alert(1)>"))
    writer.finish("complete")
    return load_run(tmp_path / name)


def two_devices(tmp_path, slower_skips_decode=False):
    a = write_synthetic_run(tmp_path / "a", "Device A", [gemm_record(4096, 400.0), membw_record(2**30, 2000.0),
                                                         decode_record(1, 100.0), decode_record(8, 600.0)],
                            label="nightly-a", ceilings=ceiling_pair(400.0, 2100.0))
    b_records = [gemm_record(4096, 600.0), gemm_record(8192, 0, status="skipped", reason="needs 9 GiB, 8 free")]
    if not slower_skips_decode:
        b_records.append(decode_record(1, 150.0))
    b = write_synthetic_run(tmp_path / "b", "Device B", b_records, label="nightly-b",
                            ceilings=ceiling_pair(600.0, 3000.0))
    return load_runs([a, b])


def test_label_with_script_is_escaped(tmp_path):
    html = render_report([make_run(tmp_path, "<script>alert('x')</script>")])
    assert "<script>" not in html
    assert "&lt;script&gt;alert(" in html
    assert "<img src=x" not in html and "&lt;img src=x" in html


def test_report_is_self_contained_with_tables_and_plot(tmp_path):
    writer = RunWriter(tmp_path / "run", make_info(run_id="run", label="a"))
    for n in (64, 128):  # two sizes: a line to draw (one size would be a single point, left to the table)
        record = full_record(f"bf16/square/{n}")
        record.params.update(m=n, k=n, n=n)
        writer.append(record)
    writer.append(CaseRecord(benchmark="gemm", case_id="bad", params={"dtype": "bf16", "group": "square"},
                             status="failed", reason="wrong result"))
    writer.finish("complete")
    out = write_report([load_run(tmp_path / "run")], tmp_path / "r.html")
    html = out.read_text()
    assert "data:image/png;base64," in html  # the TFLOP/s-vs-size plot is embedded
    assert "tflops [TFLOP/s]" in html and "failed or skipped cases, with reasons" in html
    assert "http://" not in html and "https://" not in html  # nothing fetched from elsewhere


def test_runs_of_one_device_that_differ_in_power_limit_are_flagged(tmp_path):
    a, b = make_run(tmp_path, "a", "r1"), make_run(tmp_path, "b", "r2")
    a.info.fingerprint, b.info.fingerprint = {"power_limit_w": 700.0}, {"power_limit_w": 600.0}
    html = render_report([a, b])
    assert "differ in power_limit_w" in html and "run</th>" in html
    assert '<tr class="diff"><td>power_limit_w</td>' in html  # highlighted in the fingerprints block


def test_numbers_are_formatted_for_people():
    assert quantity(6.336e-06, "s") == "6.34 µs" and quantity(0.005932, "s") == "5.93 ms"
    assert quantity(84.7021, "%") == "84.7 %" and quantity(7307.4, "tokens/s") == "7,310 tokens/s"
    assert quantity(3 * 2**30, "B") == "3.00 GiB" and quantity(None, "s") == "—"


def test_overview_puts_devices_side_by_side_with_ratios_and_says_why_figures_are_missing(tmp_path):
    report = Report.build(two_devices(tmp_path))
    o = report.overview
    assert o.devices == ["Device A", "Device B"] and o.baseline == "Device A"
    rows = {r.headline.name: r for r in o.rows}
    gemm = rows["GEMM bf16"]
    assert [c.value for c in gemm.cells] == [400.0, 600.0] and gemm.ratios == [pytest.approx(1.5)]
    # MAMF is each device's best over its own search: shown, never set against another's (issue #30)
    mamf = rows["MAMF bf16 (best matmul measured)"]
    assert [c.value for c in mamf.cells] == [400.0, 600.0] and mamf.ratios == [None]
    assert mamf.no_ratio_because == "each device's own best: no ratio"
    assert rows["decode tokens/s, batch 1, unquantized"].ratios == [pytest.approx(1.5)]
    bandwidth = rows["device memory bandwidth"]
    assert bandwidth.cells[0].value == 2000.0 and bandwidth.cells[1].missing == "not run" and bandwidth.ratios == [None]
    assert rows["GEMM fp16"].cells[0].missing == "no case with dtype fp16"  # GEMMs ran, none in fp16
    assert rows["all_reduce bus bandwidth (largest size every device ran)"].cells[0].missing == "not run"
    # TPOT of the batch-1 case, where lower is better: B's is 2/3 of A's
    assert rows["decode TPOT, batch 1, unquantized (lower is better)"].ratios == [pytest.approx(100 / 150)]

    flipped = Report.build(two_devices(tmp_path / "again"), baseline="nightly-b").overview
    assert flipped.baseline == "Device B" and flipped.rows[0].ratios == [pytest.approx(400 / 600)]
    with pytest.raises(ValueError, match="names none of the runs"):
        Report.build(two_devices(tmp_path / "third"), baseline="no-such-run")


def test_decode_figures_of_different_models_get_no_ratio(tmp_path):
    runs = load_runs([write_synthetic_run(tmp_path / "a", "Device A", [decode_record(1, 100.0, model="big")]),
                      write_synthetic_run(tmp_path / "b", "Device B", [decode_record(1, 900.0, model="tiny")])])
    row = next(r for r in Report.build(runs).overview.rows if r.headline.name.startswith("decode tokens/s, batch 1"))
    assert [c.text for c in row.cells] == ["100 tokens/s (big)", "900 tokens/s (tiny)"] and row.ratios == [None]


def test_a_skipped_headline_says_so(tmp_path):
    runs = load_runs([write_synthetic_run(tmp_path / "s", "Device S", [
        gemm_record(8192, 0, status="skipped", reason="needs 9 GiB of device memory, 8 GiB free")])])
    cell = Report.build(runs).overview.rows[0].cells[0]
    assert cell.value is None and cell.missing.startswith("skipped (1): needs 9 GiB")


def test_side_by_side_benchmark_table_has_the_figure_per_device_and_the_ratio(tmp_path):
    report = Report.build(two_devices(tmp_path))
    gemm = next(s for s in report.sections() if s.name == "gemm")
    assert gemm.compact.columns[:3] == ["case", "tflops [TFLOP/s] — Device A", "tflops [TFLOP/s] — Device B"]
    row = next(r for r in gemm.compact.rows if r[0] == "bf16/square/4096")
    assert row[1:4] == ["400", "600", "1.50×"]  # the figure per device, then the ratio, then the next figure
    assert gemm.compact.groups[:3] == [("", 1), ("tflops [TFLOP/s]", 2), ("tflops ÷ Device A", 1)]
    assert [r[1:4] for r in gemm.problems.rows] == [["bf16/square/8192", "skipped", "needs 9 GiB, 8 free"]]


def test_procurement_arithmetic_on_a_worked_example():
    # $2.00/h rented, 500 W measured, PUE 1.5, $0.10/kWh: energy = 0.5 kW x 1.5 x 0.10 = $0.075/h;
    # $2.075/h buys 1000 tokens/s x 3600 s = 3.6 M tokens: $0.5764 per million, 1.735 M tokens per USD.
    row = cost_row("X", 1000.0, 500.0, Prices(per_hour={"X": 2.0}, energy_usd_per_kwh=0.10, pue=1.5),
                   work=("decode tokens", "tokens"))
    assert row.energy_usd_per_hour == pytest.approx(0.075) and row.usd_per_hour == pytest.approx(2.075)
    assert row.cost == pytest.approx(2.075 / 3.6) and row.perf_per_dollar == pytest.approx(3.6e6 / 2.075)
    assert row.perf_per_watt == pytest.approx(2.0) and row.cost_unit == "USD per million tokens"
    # Bought for $26,280 over 3 years of 8760 h: $1.00/h; no energy price: 500 TFLOP/s = 1800 PFLOP per hour.
    owned = cost_row("X", 500.0, 400.0, Prices(capex={"X": 26280.0}, years=3), work=("bf16 GEMM", "TFLOP"))
    assert owned.usd_per_hour == pytest.approx(1.0) and owned.cost == pytest.approx(1.0 / 1800)
    assert owned.cost_unit == "USD per PFLOP" and any("3 years" in a for a in owned.assumptions)
    assert cost_row("Y", 500.0, 400.0, Prices(per_hour={"X": 1.0}), work=("bf16 GEMM", "TFLOP")) is None  # no price for Y


def test_procurement_view_uses_each_devices_measured_decode_rate_and_power(tmp_path):
    prices = Prices(per_hour={"Device A": 1.0, "Device B": 2.0}, energy_usd_per_kwh=0.2, pue=1.2)
    report = Report.build(two_devices(tmp_path), prices=prices)
    # Grouped by kind of work, so that like stands beside like.
    assert [(c.device, c.work) for c in report.costs] == [("Device A", "decode tokens"), ("Device B", "decode tokens"),
                                                          ("Device A", "bf16 GEMM"), ("Device B", "bf16 GEMM")]
    a, b, _, b_gemm = report.costs
    # The same work on both: batch 1, the largest batch both ran (A's batch 8 has no counterpart on B).
    assert (a.device, a.case_id, a.rate, a.power_w) == ("Device A", "m/graphs/bf16/b1/p512/n256", 100.0, 600.0)
    assert b_gemm.rate == 600.0 and b_gemm.cost == pytest.approx((2.0 + 0.5 * 1.2 * 0.2) / (600 * 3600) * 1000)
    assert b.rate == 150.0 and b.cost == pytest.approx((2.0 + 0.6 * 1.2 * 0.2) / (150 * 3600) * 1e6)
    html = report.html()
    assert "Procurement view" in html and "PUE 1.2" in html
    assert "Procurement view" not in Report.build(two_devices(tmp_path / "x")).html()  # no prices, no section


def test_markdown_and_csv_carry_the_overview(tmp_path):
    report = Report.build(two_devices(tmp_path))
    md = markdown(report)
    assert md.startswith("# accelbench report") and "| GEMM bf16 | 400 TFLOP/s (m 4096, k 4096, n 4096) | 600 TFLOP/s (m 4096, k 4096, n 4096) | 1.50× |" in md
    rows = list(csv.reader(io.StringIO(overview_csv(report))))
    assert rows[0][:5] == ["figure", "unit", "Device A", "Device B", "Device B / Device A"]
    gemm = next(r for r in rows if r[0] == "GEMM bf16")
    assert gemm[1:5] == ["TFLOP/s", "400.0", "600.0", "1.5"]


def test_roofline_is_drawn_from_measured_ceilings(tmp_path):
    from accelbench.reports.roofline import ceilings, points
    runs = two_devices(tmp_path)
    report = Report.build(runs)
    measured, sheet = ceilings(runs, "Device B")
    assert measured.compute["bf16"] == 600e12 and measured.bandwidth == 3000e9 and sheet.bandwidth == 3.0e12
    kinds = {(p.device, p.kind) for p in points(report.frame)}
    assert {("Device A", "gemm"), ("Device A", "bandwidth"), ("Device A", "decode"), ("Device B", "gemm")} <= kinds
    gemm = next(p for p in points(report.frame) if p.case_id == "bf16/square/4096" and p.device == "Device A")
    assert gemm.intensity == pytest.approx(2 * 4096**3 / (3 * 4096**2 * 2)) and gemm.flops == pytest.approx(400e12)
    assert 'alt="roofline per device"' in report.html()


def test_a_report_of_10000_cases_is_small(tmp_path):
    """How long it takes is measured by scripts/bench_reports.py, not asserted here."""
    runs = load_runs([write_synthetic_run(tmp_path / "big-a", "Device A", many_cases(5000, 1.0, 1)),
                      write_synthetic_run(tmp_path / "big-b", "Device B", many_cases(5000, 1.3, 2))])
    html = render_report(runs)
    assert sum(len(r.cases) for r in runs) == 10_000
    assert len(html.encode()) < 5 * 2**20, f"{len(html.encode()) / 2**20:.1f} MiB"


def test_the_default_baseline_is_the_first_accelerator_and_baseline_takes_any_spelling(tmp_path, monkeypatch):
    from accelbench.reports.overview import resolve_baseline
    cpu = write_synthetic_run(tmp_path / "runs" / "cpu-run", "AMD EPYC", [gemm_record(256, 0.1)], backend="cpu")
    gpu = write_synthetic_run(tmp_path / "runs" / "gpu-run", "NVIDIA H200", [gemm_record(4096, 600.0)])
    runs = load_runs([cpu, gpu])
    assert resolve_baseline(runs, None) == "NVIDIA H200"  # not the CPU listed first
    monkeypatch.chdir(tmp_path)
    for spelling in ("runs/cpu-run/", "./runs/cpu-run", str(tmp_path / "runs" / "cpu-run"), "cpu-run", "AMD"):
        assert resolve_baseline(runs, spelling) == "AMD EPYC", spelling
    with pytest.raises(ValueError, match="names none of the runs"):
        resolve_baseline(runs, "Intel")


def test_devices_are_compared_only_on_work_both_ran(tmp_path):
    """A ran decode at batch 1 and 64, B only at batch 1: the overview and the procurement view set
    batch 1 against batch 1; batch 64 has no common case and gets no ratio."""
    a = write_synthetic_run(tmp_path / "a", "Device A", [decode_record(1, 100.0), decode_record(64, 5000.0)])
    b = write_synthetic_run(tmp_path / "b", "Device B", [decode_record(1, 150.0)])
    report = Report.build(load_runs([a, b]), prices=Prices(per_hour={"Device A": 2.0, "Device B": 3.0}))
    rows = {r.headline.name: r for r in report.overview.rows}
    largest = rows["decode tokens/s, largest batch every device ran, unquantized"]
    assert [c.value for c in largest.cells] == [100.0, 150.0] and largest.ratios == [pytest.approx(1.5)]
    assert [c.text for c in largest.cells] == ["100 tokens/s (m, batch 1)", "150 tokens/s (m, batch 1)"]
    assert [(c.device, c.case_id) for c in report.costs] == [("Device A", "m/graphs/bf16/b1/p512/n256"),
                                                             ("Device B", "m/graphs/bf16/b1/p512/n256")]
    decode = next(s for s in report.sections() if s.name == "decode")
    b64 = next(row for row in decode.compact.rows if row[0] == "m/graphs/bf16/b64/p512/n256")
    assert "no common case" in b64 and "1.50×" in next(row for row in decode.compact.rows if "/b1/" in row[0])

    # Different work on each device: figures shown, never a ratio, and nothing priced side by side.
    c = write_synthetic_run(tmp_path / "c", "Device C", [decode_record(64, 5000.0)])
    d = write_synthetic_run(tmp_path / "d", "Device D", [decode_record(1, 150.0)])
    apart = Report.build(load_runs([c, d]), prices=Prices(per_hour={"Device C": 2.0, "Device D": 3.0}))
    row = next(r for r in apart.overview.rows if r.headline.name.startswith("decode tokens/s, largest batch"))
    assert [c.value for c in row.cells] == [5000.0, 150.0] and row.ratios == [None]
    assert apart.overview.text_rows()[apart.overview.rows.index(row)][-1] == "no common case"
    assert apart.costs == []

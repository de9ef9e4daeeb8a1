"""Reports read at a glance and compare like with like: plots whose texts do not cover each other,
tables and history in natural order, a history page that starts with what changed, overview rows
that compare one work on every device and say why a figure is missing."""
import re
import warnings

import matplotlib.pyplot as plt

from accelbench.reports.history import load_points, page, trends
from accelbench.reports.html import Report
from accelbench.reports.numbers import natural_key
from accelbench.reports.plots import LabelOverlap, label_overlaps
from accelbench.store import load_runs

from helpers.synthetic_runs import (ceiling_pair, decode_record, fp8_record, gemm_record, membw_record,
                                    write_nightly_runs, write_synthetic_run)

FP8_MODES = ["bf16", "tensor", "tensor-fastacc", "row", "row-pow2", "block-128", "mxfp8", "tensor-delayed",
             "row-delayed", "gaudi2", "tensor-static", "tensor-e5m2"]


def test_label_overlaps_finds_two_texts_on_one_spot_and_none_apart():
    fig, ax = plt.subplots()
    ax.annotate("first label", (0.5, 0.5))
    ax.annotate("second label", (0.5, 0.5))
    ax.annotate("far away", (0.05, 0.9))
    found = label_overlaps(fig)
    plt.close(fig)
    assert ("first label", "second label") in found
    assert not any("far away" in pair for pair in found)


def three_devices(tmp_path):
    """Three devices, twelve FP8 modes with errors that crowd one decade, GEMM and bandwidth sweeps,
    decode at one batch on one device and several on another."""
    runs = []
    for i, device in enumerate(("Device A", "Device B", "Device C")):
        speed = 1.0 + i
        records = [fp8_record(mode, n, speed * (100 + 40 * j + n / 100), 0.02 + 0.001 * j)
                   for j, mode in enumerate(FP8_MODES) for n in ((256, 4096) if i < 2 else (256,))]
        records += [gemm_record(n, speed * (50 + n / 20)) for n in (256, 512, 1024, 2048, 4096, 8192)]
        records += [membw_record(2 ** e, speed * 1000 * (1 + e / 40)) for e in range(16, 33, 2)]
        records += [decode_record(b, speed * 100 * b ** 0.8) for b in ((1,) if i == 2 else (1, 4, 16, 64))]
        runs.append(write_synthetic_run(tmp_path / device[-1], device, records, ceilings=ceiling_pair(500.0, 2000.0)))
    return load_runs(runs)


def test_a_report_of_three_devices_draws_no_plot_whose_labels_overlap(tmp_path):
    report = Report.build(three_devices(tmp_path))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", LabelOverlap)
        html = report.html()
    overlaps = [str(w.message) for w in caught if issubclass(w.category, LabelOverlap)]
    assert overlaps == []
    fp8 = next(s for s in report.sections() if s.name == "fp8")
    # One speed-vs-error figure per comparable group: the shape all three ran (256^3), then A's and
    # B's own largest (4096^3).
    assert len(fp8.plots) == 2
    assert html.count("<img") >= 6


def test_the_overview_compares_gemm_on_a_shape_every_device_ran_and_mamf_without_a_ratio(tmp_path):
    a = write_synthetic_run(tmp_path / "a", "Device A", [gemm_record(n, 100.0 + n / 100) for n in (256, 1024, 8192)],
                            ceilings=ceiling_pair(182.0, 2000.0))
    b = write_synthetic_run(tmp_path / "b", "Device B", [gemm_record(n, 150.0 + n / 100) for n in (256, 1024)],
                            ceilings=ceiling_pair(160.0, 2000.0))
    overview = Report.build(load_runs([a, b])).overview
    rows = {r.headline.name: r for r in overview.rows}
    gemm = rows["GEMM bf16"]
    assert [c.case_id for c in gemm.cells] == ["bf16/square/1024", "bf16/square/1024"]  # not A's 8192
    assert abs(gemm.ratios[0] - 160.24 / 110.24) < 1e-6
    assert "m 1024, k 1024, n 1024" in gemm.cells[0].text
    mamf = rows["MAMF bf16 (best matmul measured)"]
    assert mamf.ratios == [None] and mamf.no_ratio_because == "each device's own best: no ratio"


def test_a_missing_energy_figure_gives_the_runs_reason_and_a_cache_only_sweep_says_so(tmp_path):
    unmetered = decode_record(1, 50.0)
    unmetered.metrics = [m for m in unmetered.metrics if m.name not in ("avg_power", "tokens_per_j")]
    quiet = write_synthetic_run(tmp_path / "q", "Device Q", [unmetered],
                                no_energy_because="no readable energy counter or power (no RAPL domains)")
    cached = membw_record(2 ** 20, 900.0)
    cached.facts["memory_level"] = "cache"
    loud = write_synthetic_run(tmp_path / "l", "Device L", [decode_record(1, 90.0), cached])
    rows = {r.headline.name: r for r in Report.build(load_runs([loud, quiet])).overview.rows}
    energy = rows["decode energy efficiency"]
    assert energy.cells[1].missing.startswith("no readable energy counter")
    assert rows["device memory bandwidth"].cells[0].missing == "all working sets cache-resident (under 4x LLC)"


def test_case_ids_sort_as_people_read_them():
    ids = ["all_reduce/fp32/1MiB", "all_reduce/fp32/128KiB", "all_reduce/fp32/16KiB", "x/m1024k256n256",
           "x/m256k256n256", "m/graphs/bf16/b64/p512", "m/graphs/bf16/b16/p512"]
    assert sorted(ids, key=natural_key) == [
        "all_reduce/fp32/16KiB", "all_reduce/fp32/128KiB", "all_reduce/fp32/1MiB", "m/graphs/bf16/b16/p512",
        "m/graphs/bf16/b64/p512", "x/m256k256n256", "x/m1024k256n256"]


def test_a_side_by_side_table_lists_the_cases_every_device_ran_first(tmp_path):
    a = write_synthetic_run(tmp_path / "a", "Device A", [gemm_record(n, 100.0) for n in (64, 512, 8192)])
    b = write_synthetic_run(tmp_path / "b", "Device B", [gemm_record(n, 150.0) for n in (512, 4096, 64)])
    gemm = next(s for s in Report.build(load_runs([a, b])).sections() if s.name == "gemm")
    assert [row[0] for row in gemm.compact.rows] == ["bf16/square/64", "bf16/square/512", "bf16/square/4096",
                                                       "bf16/square/8192"]


def test_the_history_page_starts_with_an_index_of_flagged_changes_linked_to_their_trends(tmp_path):
    write_nightly_runs(tmp_path / "n", runs=12, cases=12, slowdown_at=6, slowdown=1.3)
    found = trends(load_points([tmp_path / "n"]))
    assert [t.case_id for t in found] == sorted((t.case_id for t in found), key=natural_key)
    assert found[0].case_id == "bf16/square/256" and found[-1].case_id == "bf16/square/960"
    html = page(found, [tmp_path / "n"], 0.05, {})
    index = html[html.index('id="flagged"'):html.index('class="filters"')]
    anchor = re.search(r'href="#([^"]+)">bf16/square/256<', index).group(1)
    assert f'id="{anchor}"' in html and "regressed" in index
    assert 'id="bench-filter"' in html and 'id="device-filter"' in html
    trend = found[0].sparkline()
    assert "2026-01-01" in trend and "2026-01-12" in trend  # dates under the trend


def test_an_emulated_figure_is_never_set_against_a_native_one_and_small_ratios_keep_their_digits(tmp_path):
    from accelbench.reports.numbers import ratio
    native = write_synthetic_run(tmp_path / "n", "Device N", [fp8_record("tensor", 256, 50.0, 0.03)])
    software = fp8_record("tensor", 256, 0.05, 0.03)
    software.facts["emulated_because"] = "no native FP8 executor for the cpu backend"
    emulated = write_synthetic_run(tmp_path / "e", "Device E", [software], backend="cpu")
    row = next(r for r in Report.build(load_runs([native, emulated])).overview.rows
               if r.headline.name == "GEMM FP8 (GEMM only)")
    assert row.cells[1].emulated and row.ratios == [None] and row.no_ratio_because == "a figure is emulated: no ratio"
    assert ratio(0.00136) == "0.00136×" and ratio(1.5) == "1.50×"

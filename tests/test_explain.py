"""Predicted beside measured (accelbench/explain/model.py): worked examples on a committed H100 run."""
import gzip
import json

import pytest

from accelbench.explain.model import Ceilings, decode_step, decompose, prefill

from conftest import REPO

H100_DECODE = REPO / "results" / "20261121T221511Z-cuda-vm-h100-decode-must-show"


def test_a_decode_step_of_the_8b_shape_on_the_h100_run_from_its_measured_ceiling():
    # Llama-3.1-8B bf16, batch 1, prompt 512, 256 new tokens: 15.0098 GB of weights streamed per step and
    # 0.1007 GB of KV cache at the end (mean over the steps: 0.0839 GB); the run's floor/copy read 3002 GB/s.
    ceilings = Ceilings(read_bytes_per_s=3002.0965e9)
    explained = decode_step("b1", measured_s=5.926e-3, weight_bytes=15_009_849_344, kv_bytes=83_886_080,
                            ceilings=ceilings)
    weights, kv = explained.parts
    assert weights.seconds == pytest.approx(15_009_849_344 / 3002.0965e9) == pytest.approx(5.0e-3, rel=1e-3)
    assert kv.seconds == pytest.approx(2.794e-5, rel=1e-3)
    assert explained.predicted_s == pytest.approx(5.0278e-3, rel=1e-3)
    assert explained.ratio == pytest.approx(1.1786, rel=1e-3)  # the step is 18 % over its streaming floor
    shares = explained.shares()
    assert sum(shares.values()) == pytest.approx(1.0)
    assert shares["unexplained"] == pytest.approx(0.1516, rel=1e-2)


def test_measured_fixed_parts_close_the_gap_and_add_up():
    ceilings = Ceilings(read_bytes_per_s=2.0e12)
    explained = decode_step("x", measured_s=10e-3, weight_bytes=16e9, kv_bytes=0.4e9, ceilings=ceilings,
                            fixed={"attention": 0.6e-3, "launch": 0.2e-3, "quantizers": 0.3e-3})
    assert [p.name for p in explained.parts] == ["weights", "kv_cache", "attention", "launch", "quantizers"]
    assert explained.predicted_s == pytest.approx(8e-3 + 0.2e-3 + 1.1e-3)
    assert explained.unexplained_s == pytest.approx(0.7e-3)
    assert [p.how for p in explained.parts] == ["modelled", "modelled", "measured", "measured", "measured"]


def test_tensor_parallel_communication_at_the_measured_bus_bandwidth():
    # 2 ranks, 80 layers x 2 all-reduces of 16 KiB; busbw 100 GB/s is algbw 100 GB/s at n = 2.
    ceilings = Ceilings(read_bytes_per_s=4e12, allreduce_busbw=100e9)
    explained = decode_step("tp", 60e-3, 70e9, 0, ceilings, allreduces=160, allreduce_bytes=16384, ranks=2)
    assert explained.parts[-1].name == "communication"
    assert explained.parts[-1].seconds == pytest.approx(160 * 16384 / 100e9)


def test_a_missing_ceiling_says_so_instead_of_predicting_from_the_datasheet():
    explained = decode_step("b1", 5e-3, 15e9, 0, Ceilings())
    assert explained.predicted_s is None and explained.ratio is None and explained.parts == []
    assert "membw.device" in explained.missing[0]
    assert "matmul.bf16" in prefill("p512", 0.02, 7.75e12, "bf16", Ceilings(matmul_flops_per_s={"fp32": 1e13})).missing[0]
    tp = decode_step("tp", 5e-3, 15e9, 0, Ceilings(read_bytes_per_s=3e12), allreduces=64, allreduce_bytes=8192, ranks=2)
    assert tp.predicted_s is None and "all-reduce" in tp.missing[0]


def test_the_ceilings_are_read_from_the_committed_run():
    run = json.loads((H100_DECODE / "run.json").read_text())
    ceilings = Ceilings.from_run(run["ceilings"])
    assert ceilings.read_bytes_per_s == pytest.approx(3002.0965e9, rel=1e-6)
    cases = H100_DECODE / "cases.jsonl"
    lines = gzip.open(cases.with_suffix(".jsonl.gz"), "rt") if not cases.exists() else open(cases)
    bf16 = next(json.loads(line) for line in lines if "llama3.1-8b/graphs/bf16/b1/" in line)
    tpot = next(m["value"] for m in bf16["metrics"] if m["name"] == "tpot")
    explained = decode_step(bf16["case_id"], tpot, bf16["facts"]["weight_bytes_streamed"], 0, ceilings)
    # the decode benchmark's own floor fraction is this ratio's inverse (weights alone, kv aside)
    assert 1 / explained.ratio == pytest.approx(0.8447, rel=1e-2)


def test_two_devices_ratio_decomposes_into_their_parts():
    a = decode_step("h100", 5.9e-3, 15e9, 0.1e9, Ceilings(read_bytes_per_s=3.0e12), fixed={"launch": 0.4e-3})
    b = decode_step("h200", 4.5e-3, 15e9, 0.1e9, Ceilings(read_bytes_per_s=4.3e12), fixed={"launch": 0.4e-3})
    overall, parts = decompose(a, b)
    assert overall == pytest.approx(4.5 / 5.9)
    by = {p.name: p for p in parts}
    assert by["weights"].ratio == pytest.approx(3.0 / 4.3) and by["launch"].ratio == pytest.approx(1.0)
    assert sum(p.weight for p in parts) == pytest.approx(1.0)


H200_DECODE = REPO / "results" / "20261121T203205Z-cuda-vm-h200-decode-must-show"


def test_a_decode_case_of_a_run_carries_its_prediction_and_parts():
    from accelbench.store import cases_frame, load_run
    frame = cases_frame([load_run(H100_DECODE)])
    case = frame[frame["case_id"] == "llama3.1-8b/graphs/bf16/b1/p512/n256"].set_index("metric")["value"]
    assert case["predicted_tpot"] == pytest.approx(5.028e-3, rel=1e-3)
    assert case["tpot_vs_predicted"] == pytest.approx(case["tpot"] / case["predicted_tpot"])
    assert case["tpot_share_weights"] + case["tpot_share_kv_cache"] + case["tpot_share_unexplained"] == pytest.approx(100.0)
    assert "predicted_tpot" not in set(frame.loc[frame["case_id"] == "floor/copy", "metric"])


def test_the_report_decomposes_the_h200_over_h100_decode_speed_up_into_its_parts():
    from accelbench.reports.html import Report
    from accelbench.store import load_run
    report = Report.build([load_run(H100_DECODE), load_run(H200_DECODE)], baseline="H100")
    (decode,) = [s for s in report.sections() if s.name == "decode"]
    columns = decode.gap.columns
    row = next(r for r in decode.gap.rows if r[0] == "llama3.1-8b/graphs/bf16/b1/p512/n256")
    assert row[1] == "tpot" and row[2] == "NVIDIA H200" and row[columns.index("speed-up (time ratio)")] == "1.29×"
    # the weights part scales as the two runs' measured bandwidths do; the rest of the step does not
    h100 = json.loads((H100_DECODE / "run.json").read_text())["ceilings"]["membw.device"]["value"]
    h200 = json.loads((H200_DECODE / "run.json").read_text())["ceilings"]["membw.device"]["value"]
    assert row[columns.index("weights part ×")] == f"{h200 / h100:.2f}×" == "1.41×"
    assert row[columns.index("unexplained part ×")] == "0.87×"


def test_a_prefill_from_the_measured_matmul_rate_its_output_layer_and_its_timed_rest():
    # 8B-like: 7.0e9 projection parameters (output layer aside) x 512 positions; 0.5e9 output-layer
    # parameters in bf16 read once; the run's best bf16 matmul 700 TFLOP/s, its read bandwidth 3 TB/s.
    ceilings = Ceilings(read_bytes_per_s=3e12, matmul_flops_per_s={"bf16": 700e12})
    explained = prefill("p512", measured_s=13e-3, flops=2 * 7.0e9 * 512, dtype="bf16", ceilings=ceilings,
                        fixed_s=1.5e-3, head_bytes=1.0e9)
    assert [(p.name, p.how) for p in explained.parts] == [("matmul", "modelled"), ("output_layer", "modelled"),
                                                          ("fixed_work", "measured")]
    assert explained.parts[0].seconds == pytest.approx(7.168e12 / 700e12)  # 10.24 ms
    assert explained.parts[1].seconds == pytest.approx(1.0e9 / 3e12)
    assert explained.predicted_s == pytest.approx(10.24e-3 + 0.3333e-3 + 1.5e-3, rel=1e-4)
    assert sum(explained.shares().values()) == pytest.approx(1.0)
    assert "membw.device" in prefill("p", 1.0, 1e12, "bf16", Ceilings(matmul_flops_per_s={"bf16": 1e14}),
                                     head_bytes=1e9).missing[0]


def test_a_cpu_run_times_the_step_without_its_projections_and_predicts_step_and_prefill(tmp_path):
    """A real run (eager engine, tiny model, fp32) with --step-parts beside the gemm benchmark: the
    step without its projections is timed on the same engine and is shorter than the step; the
    parts and the unexplained rest add up to the measured step; the prefill is predicted from the
    run's own fp32 matmul rate."""
    from click.testing import CliRunner
    from accelbench.cli import main
    from accelbench.store import cases_frame, load_run
    result = CliRunner().invoke(main, ["run", "--backend", "cpu", "--bench", "decode,gemm", "--suite", "quick",
                                       "--case", "tiny-llama3/eager/fp32/", "--case", "floor/copy",
                                       "--case", "fp32/square/512", "--step-parts", "--no-energy",
                                       "--min-time", "0", "--max-time", "0.2", "--min-samples", "2",
                                       "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    (run,) = tmp_path.iterdir()
    frame = cases_frame([load_run(run)])
    case = frame[frame["case_id"] == "tiny-llama3/eager/fp32/b1/p32/n8"].set_index("metric")["value"]
    assert 0 < case["tpot_without_projections"] < case["tpot"]
    assert 0 < case["ttft_without_projections"] < case["ttft"]
    assert case["tpot_share_weights"] + case["tpot_share_fixed_work"] + case["tpot_share_unexplained"] == pytest.approx(100.0)
    assert "tpot_share_kv_cache" not in case  # the timed rest reads the cache itself
    assert case["predicted_tpot"] > case["tpot_without_projections"]
    assert case["predicted_ttft"] > case["ttft_without_projections"]
    shares = [m for m in case.index if m.startswith("ttft_share_")]
    assert sorted(shares) == ["ttft_share_fixed_work", "ttft_share_matmul", "ttft_share_output_layer",
                              "ttft_share_unexplained"]
    assert sum(case[m] for m in shares) == pytest.approx(100.0)


def test_the_report_draws_a_stacked_bar_of_each_predicted_cases_parts(recwarn):
    import base64
    import io
    from PIL import Image
    from accelbench.reports.gap import parts_plot
    from accelbench.store import cases_frame, load_run
    frame = cases_frame([load_run(H100_DECODE), load_run(H200_DECODE)])
    (png,) = parts_plot(frame[frame["benchmark"] == "decode"])
    image = Image.open(io.BytesIO(base64.b64decode(png)))
    assert image.width > 500 and image.height > 150
    assert not [w for w in recwarn if "overlap" in str(w.message)]
    assert parts_plot(frame[frame["benchmark"] == "membw"]) == []  # nothing predicted: no plot


def test_timed_fp8_projections_are_a_measured_part_and_only_the_untimed_weights_are_modelled():
    from accelbench.view import RunFigures, StepModel
    model = StepModel("tpot", "weight_bytes_streamed", "bytes_per_step", "membw.device",
                      fixed_metric="tpot_without_projections", projections_metric="projections_timed",
                      untimed_weights_fact="weight_bytes_untimed")
    facts = {"weight_bytes_streamed": 8.0e9, "bytes_per_step": 8.1e9, "weight_bytes_untimed": 1.0e9}
    run = RunFigures(ceilings={"membw.device": 4e12})
    got = {name: value for name, value, _ in model.metrics(
        facts, {"tpot": 3.0e-3, "tpot_without_projections": 0.5e-3, "projections_timed": 2.0e-3}, run)}
    assert got["predicted_tpot"] == pytest.approx(1.0e9 / 4e12 + 2.0e-3 + 0.5e-3)
    assert got["tpot_share_projections"] == pytest.approx(100 * 2.0 / 3.0)
    assert got["tpot_share_weights"] == pytest.approx(100 * 0.25 / 3.0)
    # without the projections' timing: every weight modelled
    plain = {name: value for name, value, _ in model.metrics(facts, {"tpot": 3.0e-3, "tpot_without_projections": 0.5e-3},
                                                             run)}
    assert plain["predicted_tpot"] == pytest.approx(8.0e9 / 4e12 + 0.5e-3)


def test_a_tensor_parallel_step_without_its_projections_keeps_its_all_reduces(tmp_path):
    """decode-tp over 2 gloo ranks with --step-parts: the stand-in step still sums its (contiguous)
    partial outputs across the ranks, and is timed."""
    import subprocess
    import sys
    from accelbench.store import cases_frame, load_run
    ran = subprocess.run([sys.executable, "-m", "accelbench", "run", "--backend", "cpu", "--bench", "decode-tp",
                          "--nproc", "2", "--suite", "quick", "--case", "tp/eager/fp32", "--step-parts", "--no-energy",
                          "--no-report", "--out", str(tmp_path)], capture_output=True, text=True, cwd=REPO, timeout=600)
    assert ran.returncode == 0, ran.stdout[-2000:] + ran.stderr[-2000:]
    (run,) = tmp_path.iterdir()
    frame = cases_frame([load_run(run)])
    case = frame[frame["case_id"] == "tiny-llama3/tp/eager/fp32/b1/p32/n8"].set_index("metric")["value"]
    assert 0 < case["tpot_without_projections"] < case["tpot"]

"""The decode benchmark on CPU: figures from checked generations, engines side by side, wrong
decoding caught, oversize cases skipped before they allocate."""
import pytest

from accelbench.backends.cpu import CpuBackend
from accelbench.benchmark import Case
from accelbench.e2e.decode import TINY, Decode, EagerEngine
from conftest import save_checkpoint


def _case(engine, model="tiny-llama3", batch=1, prompt=32, new=8, dtype="fp32", fp8="none"):
    return Case(f"{model}/{engine}", {"model": model, "engine": engine, "dtype": dtype, "fp8": fp8, "batch": batch,
                                     "prompt": prompt, "new_tokens": new}, matmul_dtypes=(dtype,))


@pytest.mark.parametrize("engine", ["eager", "hf"])
def test_a_generation_is_checked_then_reports_ttft_tpot_and_bandwidth(engine, cpu_backend, make_runner):
    if engine == "hf":
        pytest.importorskip("transformers")
    rec = make_runner(cpu_backend).run_case(Decode(), _case(engine, batch=2))
    assert rec.status == "ok", rec.reason
    assert rec.accuracy.passed and "top-1 agreement 1.000" in rec.accuracy.reference
    m = {x.name: x.value for x in rec.metrics}
    assert 0 < m["ttft"] < m["time"] and 0 < m["tpot"] <= m["tpot_p90"]
    assert m["decode_tokens_per_s"] == pytest.approx(2 / m["tpot"])
    assert m["tokens_per_s"] == pytest.approx(2 * 8 / m["time"])
    # TTFT and the 7 steps make up a call: the step events cover the whole generation. Checked on one
    # call timed around it (medians of different calls drift apart on a busy machine; one call does not).
    import time
    import torch
    from accelbench.e2e.decode.engines import HfEngine
    from accelbench.timing import StepMarks
    _, model = Decode()._model(TINY, torch.float32, cpu_backend)
    clock = StepMarks(cpu_backend, keep_calls=1)
    one = {"eager": EagerEngine, "hf": HfEngine}[engine](model, torch.randint(0, TINY.vocab, (2, 32)), 8, clock,
                                                         cpu_backend)
    start = time.perf_counter()
    one.run()
    call_s = time.perf_counter() - start
    assert len(clock.steps()) == 7 and clock.first()[0] + sum(clock.steps()) == pytest.approx(call_s, rel=0.1)
    assert m["achieved_bw"] == pytest.approx(rec.facts["bytes_per_step"] / m["tpot"] / 1e9)


def test_the_graph_step_replays_the_eager_decode(graph_backend, make_runner):
    rec = make_runner(graph_backend).run_case(Decode(), _case("graphs"))
    assert rec.status == "ok", rec.reason
    assert rec.accuracy.passed and rec.metric("tpot").value > 0


def test_a_decode_step_at_the_wrong_position_fails_the_check(cpu_backend, make_runner, monkeypatch):
    def off_by_one(self, position):  # RoPE and the cache slot one position behind
        logits = self.model.forward(self._token[:, None], self.positions[position - 1:position], self.cache,
                                    attend_to=position)[:, -1]
        self._token = logits.argmax(-1)
        return logits, self._token

    monkeypatch.setattr(EagerEngine, "step_at", off_by_one)
    rec = make_runner(cpu_backend).run_case(Decode(), _case("eager"))
    assert rec.status == "failed" and "wrong result" in rec.reason and rec.metric("tpot") is None


def test_an_oversize_case_is_skipped_with_both_numbers_before_allocating(make_runner):
    class SmallDevice(CpuBackend):
        def free_memory_bytes(self):
            return 8 * 2**30

    rec = make_runner(SmallDevice()).run_case(Decode(), _case("eager", model="llama3.1-70b", dtype="bf16"))
    assert rec.status == "skipped" and "GiB of device memory, 8.0 GiB free" in rec.reason
    assert rec.facts["device_bytes_needed"] > 2 * 70.5e9  # the bf16 weights alone


def test_the_floor_comes_from_the_runs_measured_bandwidth(tmp_path):
    """The quick run measures the bandwidth first (floor/copy), and the tables derive each step's
    fraction of the floor from it."""
    import subprocess
    import sys
    from accelbench.store import cases_frame, load_runs
    proc = subprocess.run([sys.executable, "-m", "accelbench", "run", "--backend", "cpu", "--bench", "decode",
                           "--suite", "quick", "--out", str(tmp_path), "--no-energy",
                           # the two cases this is about: how long the others take depends on the CPU
                           "--case", "floor/copy", "--case", "tiny-llama3/eager/fp32/"],
                          capture_output=True, text=True, timeout=300)
    (run_dir,) = list(tmp_path.iterdir())
    run = load_runs([run_dir])[0]
    frame = cases_frame([run])
    if "membw.device" not in run.info.ceilings:
        pytest.skip("the last-level cache size is unknown here: no measured floor")
    row = frame[(frame.case_id == "tiny-llama3/eager/fp32/b1/p32/n8")].set_index("metric")["value"]
    if proc.returncode == 0 and "floor_fraction_measured_bw" in row:
        bw = run.info.ceilings["membw.device"].value
        bytes_ = run.cases[1].facts["bytes_per_step"]
        assert row["floor_fraction_measured_bw"] == pytest.approx(100 * bytes_ / bw / row["tpot"])
    else:  # a CPU with a large cache serves the tiny model from it: no share of memory bandwidth
        assert run.cases[1].status != "ok" or run.cases[1].facts["memory_level"] == "cache"


@pytest.mark.parametrize("fp8", ["w8a8-row", "w8-row", "w8a8+head-row"])
def test_fp8_decode_reports_its_accuracy_cost_against_the_unquantized_model(fp8, cpu_backend, make_runner):
    case = _case("eager")
    case = Case(f"tiny/eager/{fp8}", dict(case.params, fp8=fp8), matmul_dtypes=("fp32",))
    rec = make_runner(cpu_backend).run_case(Decode(), case)
    assert rec.status == "ok", rec.reason
    kl, top1 = rec.metric("kl_vs_unquantized").value, rec.metric("top1_vs_unquantized").value
    assert 0 < kl < 0.5 and 50 <= top1 <= 100  # FP8 moves the distributions a little, not wholesale
    assert "emulated" in rec.facts["fp8_execution"] or "dequantized" in rec.facts["fp8_execution"]
    plain = make_runner(cpu_backend).run_case(Decode(), _case("eager"))
    # Read per step: the FP8 projections' bytes replace their fp32 bytes (about a quarter).
    assert rec.facts["bytes_per_step"] < 0.5 * plain.facts["bytes_per_step"]
    if "+head" in fp8:  # the output projection is read as FP8 too: 1 byte a weight instead of 4
        projections = make_runner(cpu_backend).run_case(
            Decode(), Case("tiny/eager/w8a8-row", dict(case.params, fp8="w8a8-row"), matmul_dtypes=("fp32",)))
        saved = projections.facts["bytes_per_step"] - rec.facts["bytes_per_step"]
        assert saved == pytest.approx(3 * TINY.vocab * TINY.hidden, rel=0.01)
        assert "output projection" in rec.facts["fp8_execution"]


def test_fp8_projections_run_the_chosen_kernel_only_at_the_rows_it_was_timed_at(cpu_backend):
    import torch
    from accelbench.e2e.decode import fp8_linear
    from accelbench.e2e.decode import TINY
    from accelbench.e2e.decode.model import Llama
    from accelbench.e2e.decode.weights import synthetic_weights
    gemvs = list(fp8_linear.SPLIT_K)
    assert gemvs[0] == fp8_linear.TENSOR_CORE and fp8_linear.SPLIT_K[fp8_linear.TENSOR_CORE] == 1
    assert fp8_linear.Fp8Linears._kernels(1) == [fp8_linear.OWN_GEMM, *gemvs]
    assert fp8_linear.Fp8Linears._kernels(16) == [fp8_linear.OWN_GEMM, *gemvs]
    assert fp8_linear.Fp8Linears._kernels(17) == [fp8_linear.OWN_GEMM]
    model = Llama(TINY, synthetic_weights(TINY, torch.float32, torch.device("cpu")))
    linears = fp8_linear.Fp8Linears(model.w, TINY.layers, "row", False, cpu_backend)
    # As choose_kernels leaves it where the tensor-core GEMV won gate/up at one row (it needs a GPU).
    linears.chosen_rows = 1
    linears.times_for = {"mlp.gate_up_proj": {fp8_linear.OWN_GEMM: 48.3, fp8_linear.TENSOR_CORE: 41.4},
                         "mlp.down_proj": {fp8_linear.OWN_GEMM: 23.0, fp8_linear.TENSOR_CORE: 25.1}}
    ran, engine = [], linears._multiply
    linears._multiply = lambda kernel, qa, w, dtype: ran.append(kernel) or engine(fp8_linear.OWN_GEMM, qa, w, dtype)
    fp8_model = Llama(TINY, model.w, linear=linears)
    fp8_model.forward(torch.zeros(1, 1, dtype=torch.long), torch.arange(1))  # a decode step: one row
    assert ran.count(fp8_linear.TENSOR_CORE) == TINY.layers and ran.count(fp8_linear.OWN_GEMM) == 3 * TINY.layers
    ran.clear()
    fp8_model.forward(torch.zeros(1, 5, dtype=torch.long), torch.arange(5))  # a prompt: the engine throughout
    assert ran == [fp8_linear.OWN_GEMM] * 4 * TINY.layers


def test_fp8_partial_products_are_summed_and_eager_activations_quantize_as_the_reference(cpu_backend):
    import torch
    from accelbench.e2e.decode import fp8_linear
    from accelbench.e2e.decode.model import Llama
    from accelbench.e2e.decode.weights import synthetic_weights
    from accelbench.fp8.reference import quantize
    model = Llama(TINY, synthetic_weights(TINY, torch.float32, torch.device("cpu")))
    linears = fp8_linear.Fp8Linears(model.w, TINY.layers, "tensor", False, cpu_backend)
    # A GEMV with K in parts writes fp32 partial products (parts x rows x N): the product is their sum.
    parts = torch.randn(4, 2, 3)
    linears._product = lambda kernel, qa, w, dtype: parts
    y = linears._multiply(fp8_linear.TENSOR_CORE, None, None, torch.bfloat16)
    assert y.shape == (2, 3) and y.dtype == torch.bfloat16 and torch.equal(y, parts.sum(0).to(torch.bfloat16))
    # Eager calls quantize with the fused quantizers: the reference's values and scale, bit for bit.
    a = torch.randn(5, TINY.hidden) * 3
    fused, reference = linears._quantize_activations(a), quantize(a, linears.mode.a)
    assert torch.equal(fused.q.view(torch.uint8), reference.q.view(torch.uint8))
    assert torch.equal(fused.scale.reshape(-1), reference.scale.reshape(-1))


def test_static_scales_come_from_calibration_and_delayed_ones_from_earlier_calls(cpu_backend):
    import torch
    from accelbench.e2e.decode import fp8_linear
    from accelbench.e2e.decode.model import Llama
    from accelbench.e2e.decode.weights import synthetic_weights
    from accelbench.fp8.reference import quantize_with_scale, scale_from_amax
    model = Llama(TINY, synthetic_weights(TINY, torch.float32, torch.device("cpu")))
    name = "model.layers.0.mlp.down_proj"
    static = fp8_linear.Fp8Linears(model.w, TINY.layers, "tensor-static", False, cpu_backend)
    quiet, loud = torch.randn(3, TINY.intermediate), 8 * torch.randn(3, TINY.intermediate)
    with static.calibrating():  # calibration runs unquantized and keeps the largest amax seen
        assert torch.equal(static(quiet, name), torch.nn.functional.linear(quiet, model.w[f"{name}.weight"]))
        static(loud, name)
    scale = scale_from_amax(loud.abs().amax().reshape(1, 1), static.mode.a.fmt, "exact")
    used = static._quantize_activations(quiet, name)
    assert torch.equal(used.scale.reshape(-1), scale.reshape(-1))  # the calibrated scale, not quiet's own
    assert torch.equal(used.q.view(torch.uint8), quantize_with_scale(quiet, scale, (0, 0), static.mode.a.fmt).q.view(torch.uint8))
    with pytest.raises(RuntimeError, match="never calibrated"):
        static._quantize_activations(quiet, "model.layers.1.mlp.down_proj")
    delayed = fp8_linear.Fp8Linears(model.w, TINY.layers, "tensor-delayed", False, cpu_backend)
    first = delayed._quantize_activations(loud, name)  # nothing to delay from: its own amax
    second = delayed._quantize_activations(quiet, name)  # the history's max: loud's
    assert torch.equal(first.scale, second.scale)
    with pytest.raises(ValueError, match="per tensor here"):
        fp8_linear.Fp8Linears(model.w, TINY.layers, "row-static", False, cpu_backend)


def test_tensor_parallel_decoder_generates_what_the_whole_model_does():
    import os
    import subprocess
    import sys
    from pathlib import Path
    root = Path(__file__).resolve().parents[1]
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                           str(root / "tests" / "helpers" / "tp_equivalence.py")], capture_output=True, text=True,
                          timeout=180, cwd=root, env=dict(os.environ, PYTHONPATH=str(root), OMP_NUM_THREADS="1"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    for rank in (0, 1):
        assert f"rank {rank}: tokens equal, logits close" in proc.stdout


def test_tensor_parallel_decode_runs_checked_across_two_ranks(tmp_path):
    import json
    import subprocess
    import sys
    proc = subprocess.run([sys.executable, "-m", "accelbench", "run", "--backend", "cpu", "--bench", "decode-tp",
                           "--nproc", "2", "--suite", "quick", "--case", "eager/fp32", "--call-budget", "0",
                           "--no-energy", "--out", str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (run_dir,) = list(tmp_path.iterdir())
    (case,) = [json.loads(line) for line in (run_dir / "cases.jsonl").read_text().splitlines()]
    assert case["status"] == "ok" and case["accuracy"]["passed"] and case["facts"]["ranks"] == 2
    assert any(m["name"] == "tpot" and m["value"] > 0 for m in case["metrics"])


def test_weights_dir_runs_the_checkpoint_and_a_mismatched_one_is_refused_in_one_line(tmp_path):
    pytest.importorskip("safetensors")
    import json
    import subprocess
    import sys
    import torch
    from accelbench.e2e.decode.weights import synthetic_weights, tiny_config
    config = tiny_config("ckpt", rope_scaling=None)
    weights = synthetic_weights(config, torch.float32, torch.device("cpu"), seed=11)
    save_checkpoint(tmp_path / "good", config, weights)
    run = [sys.executable, "-m", "accelbench", "run", "--backend", "cpu", "--bench", "decode", "--suite", "quick",
           "--case", "eager/fp32", "--no-energy", "--call-budget", "0"]
    proc = subprocess.run(run + ["--weights", str(tmp_path / "good"), "--out", str(tmp_path / "out")],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    (run_dir,) = list((tmp_path / "out").iterdir())
    (case,) = [json.loads(line) for line in (run_dir / "cases.jsonl").read_text().splitlines()]
    assert case["case_id"] == "checkpoint:good/eager/fp32/b1/p32/n8" and case["status"] == "ok"
    assert case["facts"]["weights"].startswith("checkpoint ") and case["accuracy"]["passed"]

    bad = dict(weights)
    bad["model.layers.0.self_attn.k_proj.weight"] = torch.zeros(16, 64)
    save_checkpoint(tmp_path / "bad", config, bad)
    proc = subprocess.run(run + ["--weights", str(tmp_path / "bad"), "--out", str(tmp_path / "out2")],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and not (tmp_path / "out2").exists()
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith("bench: error:") and "model.layers.0.self_attn.k_proj.weight has shape (16, 64)" in line


def test_text_perplexity_with_a_checkpoint_fp8_beside_unquantized(tmp_path, cpu_backend, make_runner):
    pytest.importorskip("safetensors")
    tokenizers = pytest.importorskip("tokenizers")
    import torch
    from accelbench.e2e.decode.weights import synthetic_weights, tiny_config
    config = tiny_config("ckpt", rope_scaling=None)
    save_checkpoint(tmp_path / "ckpt", config, synthetic_weights(config, torch.float32, torch.device("cpu"), seed=12))
    words = [f"w{i}" for i in range(200)]
    tok = tokenizers.Tokenizer(tokenizers.models.WordLevel({w: i for i, w in enumerate(words + ["[UNK]"])},
                                                          unk_token="[UNK]"))
    tok.pre_tokenizer = tokenizers.pre_tokenizers.Whitespace()
    tok.save(str(tmp_path / "ckpt" / "tokenizer.json"))
    text = tmp_path / "text.txt"
    text.write_text(" ".join(words[(i * 7) % 200] for i in range(300)))

    bench = Decode()
    bench.use_weights(tmp_path / "ckpt")
    bench.use_text(text)
    case = Case("ckpt-fp8", {"model": "checkpoint:ckpt", "engine": "eager", "dtype": "fp32", "fp8": "w8a8-row",
                             "batch": 1, "prompt": 16, "new_tokens": 6}, matmul_dtypes=("fp32",))
    rec = make_runner(cpu_backend).run_case(bench, case)
    assert rec.status == "ok", rec.reason
    fp8, plain = rec.metric("perplexity").value, rec.metric("perplexity_unquantized").value
    # Random weights know nothing of the text: both near the vocabulary size, FP8 within a few percent.
    assert 50 < plain < 5 * config.vocab and abs(fp8 - plain) / plain < 0.05
    assert "300 tokens of text.txt" in rec.metric("perplexity").note

    no_weights = Decode()
    with pytest.raises(Exception, match="--text needs --weights"):
        no_weights.use_text(text)

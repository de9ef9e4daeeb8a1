"""The serve benchmark: its load generator (accelbench/e2e/serve/client.py) and a level's figures
(level.py) against a real local server that streams at a known interval (calibration.py, its own
process), and `bench run --bench serve` against a real `transformers serve` on the SmolLM2 fixture."""
import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from accelbench.e2e.serve.client import run_level
from accelbench.e2e.serve.launcher import free_port
from accelbench.e2e.serve.level import LevelPlan, observe
from accelbench.e2e.serve.slo import PRESETS

from conftest import REPO


def calibration_source(interval_ms: float):
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "accelbench.e2e.serve.calibration", "--port", str(port),
                                "--interval-ms", str(interval_ms)], cwd=REPO)
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1).read()
            return process, f"http://127.0.0.1:{port}/v1/completions"
        except OSError:
            if time.monotonic() > deadline or process.poll() is not None:
                process.kill()
                raise RuntimeError("the calibration source did not start")
            time.sleep(0.1)


@pytest.fixture
def source(request):
    process, url = calibration_source(request.param)
    yield url
    process.kill()
    process.wait()


def level(url: str, concurrency: int, tokens: int = 20):
    return asyncio.run(run_level(url, lambda i: {"prompt": f"request {i}", "max_tokens": tokens, "stream": True},
                                 concurrency, requests=2 * concurrency, warmup=concurrency, timeout_s=120))


@pytest.mark.parametrize("source", [50.0], indirect=True)
def test_256_streams_measure_the_known_interval_within_5_percent(source):
    result = level(source, 256)
    assert len(result.requests) == 512 and all(r.ok for r in result.requests), \
        {r.error for r in result.requests if not r.ok}
    assert all(r.completion_tokens == 20 and len(r.token_times) == 20 for r in result.requests)
    gaps = [g for r in result.requests for g in r.gaps()]
    assert statistics.median(gaps) == pytest.approx(0.050, rel=0.05)
    assert statistics.median(r.tpot for r in result.requests) == pytest.approx(0.050, rel=0.05)
    assert not result.client.limited, result.client


@pytest.mark.parametrize("source", [0.5], indirect=True)
def test_driven_past_what_it_can_sustain_the_generator_flags_itself(source):
    result = level(source, 256, tokens=200)  # 512,000 chunks/s asked of one Python event loop
    assert result.client.limited, result.client
    assert "load generator was the limit" in result.client.reason()


def test_a_server_that_is_not_there_stops_the_level_with_the_reason():
    result = level(f"http://127.0.0.1:{free_port()}/v1/completions", 4)
    assert result.server_gone and "Connect" in result.server_gone
    assert all(not r.ok for r in result.requests)


@pytest.mark.parametrize("source", [20.0], indirect=True)
def test_a_levels_figures_over_its_steady_window_are_the_sources_known_rates(source):
    # 8 streams of 20 tokens, a token every 20 ms each: 400 tokens/s in all, TPOT 20 ms, TTFT 20 ms.
    result = asyncio.run(run_level(source, lambda i: {"prompt": f"r{i}", "max_tokens": 20, "stream": True}, 8,
                                   requests=24, warmup=8, timeout_s=60))
    seen = observe(LevelPlan(8, 1, 20, forced=True, accelerators=2, slos=PRESETS), result)
    assert seen.accuracy.passed and seen.failure is None and seen.skipped is None, seen
    figures = {m.name: m.value for m in seen.metrics}
    assert figures["output_tokens_per_s"] == pytest.approx(400, rel=0.10)
    assert figures["output_tokens_per_s_per_accelerator"] == pytest.approx(200, rel=0.10)
    assert figures["tpot_p50"] == pytest.approx(0.020, rel=0.05)
    assert figures["itl_p50"] == pytest.approx(0.020, rel=0.05)
    assert figures["ttft_p50"] == pytest.approx(0.020, abs=0.01)
    assert figures["slo_met_mlperf-8b-server"] == 100.0  # TTFT 2 s, TPOT 100 ms: every request meets it
    assert figures["slo_met_mlperf-8b-interactive"] == 100.0  # 0.5 s, 30 ms: so does 20 ms
    assert statistics.median(seen.samples_s) == pytest.approx(1 / 400, rel=0.15)  # what compare tests
    start, end = seen.window
    assert 0 < end - start < result.ended - result.began  # warm-up and ramp-down cut


@pytest.mark.parametrize("source", [20.0], indirect=True)
def test_a_level_whose_server_counts_other_lengths_fails_its_check(source):
    result = asyncio.run(run_level(source, lambda i: {"prompt": f"r{i}", "max_tokens": 20, "stream": True}, 2,
                                   requests=4, warmup=0, timeout_s=60))
    seen = observe(LevelPlan(2, 1, 16, forced=True, accelerators=1, slos=PRESETS), result)  # 16 asked, 20 came
    assert not seen.accuracy.passed and not seen.metrics
    assert "counted 20 output tokens where 16 were asked" in seen.check_failure


# --- `bench run --bench serve` on a real engine: transformers serve (continuous batching), SmolLM2 fixture ---

def _checkpoint():
    from accelbench.e2e.serve.engines import recipes
    from tests.helpers.fixtures import CHECKPOINT, require_fixtures
    require_fixtures()
    missing = recipes()["transformers"].missing()
    if missing:
        if os.environ.get("CI"):
            pytest.fail(missing)
        pytest.skip(missing)
    return CHECKPOINT


def _bench(*args: str, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "accelbench", *args], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kwargs)


def _cases(out: Path) -> list[dict]:
    files = list(out.glob("*/cases.jsonl"))
    return [json.loads(line) for f in files for line in f.read_text().splitlines() if line.strip()]


def test_bench_run_sweeps_transformers_serve_at_1_2_4_and_checks_every_token(tmp_path):
    checkpoint = _checkpoint()
    run = _bench("run", "--bench", "serve", "--suite", "quick", "--engine", "transformers", "--weights",
                 str(checkpoint), "--out", str(tmp_path), "--no-report", "--slo", "ttft=3s,tpot=200ms")
    out, err = run.communicate(timeout=600)
    assert run.returncode == 0, out[-2000:] + err[-2000:]
    cases = _cases(tmp_path)
    assert [c["params"]["concurrency"] for c in cases] == [1, 2, 4]
    # On 2 cores the engine may saturate by concurrency 2 (throughput flat, TPOT up): the sweep then
    # stops by itself, and says so.
    statuses = [(c["status"], c["reason"]) for c in cases]
    assert statuses[0][0] == statuses[1][0] == "ok", statuses
    assert statuses[2][0] == "ok" or (statuses[2][0] == "skipped" and "stopped at saturation" in statuses[2][1]), \
        statuses
    for case in (c for c in cases if c["status"] == "ok"):
        assert case["accuracy"]["passed"] and "usage count and the forced length" in case["accuracy"]["reference"]
        figures = {m["name"]: m["value"] for m in case["metrics"]}
        assert figures["output_tokens_per_s"] > 0 and 0 < figures["ttft_p50"] <= figures["ttft_p99"]
        assert 0 < figures["tpot_p50"] <= figures["tpot_p99"] and "slo_met_user" in figures
        facts = case["facts"]
        assert facts["engine"] == "transformers" and facts["engine_version"] and facts["output_tokens_mean"] == 16
        assert 60 <= facts["prompt_tokens_mean"] <= 70  # 64 random tokens, decoded and encoded again
    assert not _engines_serving(checkpoint)  # the engine stopped with the run


def _engines_serving(checkpoint: Path) -> list[int]:
    """Live processes serving `checkpoint` (an engine left behind would be re-parented, so its
    command line, not its parent, finds it)."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            argv = cmdline.read_bytes()
        except OSError:
            continue
        if b"serve" in argv and b"--continuous-batching" in argv and str(checkpoint).encode() in argv:
            found.append(int(cmdline.parent.name))
    return found


def _serving_children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
            cmdline = (stat.parent / "cmdline").read_bytes()
        except OSError:
            continue
        if int(text[text.rfind(")") + 2:].split()[1]) == pid and b"serve" in cmdline:
            found.append(int(stat.parent.name))
    return found


def test_an_engine_killed_during_a_level_fails_it_keeps_the_earlier_and_exits_1(tmp_path):
    checkpoint = _checkpoint()
    run = _bench("run", "--bench", "serve", "--suite", "quick", "--engine", "transformers", "--weights",
                 str(checkpoint), "--out", str(tmp_path), "--no-report")
    deadline = time.monotonic() + 300
    while not _cases(tmp_path) and time.monotonic() < deadline and run.poll() is None:
        time.sleep(0.2)  # level 1 done: level 2 is under way
    engines = _serving_children(run.pid)
    assert engines, "the engine was not found"
    for pid in engines:
        os.killpg(pid, signal.SIGKILL)
    out, err = run.communicate(timeout=300)
    assert run.returncode == 1, out[-2000:] + err[-2000:]
    assert "Traceback" not in err
    statuses = [(c["params"]["concurrency"], c["status"], c["reason"] or "") for c in _cases(tmp_path)]
    assert statuses[0][:2] == (1, "ok")
    failed = [s for s in statuses if s[1] == "failed"]
    assert len(failed) == 1 and "the server stopped answering during the level" in failed[0][2], statuses
    after = statuses[statuses.index(failed[0]) + 1:]
    assert all(s[1] == "skipped" and "an earlier level failed" in s[2] for s in after), statuses


def test_an_unreachable_url_is_one_line_and_exit_2(tmp_path):
    run = _bench("run", "--bench", "serve", "--url", f"http://127.0.0.1:{free_port()}", "--out", str(tmp_path))
    out, err = run.communicate(timeout=120)
    assert run.returncode == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "no OpenAI-compatible server answers there" in lines[0], err
    assert not list(tmp_path.iterdir())  # refused before any run folder


@pytest.mark.parametrize("engine", ["vllm", "sglang"])
def test_an_engine_that_is_not_installed_skips_its_levels_saying_how_to_get_it(tmp_path, engine):
    import importlib.util
    if importlib.util.find_spec(engine) is not None:
        pytest.skip(f"{engine} is installed here")
    model = tmp_path / "m"
    model.mkdir()
    (model / "tokenizer.json").write_text("{}")
    run = _bench("run", "--bench", "serve", "--engine", engine, "--weights", str(model), "--out", str(tmp_path / "out"))
    out, err = run.communicate(timeout=120)
    assert run.returncode == 0, err[-2000:]
    skipped = [c for c in _cases(tmp_path / "out") if c["status"] == "skipped"]
    assert len(skipped) == 3 and all(f"the Python module '{engine}' is not installed (pip install" in c["reason"]
                                     for c in skipped), skipped


@pytest.mark.parametrize("slo", ["ttft=2s", "ttft=fast,tpot=1ms", "ttft=2s,tpot=-1ms,x=1"])
def test_a_bad_slo_is_one_line_and_exit_2(tmp_path, slo):
    run = _bench("run", "--bench", "serve", "--slo", slo, "--out", str(tmp_path))
    out, err = run.communicate(timeout=120)
    assert run.returncode == 2 and len(err.strip().splitlines()) == 1 and "--slo" in err, err


@pytest.mark.parametrize("source", [10.0], indirect=True)
def test_an_open_loop_level_sends_at_the_asked_rate_poisson_or_regular(source):
    from accelbench.e2e.serve.client import run_rate_level

    def body(i):
        return {"prompt": f"r{i}", "max_tokens": 5, "stream": True}
    regular = asyncio.run(run_rate_level(source, body, 40.0, requests=120, warmup=10, timeout_s=60, burstiness=1000))
    seen = observe(LevelPlan(0, 1, 5, forced=True, accelerators=1, slos=PRESETS), regular)
    assert seen.accuracy.passed and seen.facts["request_rate"] == 40.0
    assert seen.facts["sent_rate"] == pytest.approx(40.0, rel=0.05)
    assert {m.name: m.value for m in seen.metrics}["tpot_p50"] == pytest.approx(0.010, rel=0.1)
    poisson = asyncio.run(run_rate_level(source, body, 40.0, requests=300, warmup=0, timeout_s=60, burstiness=1.0))
    sends = sorted(r.sent for r in poisson.requests)
    gaps = [b - a for a, b in zip(sends, sends[1:])]
    cv = statistics.pstdev(gaps) / statistics.mean(gaps)
    assert statistics.mean(gaps) == pytest.approx(1 / 40, rel=0.15) and 0.75 < cv < 1.25  # exponential gaps: CV 1


def test_a_random_checkpoint_of_a_shape_loads_in_transformers_and_generates(tmp_path):
    from tests.helpers.fixtures import CHECKPOINT, require_fixtures
    require_fixtures()
    out = subprocess.run([sys.executable, "scripts/make_random_checkpoint.py", str(tmp_path / "m"), "--shape",
                          "llama3.2-1b", "--layers", "1", "--tokenizer", str(CHECKPOINT)],
                         cwd=REPO, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    import torch
    from transformers import AutoModelForCausalLM
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    assert config["hidden_size"] == 2048 and config["num_hidden_layers"] == 1 and config["vocab_size"] == 49152
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "m", dtype=torch.bfloat16)
    tokens = model.generate(torch.tensor([[1, 2, 3]]), max_new_tokens=4, min_new_tokens=4, do_sample=False)
    assert tokens.shape == (1, 7)


def test_at_concurrency_1_the_engines_tpot_is_set_beside_the_decode_graphs_engines(tmp_path):
    from accelbench.records import CaseRecord, Metric
    from accelbench.stats import SampleStats
    from accelbench.store import cases_frame, load_run
    from helpers.synthetic_runs import decode_record, write_synthetic_run

    def level(concurrency, tpot, model="checkpoint:m8b"):
        return CaseRecord("serve", f"in1024-out128/c{concurrency}",
                          {"lengths": "1024/128", "input": 1024, "output": 128, "concurrency": concurrency,
                           "engine": "transformers"}, "ok", samples_s=[0.01] * 3,
                          stats=SampleStats.from_samples([0.01] * 3),
                          metrics=[Metric("output_tokens_per_s", 100.0, "tokens/s"), Metric("tpot_p50", tpot, "s")],
                          facts={"decode_model": model, "model_shape": "llama3.1-8b"})
    decode = decode_record(1, 200.0, model="checkpoint:m8b")  # TPOT 5 ms
    run = write_synthetic_run(tmp_path / "r", "GPU", [decode, level(1, 0.0075), level(2, 0.009),
                                                      level(1, 0.006, model="checkpoint:other")])
    frame = cases_frame([load_run(run)])
    beside = frame[frame["metric"] == "tpot_vs_decode_graphs"]
    assert list(beside["value"]) == [pytest.approx(1.5)]  # concurrency 1, same checkpoint: 7.5 ms over 5 ms


@pytest.mark.parametrize("source", [10.0], indirect=True)
def test_chat_completions_stream_their_deltas_and_are_counted_the_same_way(source):
    chat = source.replace("/v1/completions", "/v1/chat/completions")
    result = asyncio.run(run_level(chat, lambda i: {"messages": [{"role": "user", "content": f"r{i}"}],
                                                    "max_tokens": 12, "stream": True}, 4, requests=8, warmup=4,
                                   timeout_s=60))
    assert all(r.ok and r.completion_tokens == 12 and len(r.token_times) == 12 for r in result.requests)
    assert statistics.median(r.tpot for r in result.requests) == pytest.approx(0.010, rel=0.1)

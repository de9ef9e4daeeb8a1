"""The serving load generator (accelbench/e2e/serve/client.py) against a real local server that
streams at a known interval (accelbench/e2e/serve/calibration.py, its own process)."""
import asyncio
import statistics
import subprocess
import sys
import time
import urllib.request

import pytest

from accelbench.e2e.serve.client import run_level
from accelbench.e2e.serve.launcher import free_port

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


# --- a real engine: transformers serve (continuous batching) on the SmolLM2-135M-Instruct fixture ---

def _engine(tmp_path):
    from accelbench.e2e.serve.engines import recipes
    from accelbench.e2e.serve.launcher import Engine
    from tests.helpers.fixtures import CHECKPOINT, require_fixtures
    require_fixtures()
    recipe = recipes()["transformers"]
    if recipe.missing():
        if __import__("os").environ.get("CI"):
            pytest.fail(recipe.missing())
        pytest.skip(recipe.missing())
    return recipe, Engine(recipe, CHECKPOINT, tmp_path / "engine.log"), CHECKPOINT


def test_transformers_serve_swept_at_1_2_4_returns_every_token_it_counts(tmp_path):
    from accelbench.e2e.serve.load import RandomPrompts
    recipe, engine, checkpoint = _engine(tmp_path)
    prompts = RandomPrompts(checkpoint / "tokenizer.json", 16)
    with engine:
        for concurrency in (1, 2, 4):
            def payload(i, c=concurrency):
                return {"model": str(checkpoint), "prompt": prompts(100 * c + i), "max_tokens": 8, "stream": True,
                        "stream_options": {"include_usage": True}, **recipe.force_length(8)}
            result = asyncio.run(run_level(engine.base_url + recipe.completions_path, payload, concurrency,
                                           requests=2 * concurrency, warmup=1, timeout_s=120))
            assert result.server_gone is None
            assert all(r.ok for r in result.requests), {r.error for r in result.requests if not r.ok}
            for r in result.requests:
                assert r.completion_tokens == 8  # forced through the engine's generation_config
                assert 1 <= len(r.token_times) <= r.completion_tokens  # a chunk may carry more than one token
                assert 14 <= r.prompt_tokens <= 20  # 16 random tokens, decoded and encoded again
                assert r.ttft > 0 and r.tpot > 0
    assert engine.process.poll() is not None  # stopped with its process group


def test_an_engine_killed_during_a_level_stops_it_with_the_reason(tmp_path):
    recipe, engine, checkpoint = _engine(tmp_path)
    with engine:
        async def level_with_a_kill():
            asyncio.get_running_loop().call_later(2.0, engine.stop)
            return await run_level(engine.base_url + recipe.completions_path,
                                   lambda i: {"model": str(checkpoint), "prompt": f"Count to a hundred ({i}):",
                                              "max_tokens": 64, "stream": True,
                                              "stream_options": {"include_usage": True}, **recipe.force_length(64)},
                                   2, requests=200, warmup=0, timeout_s=60)
        result = asyncio.run(level_with_a_kill())
    assert result.server_gone, [r.error for r in result.requests][-3:]
    assert any(not r.ok for r in result.requests) and len(result.requests) < 200

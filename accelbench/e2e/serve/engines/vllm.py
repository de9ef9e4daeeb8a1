"""vLLM's OpenAI-compatible server (`vllm serve`, here through its module with this interpreter, so it
sees the suite's packages). Exact lengths: `ignore_eos` with `max_tokens` (vLLM's sampling extras).
Written from vLLM's documented CLI and API; not yet run in this project's sessions (not installed on
their machines): a run records the version it used."""
import sys

from accelbench.e2e.serve.engines.base import Recipe


def _command(model, port, extra):
    return [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(model),
            "--host", "127.0.0.1", "--port", str(port), *extra]


RECIPE = Recipe(
    name="vllm",
    command=_command,
    package="vllm",
    modules=("vllm",),
    force_length=lambda n: {"ignore_eos": True},
    install="pip install vllm (on Gaudi: vLLM with its HPU plugin)",
)

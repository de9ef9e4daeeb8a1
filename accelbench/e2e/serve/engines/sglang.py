"""SGLang's OpenAI-compatible server (`python -m sglang.launch_server`). Exact lengths: `ignore_eos`
with `max_tokens` (SGLang's sampling extras). Written from SGLang's documented CLI and API; not yet
run in this project's sessions (not installed on their machines): a run records the version it used."""
import sys

from accelbench.e2e.serve.engines.base import Recipe


def _command(model, port, extra):
    return [sys.executable, "-m", "sglang.launch_server", "--model-path", str(model),
            "--host", "127.0.0.1", "--port", str(port), *extra]


RECIPE = Recipe(
    name="sglang",
    command=_command,
    package="sglang",
    modules=("sglang",),
    force_length=lambda n: {"ignore_eos": True},
    install="pip install 'sglang[all]'",
)

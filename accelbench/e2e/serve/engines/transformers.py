"""Hugging Face transformers' own server (`transformers serve`): OpenAI-compatible, with continuous
batching (paged attention) on CPU and GPU. It takes no `ignore_eos` or `min_tokens`; an exact
length is asked through its `generation_config` field (min_new_tokens = max_new_tokens)."""
import json
import sys

from accelbench.e2e.serve.engines.base import Recipe


def _command(model, port, extra):
    # The `transformers` console script is the installed CLI; run through this interpreter so the
    # engine sees the same packages as the suite.
    return [sys.executable, "-c", "from transformers.cli.transformers import main; main()", "serve",
            "--continuous-batching", "--host", "127.0.0.1", "--port", str(port), *extra, str(model)]


RECIPE = Recipe(
    name="transformers",
    command=_command,
    package="transformers",
    modules=("transformers", "fastapi", "uvicorn"),
    force_length=lambda n: {"generation_config": json.dumps({"min_new_tokens": n, "max_new_tokens": n})},
)

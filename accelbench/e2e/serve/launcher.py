"""Start an engine from its recipe, wait until it answers, stop it: the engine's process runs in
a process group of its own, so that stopping it stops the workers it started; its output goes to a
log file whose last lines explain a start that failed."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Optional

from accelbench.e2e.serve.engines.base import Recipe
from accelbench.errors import CaseSkipped

START_TIMEOUT_S = 600.0  # a large model's load; the log says what it was doing when time ran out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Engine:
    def __init__(self, recipe: Recipe, model: Path, log: Path, extra: tuple[str, ...] = (),
                 timeout_s: float = START_TIMEOUT_S) -> None:
        self.recipe, self.model, self.log_path, self.extra, self.timeout_s = recipe, model, log, extra, timeout_s
        self.port = free_port()
        self.process: Optional[subprocess.Popen] = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def argv(self) -> list[str]:
        return self.recipe.command(self.model, self.port, self.extra)

    def start(self) -> "Engine":
        reason = self.recipe.missing()
        if reason:
            raise CaseSkipped(reason)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(self.argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                            start_new_session=True)
        deadline = time.monotonic() + self.timeout_s
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.recipe.name} exited with code {self.process.returncode} while starting: "
                                   f"{self.log_tail()}")
            try:
                with urllib.request.urlopen(self.base_url + self.recipe.health_path, timeout=2) as response:
                    if response.status == 200:
                        return self
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"{self.recipe.name} did not answer {self.recipe.health_path} within "
                                   f"{self.timeout_s:.0f} s: {self.log_tail()}")
            time.sleep(0.5)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        except ProcessLookupError:
            pass

    def log_tail(self, lines: int = 5) -> str:
        try:
            text = self.log_path.read_text(errors="replace").strip().splitlines()
        except OSError:
            return "no log"
        return " | ".join(text[-lines:])[-600:] or "no output"

    def __enter__(self) -> "Engine":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

"""What the serve benchmark needs to know of an engine: how to start it on a model and a port,
where it answers when ready, how to ask for an exact output length, and its version."""
from __future__ import annotations

import importlib.metadata
import importlib.util
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional


@dataclass(frozen=True)
class Recipe:
    name: str
    # argv that serves `model` on 127.0.0.1:`port`, then the user's own arguments
    command: Callable[[Path, int, tuple[str, ...]], list[str]]
    package: str  # the distribution whose version the run records
    modules: tuple[str, ...] = ()  # importable modules it needs (its serving extras)
    executable: Optional[str] = None  # a program it needs on PATH
    health_path: str = "/health"
    completions_path: str = "/v1/completions"
    # request fields that make the engine generate exactly n tokens (None: it cannot be forced;
    # the actual lengths are recorded either way)
    force_length: Optional[Callable[[int], dict[str, Any]]] = None
    install: str = "pip install 'accelbench[serve]'"  # how a user gets it, said where it is missing

    def missing(self) -> Optional[str]:
        """Why this engine cannot start here, in one line; None where it can."""
        for module in self.modules:
            if importlib.util.find_spec(module) is None:
                return f"{self.name}: the Python module {module!r} is not installed ({self.install})"
        if self.executable and shutil.which(self.executable) is None:
            return f"{self.name}: {self.executable!r} is not on PATH"
        return None

    def version(self) -> Optional[str]:
        try:
            return importlib.metadata.version(self.package)
        except importlib.metadata.PackageNotFoundError:
            return None

"""Backend registry: every `Backend` subclass in a module of this package is a backend.

Adding one (ROCm, XPU) is a new file here; nothing else needs editing.
"""
from __future__ import annotations

import importlib
import pkgutil
from typing import Optional

from accelbench.backends.base import Backend
from accelbench.errors import BackendUnavailable, UsageError

_SKIP = {"base"}


def backend_classes() -> dict[str, type[Backend]]:
    for info in pkgutil.iter_modules(__path__):
        if info.name not in _SKIP and not info.name.startswith("_"):
            importlib.import_module(f"{__name__}.{info.name}")
    return {cls.name: cls for cls in _all_subclasses(Backend) if "name" in vars(cls)}


def _all_subclasses(cls: type) -> list[type]:
    out = []
    for sub in cls.__subclasses__():
        out.append(sub)
        out.extend(_all_subclasses(sub))
    return out


def backend_names() -> list[str]:
    return sorted(backend_classes())


def resolve_backend(name: str, device_index: int = 0, local_rank: Optional[int] = None) -> Backend:
    """Instantiate a backend by name ("auto" picks the best available) or raise a one-line error.
    A rank of a multi-rank run passes its `local_rank` and gets the device its backend gives it."""
    classes = backend_classes()
    if name != "auto" and name not in classes:
        raise UsageError(f"unknown backend '{name}'; choose from: auto, {', '.join(sorted(classes))}")
    candidates = sorted(classes.values(), key=lambda c: -c.auto_priority) if name == "auto" else [classes[name]]
    for cls in candidates:
        index = device_index if local_rank is None else cls.device_for_rank(local_rank)
        cls.select_device(index)
        reason = cls.unavailable_reason()
        if reason is None:
            return cls(index)
        if name != "auto":
            raise BackendUnavailable(f"backend '{name}' is unavailable: {reason}")
    raise BackendUnavailable("no backend is available")  # cpu always is; kept for safety


def best_available() -> str:
    """The backend `auto` would pick, by name, without opening a device."""
    classes = backend_classes()
    return next((n for n, c in sorted(classes.items(), key=lambda kv: -kv[1].auto_priority)
                 if c.unavailable_reason() is None), "cpu")

"""Backend registry: every `Backend` subclass in a module of this package is a backend.

Adding one (ROCm, XPU) is a new file here; nothing else needs editing.
"""
from __future__ import annotations

import importlib
import pkgutil

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


def resolve_backend(name: str, device_index: int = 0) -> Backend:
    """Instantiate a backend by name ("auto" picks the best available) or raise a one-line error."""
    classes = backend_classes()
    if name == "auto":
        for cls in sorted(classes.values(), key=lambda c: -c.auto_priority):
            cls.select_device(device_index)
            if cls.unavailable_reason() is None:
                return cls(device_index)
        raise BackendUnavailable("no backend is available")  # cpu always is; kept for safety
    if name not in classes:
        raise UsageError(f"unknown backend '{name}'; choose from: auto, {', '.join(sorted(classes))}")
    classes[name].select_device(device_index)
    reason = classes[name].unavailable_reason()
    if reason is not None:
        raise BackendUnavailable(f"backend '{name}' is unavailable: {reason}")
    return classes[name](device_index)

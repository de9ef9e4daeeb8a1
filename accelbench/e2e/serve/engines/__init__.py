"""Serving engines the serve benchmark can start: one module per engine, each naming its `RECIPE`
(base.Recipe). An engine that is not installed says why in one line (`Recipe.missing`)."""
from __future__ import annotations

import importlib
import pkgutil

from accelbench.e2e.serve.engines.base import Recipe


def recipes() -> dict[str, Recipe]:
    found = {}
    for info in pkgutil.iter_modules(__path__):
        module = importlib.import_module(f"{__name__}.{info.name}")
        recipe = getattr(module, "RECIPE", None)
        if isinstance(recipe, Recipe):
            found[recipe.name] = recipe
    return found

"""As the bridge: is_lazy() says the mode the bridge was imported in."""
import os

from habana_frameworks import lazy_by_default

_MODE = os.environ.get("PT_HPU_LAZY_MODE")
LAZY = _MODE == "1" if _MODE in ("0", "1") else lazy_by_default()


def is_lazy() -> bool:
    return LAZY

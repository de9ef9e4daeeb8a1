"""As the bridge: is_lazy() says the mode the bridge was imported in."""
import os

LAZY = os.environ.get("PT_HPU_LAZY_MODE", "0") == "1"  # eager unless asked (Gaudi software 1.19+)


def is_lazy() -> bool:
    return LAZY

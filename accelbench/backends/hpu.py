"""Intel Gaudi (HPU) backend, through Intel's PyTorch bridge `habana_frameworks.torch`."""
from __future__ import annotations

import importlib.util
from typing import Optional

from accelbench.backends.base import Backend

INSTALL_HINT = ("install Intel Gaudi software (https://docs.habana.ai/en/latest/Installation_Guide/) "
                "or use its PyTorch container")


def gaudi_software_missing() -> Optional[str]:
    if importlib.util.find_spec("habana_frameworks") is None:
        return f"Intel Gaudi software not found: habana_frameworks.torch is not importable; {INSTALL_HINT}"
    return None


class HpuBackend(Backend):
    """Placeholder until the HPU adapter lands: reports what is missing, never runs."""

    name = "hpu"
    auto_priority = 10
    collectives_backend = "hccl"
    timer_description = "HPU events"

    @classmethod
    def unavailable_reason(cls) -> Optional[str]:
        return gaudi_software_missing() or "the HPU adapter is not implemented yet in this version of accelbench"

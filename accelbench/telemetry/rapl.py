"""CPU package energy from Linux RAPL (powercap sysfs).

`energy_uj` wraps at `max_energy_range_uj`; the reader accumulates deltas so its counter is
monotonic. On recent kernels `energy_uj` is readable by root only: then the reader reports
itself unavailable with that reason, and no figure is produced (never a zero).
"""
from __future__ import annotations

import glob
import os
import re
from typing import Optional

from accelbench.records import DeviceState
from accelbench.telemetry.base import NullTelemetry, Telemetry

POWERCAP_ROOT = "/sys/class/powercap"


def rapl_delta_uj(before: int, after: int, max_range_uj: int) -> int:
    """Energy between two readings of one RAPL domain, allowing for one wrap-around."""
    if after >= before:
        return after - before
    return (max_range_uj - before) + after + 1


def _read_int(path: str) -> int:
    with open(path) as f:
        return int(f.read().strip())


class RaplTelemetry(Telemetry):
    reader = "rapl"

    def __init__(self, domains: list[str]):
        self.domains = domains  # top-level package domains, e.g. .../intel-rapl:0
        self.max_range = [_read_int(os.path.join(d, "max_energy_range_uj")) for d in domains]
        self.last = [_read_int(os.path.join(d, "energy_uj")) for d in domains]
        self.total_uj = 0

    def energy_j(self) -> Optional[float]:
        for i, d in enumerate(self.domains):
            now = _read_int(os.path.join(d, "energy_uj"))
            self.total_uj += rapl_delta_uj(self.last[i], now, self.max_range[i])
            self.last[i] = now
        return self.total_uj / 1e6

    def power_w(self) -> Optional[float]:
        return None  # RAPL has no instantaneous power; energy over a window is the figure

    def state(self) -> DeviceState:
        return DeviceState()

    def availability(self) -> dict[str, str]:
        return {"energy counter": f"yes (RAPL, {len(self.domains)} package domain(s))",
                "power": "no: RAPL gives energy only",
                "clocks/temperature": "no: not read on CPU"}


def open_rapl(root: str = POWERCAP_ROOT) -> Telemetry:
    """A RAPL reader over all package domains, or a NullTelemetry saying why not."""
    domains = sorted(d for d in glob.glob(os.path.join(root, "intel-rapl:*"))
                     if re.search(r"intel-rapl:\d+$", d))
    if not domains:
        return NullTelemetry(f"no RAPL domains under {root}")
    try:
        return RaplTelemetry(domains)
    except PermissionError:
        return NullTelemetry("RAPL energy_uj is not readable by this user (root-only on recent kernels)")
    except (OSError, ValueError) as exc:
        return NullTelemetry(f"RAPL unreadable: {exc}")

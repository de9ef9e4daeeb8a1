"""The telemetry interface every reader implements."""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Callable, Optional

from accelbench.fleet.health import Health
from accelbench.records import DeviceState


def read_or_none(fn: Callable, *args: Any, default: Any = None) -> Any:
    """Call a management-library getter; any error (the libraries raise a zoo of
    "not supported" classes) means the value is unreadable on this device."""
    try:
        return fn(*args)
    except Exception:
        return default


def fact_reader(library: Any, handle: Any, unreadable: list[str], binding: str) -> Callable[..., Any]:
    """`read(what, fn, *args)`: `library.fn(handle, *args)`, or None where the binding lacks the call
    or the device does not support it, each such field named in `unreadable` (a health fact is never
    guessed)."""
    def read(what: str, fn: str, *args: Any) -> Any:
        if not hasattr(library, fn):
            unreadable.append(f"{what}: this {binding} has no {fn}")
            return None
        value = read_or_none(getattr(library, fn), handle, *args)
        if value is None:
            unreadable.append(f"{what}: {fn} is not supported here")
        return value
    return read


class Telemetry(ABC):
    """Reads one device's energy and state. Methods never raise for an unreadable value:
    they return None (or an empty state) and `availability()` says why."""

    reader: str = "none"

    @abstractmethod
    def energy_j(self) -> Optional[float]:
        """Cumulative energy counter in joules (monotonic within a run), or None if the
        device has no counter."""

    @abstractmethod
    def power_w(self) -> Optional[float]:
        """Instantaneous (driver-averaged) board power, or None."""

    @abstractmethod
    def state(self) -> DeviceState:
        """Clocks, temperature, power limit and clock-event (throttle) reasons right now."""

    @abstractmethod
    def availability(self) -> dict[str, str]:
        """What is readable: {"energy counter": "yes" | "no: <reason>", ...}."""

    def fingerprint(self) -> dict[str, Any]:
        """Facts that decide whether two runs may be compared (driver, firmware, power limit,
        clocks, ECC/MIG, topology). Empty where nothing is readable."""
        return {}

    @property
    def energy_source(self) -> Optional[str]:
        """"counter" where a cumulative counter exists, "sampled" where only power can be
        read, None where neither: then no energy window is run."""
        if self.energy_j() is not None:
            return "counter"
        if self.power_w() is not None:
            return "sampled"
        return None

    def health(self) -> Health:
        """The device's health facts (ECC, row remapping, PCIe link, NVLinks, power limit): fleet
        acceptance's. Fields this reader cannot read stay None, and `unreadable` says why."""
        return Health(unreadable=[f"{self.reader}: reads no health facts"])

    def close(self) -> None:
        pass


class NullTelemetry(Telemetry):
    """No telemetry on this device; carries the reason so reports can say why."""

    def __init__(self, reason: str):
        self.reason = reason

    def energy_j(self) -> Optional[float]:
        return None

    def power_w(self) -> Optional[float]:
        return None

    def state(self) -> DeviceState:
        return DeviceState()

    def health(self) -> Health:
        return Health(unreadable=[self.reason])

    def availability(self) -> dict[str, str]:
        return {"energy counter": f"no: {self.reason}", "power": f"no: {self.reason}",
                "clocks/temperature": f"no: {self.reason}"}

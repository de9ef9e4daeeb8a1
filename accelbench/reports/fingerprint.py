"""What makes two runs' figures comparable: the same device, method version (docs/method.md), timing regime, driver, power limit, clocks
and library versions. Used by the report (to warn) and by `bench compare` (to warn, or refuse with --strict)."""
from __future__ import annotations

from accelbench.records import RunInfo

# Facts of the device's state that move its figures (power limit, clocks) or its code path (driver,
# ECC, MIG). The commit is not here: comparing commits is what compare is for.
DEVICE_FACTS = ("driver", "power_limit_w", "sm_clock_max_mhz", "mem_clock_max_mhz", "ecc_current", "mig_current")


def differences(a: RunInfo, b: RunInfo, same_device_assumed: bool = False) -> list[str]:
    """Every fact in which two runs differ that decides their figures, as 'what: a vs b'."""
    pairs = [] if same_device_assumed else [
        ("device", a.device_name, b.device_name), ("device count", a.device_count, b.device_count),
        ("backend", a.backend, b.backend)]
    pairs += [("method version", a.method_version, b.method_version), ("regime", a.regime, b.regime), ("cache flushed before every call", a.flush_always, b.flush_always)]
    pairs += [(key, a.fingerprint.get(key), b.fingerprint.get(key)) for key in DEVICE_FACTS]
    pairs += [(key, a.versions.get(key), b.versions.get(key)) for key in sorted(set(a.versions) | set(b.versions))]
    return [f"{what}: {x} vs {y}" for what, x, y in pairs if x is not None and y is not None and x != y]

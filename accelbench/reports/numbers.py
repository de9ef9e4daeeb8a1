"""Numbers formatted for people: three significant digits, times in ns/µs/ms/s, percentages with
one decimal, bytes in KiB/MiB/GiB; never scientific notation."""
from __future__ import annotations

import math
import re
from typing import Any, Optional

DASH = "—"


def significant(value: float, digits: int = 3) -> str:
    """`value` rounded to `digits` significant digits, thousands separated: 7307.4 -> 7,310."""
    if value == 0:
        return "0"
    exponent = math.floor(math.log10(abs(value)))
    decimals = max(0, digits - 1 - exponent)
    return f"{round(value, digits - 1 - exponent):,.{decimals}f}"


def seconds(value: float) -> str:
    for limit, scale, unit in ((1e-6, 1e9, "ns"), (1e-3, 1e6, "µs"), (1.0, 1e3, "ms")):
        if abs(value) < limit:
            return f"{significant(value * scale)} {unit}"
    return f"{significant(value)} s"


def binary_bytes(value: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{significant(value)} {unit}"
        value /= 1024
    return DASH  # unreachable


def quantity(value: Any, unit: Optional[str] = None) -> str:
    """One figure with its unit, as a person reads it."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return DASH
    if isinstance(value, bool):
        return "yes" if value else ""
    if not isinstance(value, (int, float)):
        return str(value)
    if unit == "s":
        return seconds(float(value))
    if unit == "%":
        return f"{value:.1f} %"
    if unit == "B":
        return binary_bytes(float(value))
    text = significant(float(value)) if isinstance(value, float) else f"{value:,}"
    return f"{text} {unit}" if unit else text


def plain(value: Any) -> str:
    """A parameter or a figure without its unit (the column header carries it)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return DASH
    if isinstance(value, bool):
        return "yes" if value else ""
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() and abs(value) < 1e15 else significant(value)
    return str(value)


def ratio(value: Optional[float]) -> str:
    """Two decimals (1.50×), or three significant digits below 0.1 (0.00136×): never a bare 0.00×."""
    if value is None or math.isnan(value):
        return DASH
    return f"{value:.2f}×" if abs(value) >= 0.1 or value == 0 else f"{significant(value)}×"


_SIZE = {"": 1, "b": 1, "kb": 1e3, "mb": 1e6, "gb": 1e9, "tb": 1e12, "kib": 2**10, "mib": 2**20, "gib": 2**30,
         "tib": 2**40}
_TOKEN = re.compile(r"(\d+(?:\.\d+)?)(?:(kib|mib|gib|tib|kb|mb|gb|tb|b)(?![a-z]))?|(\D+)", re.IGNORECASE)


def natural_key(text: str) -> tuple:
    """Sort key for case ids as people order them: numbers by value and sizes by bytes, so that
    16KiB < 128KiB < 1MiB and m256 < m1024 ("bf16" stays a word)."""
    key = []
    for number, unit, other in _TOKEN.findall(str(text)):
        if number:
            key.append((0, float(number) * _SIZE[unit.lower()], ""))
        else:
            key.append((1, 0.0, other))
    return tuple(key)

"""Intel Gaudi telemetry: HLML (`habana-pyhlml`, module `pyhlml`), else `hl-smi` CSV.

Written to the documented APIs and tested with a stand-in module and hl-smi output written to
the documented CSV format; not yet run on Gaudi hardware.
- HLML: hlmlDeviceGetTotalEnergyConsumption (mJ since driver load), hlmlDeviceGetPowerUsage
  (mW), hlmlDeviceGetClockInfo / hlmlDeviceGetMaxClockInfo (MHz, SOC clock), hlmlDeviceGetTemperature
  (C, on-chip sensor), hlmlDeviceGetPowerManagementLimit (the enforced limit, mW; habana-pyhlml
  1.24) with hlmlDeviceGetPowerManagementDefaultLimit as the fallback (the default, which an
  administrator may have changed), hlmlDeviceGetCurrentClocksThrottleReasons (bit mask). The
  handle is the one whose hlmlDeviceGetModuleID is the card's module ID: HLML's indices are not
  module IDs.
- HLML health facts (fleet acceptance, `health()`): hlmlDeviceGetTotalECCErrors(handle, error type
  0 corrected / 1 uncorrected, counter 0 volatile / 1 aggregate; an HLML may support one type only),
  hlmlDeviceGetReplacedRowsCount(handle, cause 0 multiple single-bit / 1 double-bit ECC errors) and
  hlmlDeviceGetReplacedRowsPendingStatus, hlmlDeviceGetCurrPCIELinkGeneration / ...Width now against
  the capabilities hlmlDeviceGetPCIInfo reports (`caps.link_speed`, e.g. "32.0GT/s"; `caps.link_width`,
  e.g. "x16"), the enforced and default power limits, hlmlDeviceGetPersistenceMode. Gaudi's scale-out
  links are RoCE ports, not NVLinks: `nvlinks_active` stays unset.
- hl-smi: `hl-smi --query-aip=<fields> --format=csv` prints a header row of field names with
  units in brackets and one row per device; it has no energy counter, so energy is sampled.
  Fields beyond index and power.draw are probed one by one before use and dropped where this
  hl-smi does not know them.
"""
from __future__ import annotations

import csv
import io
import re
import shutil
import subprocess
from typing import Any, Callable, Optional

from accelbench.fleet.health import Health
from accelbench.records import DeviceState
from accelbench.telemetry.base import NullTelemetry, Telemetry, fact_reader
from accelbench.telemetry.base import read_or_none as _try

# hlml.h: HLML_CLOCKS_THROTTLE_REASON_POWER (bit 0), HLML_CLOCKS_THROTTLE_REASON_THERMAL (bit 1).
HLML_THROTTLE_REASONS = {0x1: "sw_power_cap", 0x2: "sw_thermal_slowdown"}
HLML_CLOCK_SOC = 0
HLML_TEMP_ON_AIP = 0

HL_SMI_REQUIRED = ("index", "power.draw")
HL_SMI_OPTIONAL = ("module_id", "name", "driver_version", "temperature.aip", "clocks.current.soc",
                   "clocks.max.soc", "power.limit")


class HlmlTelemetry(Telemetry):
    reader = "hlml"

    def __init__(self, hlml: Any, handle: Any):
        self.hlml = hlml
        self.handle = handle

    def energy_j(self) -> Optional[float]:
        mj = _try(self.hlml.hlmlDeviceGetTotalEnergyConsumption, self.handle)
        return None if mj is None else mj / 1000.0

    def power_w(self) -> Optional[float]:
        mw = _try(self.hlml.hlmlDeviceGetPowerUsage, self.handle)
        return None if mw is None else mw / 1000.0

    def power_limit_mw(self) -> Optional[float]:
        """The enforced limit where this HLML has the call, else the default limit."""
        for name in ("hlmlDeviceGetPowerManagementLimit", "hlmlDeviceGetPowerManagementDefaultLimit"):
            fn = getattr(self.hlml, name, None)
            value = _try(fn, self.handle) if fn is not None else None
            if value is not None:
                return value
        return None

    def state(self) -> DeviceState:
        h, m = self.hlml, self.handle
        limit = self.power_limit_mw()
        mask = _try(h.hlmlDeviceGetCurrentClocksThrottleReasons, m)
        return DeviceState(
            sm_clock_mhz=_try(h.hlmlDeviceGetClockInfo, m, HLML_CLOCK_SOC),
            sm_clock_max_mhz=_try(h.hlmlDeviceGetMaxClockInfo, m, HLML_CLOCK_SOC),
            temperature_c=_try(h.hlmlDeviceGetTemperature, m, HLML_TEMP_ON_AIP),
            power_w=self.power_w(),
            power_limit_w=None if limit is None else limit / 1000.0,
            throttle_reasons=[] if not mask else
            [name for bit, name in HLML_THROTTLE_REASONS.items() if mask & bit]
            + ([f"hlml_reason_{mask:#x}"] if mask & ~0x3 else []),
        )

    def health(self) -> Health:
        """HLML's health facts; each unreadable one left unset and named (an HLML may not support a call)."""
        h, m = self.hlml, self.handle
        unreadable: list[str] = []
        read = fact_reader(h, m, unreadable, "pyhlml")

        def ecc(kind: int, counter: int) -> Optional[int]:
            name = ("corrected", "uncorrected")[kind] + " ECC errors"
            return read(name, "hlmlDeviceGetTotalECCErrors", kind, counter)
        corrected, uncorrected, volatile, aggregate = 0, 1, 0, 1
        single_bit, double_bit = 0, 1  # row replacement causes
        pending = read("row replacement", "hlmlDeviceGetReplacedRowsPendingStatus")
        limit, default = self.power_limit_mw(), _try(h.hlmlDeviceGetPowerManagementDefaultLimit, m)
        caps = getattr(read("PCIe link capability", "hlmlDeviceGetPCIInfo"), "caps", None)
        persistence = _try(h.hlmlDeviceGetPersistenceMode, m) if hasattr(h, "hlmlDeviceGetPersistenceMode") else None
        return Health(
            ecc_uncorrected_volatile=ecc(uncorrected, volatile), ecc_uncorrected_aggregate=ecc(uncorrected, aggregate),
            ecc_corrected_volatile=ecc(corrected, volatile), ecc_corrected_aggregate=ecc(corrected, aggregate),
            rows_remapped_corrected=read("row replacement", "hlmlDeviceGetReplacedRowsCount", single_bit),
            rows_remapped_uncorrected=read("row replacement", "hlmlDeviceGetReplacedRowsCount", double_bit),
            row_remap_pending=None if pending is None else bool(pending),
            pcie_gen=read("PCIe link", "hlmlDeviceGetCurrPCIELinkGeneration"),
            pcie_gen_max=pcie_generation(_text(getattr(caps, "link_speed", None))),
            pcie_width=read("PCIe link", "hlmlDeviceGetCurrPCIELinkWidth"),
            pcie_width_max=pcie_width(_text(getattr(caps, "link_width", None))),
            power_limit_w=None if limit is None else limit / 1000.0,
            power_limit_default_w=None if default is None else default / 1000.0,
            temperature_c=_try(h.hlmlDeviceGetTemperature, m, HLML_TEMP_ON_AIP),
            persistence_mode=None if persistence is None else bool(persistence),
            unreadable=sorted(set(unreadable)))

    def availability(self) -> dict[str, str]:
        return {
            "energy counter": "yes (hlmlDeviceGetTotalEnergyConsumption)" if self.energy_j() is not None
            else "no: HLML energy counter unreadable (power will be sampled)",
            "power": "yes" if self.power_w() is not None else "no",
            "clocks/temperature": "yes",
        }

    def fingerprint(self) -> dict[str, Any]:
        h, m = self.hlml, self.handle
        limit = self.power_limit_mw()
        default = _try(h.hlmlDeviceGetPowerManagementDefaultLimit, m)
        ecc = _try(h.hlmlDeviceGetECCMode, m)
        return {
            "power_limit_w": None if limit is None else limit / 1000.0,
            "default_power_limit_w": None if default is None else default / 1000.0,
            "module_id": _try(h.hlmlDeviceGetModuleID, m),
            "soc_clock_max_mhz": _try(h.hlmlDeviceGetMaxClockInfo, m, HLML_CLOCK_SOC),
            "ecc_current": None if ecc is None else getattr(getattr(ecc, "current", None), "value", None),
            "hlml_device_count": _try(h.hlmlDeviceGetCount),
        }


# PCIe transfer rate per lane (GT/s) of each generation.
PCIE_GT_PER_GEN = {2.5: 1, 5.0: 2, 8.0: 3, 16.0: 4, 32.0: 5, 64.0: 6}


def _text(raw: Any) -> Optional[str]:
    if raw is None:
        return None
    return raw.decode(errors="replace") if isinstance(raw, bytes) else str(raw)


def pcie_generation(link_speed: Optional[str]) -> Optional[int]:
    """"32.0GT/s" (HLML's PCI capability) -> 5; None where it does not read as a known rate."""
    m = re.search(r"([\d.]+)\s*GT/s", link_speed or "")
    return PCIE_GT_PER_GEN.get(float(m.group(1))) if m else None


def pcie_width(link_width: Optional[str]) -> Optional[int]:
    """"x16" or "16" -> 16."""
    m = re.fullmatch(r"\s*x?(\d+)\s*", link_width or "")
    return int(m.group(1)) if m else None


def parse_hl_smi_csv(text: str) -> list[dict[str, Optional[float | str]]]:
    """Rows of `hl-smi --query-aip=... --format=csv` as dicts keyed by field name (units
    stripped); numeric fields become floats, "N/A" becomes None."""
    reader = csv.reader(io.StringIO(text.strip()), skipinitialspace=True)
    rows = [r for r in reader if r]
    if not rows:
        return []
    keys = [re.sub(r"\s*\[.*?\]\s*$", "", h.strip()) for h in rows[0]]
    out = []
    for row in rows[1:]:
        if len(row) != len(keys):
            raise ValueError(f"hl-smi row has {len(row)} fields, header has {len(keys)}: {row}")
        out.append({k: _hl_value(v) for k, v in zip(keys, row)})
    return out


def _hl_value(raw: str) -> Optional[float | str]:
    raw = raw.strip()
    if raw in ("", "N/A", "[N/A]"):
        return None
    m = re.fullmatch(r"(-?[\d.]+)\s*(W|C|MHz|MiB|%|mW)?", raw)
    return float(m.group(1)) if m else raw


class HlSmiTelemetry(Telemetry):
    """Fallback when HLML's Python binding is missing; `run` is injectable for tests."""

    reader = "hl-smi"

    def __init__(self, module_id: int = 0, run: Optional[Callable[[list[str]], str]] = None):
        self.module_id = module_id
        self.run = run or (lambda argv: subprocess.run(argv, capture_output=True, text=True,
                                                       timeout=10, check=True).stdout)
        self.fields = HL_SMI_REQUIRED + tuple(f for f in HL_SMI_OPTIONAL if self._knows(f))

    def _query(self, fields: tuple[str, ...]) -> list[dict]:
        return parse_hl_smi_csv(self.run(["hl-smi", f"--query-aip={','.join(fields)}", "--format=csv"]))

    def _knows(self, field: str) -> bool:
        rows = _try(self._query, HL_SMI_REQUIRED + (field,))
        return bool(rows) and field in rows[0]

    def _row(self) -> dict:
        rows = self._query(self.fields)
        key = "module_id" if "module_id" in self.fields else "index"  # without module IDs, index it is
        for row in rows:
            if row.get(key) is not None and int(row[key]) == self.module_id:
                return row
        raise ValueError(f"hl-smi lists no device with {key} {self.module_id}")

    def energy_j(self) -> Optional[float]:
        return None  # hl-smi has no energy counter: power is sampled instead

    def power_w(self) -> Optional[float]:
        row = _try(self._row)
        return None if row is None else row.get("power.draw")

    def state(self) -> DeviceState:
        row = _try(self._row) or {}
        return DeviceState(
            sm_clock_mhz=row.get("clocks.current.soc"), sm_clock_max_mhz=row.get("clocks.max.soc"),
            temperature_c=row.get("temperature.aip"), power_w=row.get("power.draw"),
            power_limit_w=row.get("power.limit"))

    def availability(self) -> dict[str, str]:
        return {"energy counter": "no: hl-smi has none (power sampled every ~100 ms instead)",
                "power": "yes (hl-smi power.draw)" if self.power_w() is not None else "no: hl-smi gave no power.draw",
                "clocks/temperature": "yes (hl-smi)",
                "hl-smi fields": ", ".join(self.fields)}

    def fingerprint(self) -> dict[str, Any]:
        row = _try(self._row) or {}
        return {"driver": row.get("driver_version"), "power_limit_w": row.get("power.limit"),
                "module_id": row.get("module_id")}


UNKNOWN_CARD = ("which card this process's Gaudi bridge took is unknown (several cards, and neither HLS_MODULE_ID "
                "nor a one-module HABANA_VISIBLE_MODULES says): pass --device N or set HLS_MODULE_ID")


def hlml_handle_for_module(hlml: Any, module_id: Optional[int]) -> Any:
    """The HLML handle of the card with this module ID (HLML's own indices are not module IDs);
    by index where this HLML has no module-ID call; with no module ID, the only card, if one."""
    if module_id is None:
        if hlml.hlmlDeviceGetCount() == 1:
            return hlml.hlmlDeviceGetHandleByIndex(0)
        raise LookupError(UNKNOWN_CARD)
    if hasattr(hlml, "hlmlDeviceGetModuleID"):
        for index in range(hlml.hlmlDeviceGetCount()):
            handle = hlml.hlmlDeviceGetHandleByIndex(index)
            if _try(hlml.hlmlDeviceGetModuleID, handle) == module_id:
                return handle
        raise LookupError(f"HLML lists no device with module ID {module_id}")
    return hlml.hlmlDeviceGetHandleByIndex(module_id)


def open_gaudi_telemetry(module_id: Optional[int]) -> Telemetry:
    """The telemetry of the card with `module_id` (None: the bridge did not say which card; then
    only a machine with a single card can be read)."""
    try:
        import pyhlml
        pyhlml.hlmlInit()
    except ImportError:
        missing = "habana-pyhlml is not installed (pip install 'accelbench[hpu]')"
    except Exception as exc:
        missing = f"HLML did not initialise: {exc}"
    else:
        try:
            return HlmlTelemetry(pyhlml, hlml_handle_for_module(pyhlml, module_id))
        except LookupError as exc:  # the card is unknown or not listed: never read another one
            return NullTelemetry(str(exc))
        except Exception as exc:
            missing = f"HLML could not open the card: {exc}"
    if shutil.which("hl-smi"):
        if module_id is None:
            return NullTelemetry(f"{missing}; {UNKNOWN_CARD}")
        return HlSmiTelemetry(module_id)
    return NullTelemetry(f"{missing}; hl-smi not on PATH either")

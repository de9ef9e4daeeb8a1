"""NVIDIA telemetry through NVML (nvidia-ml-py, imported as `pynvml`).

Energy: nvmlDeviceGetTotalEnergyConsumption, millijoules since the driver loaded (Volta and
later). Where a device lacks it, `energy_j` is None and the harness integrates sampled power.
"""
from __future__ import annotations

from typing import Any, Optional

from accelbench.fleet.health import Health
from accelbench.records import DeviceState
from accelbench.telemetry.base import NullTelemetry, Telemetry, fact_reader
from accelbench.telemetry.base import read_or_none as _try

# nvmlClocksEventReasons bit values (nvml.h); names follow the header's, lower-cased.
CLOCK_EVENT_REASONS = {
    0x1: "gpu_idle",
    0x2: "applications_clocks",
    0x4: "sw_power_cap",
    0x8: "hw_slowdown",
    0x10: "sync_boost",
    0x20: "sw_thermal_slowdown",
    0x40: "hw_thermal_slowdown",
    0x80: "hw_power_brake",
    0x100: "display_clocks",
}


NVML_FI_DEV_POWER_INSTANT = 186  # nvml.h field id


def decode_reasons(mask: int) -> list[str]:
    return [name for bit, name in CLOCK_EVENT_REASONS.items() if mask & bit]


class NvmlTelemetry(Telemetry):
    reader = "nvml"

    def __init__(self, nvml: Any, handle: Any):
        self.nvml = nvml
        self.handle = handle

    def energy_j(self) -> Optional[float]:
        mj = _try(self.nvml.nvmlDeviceGetTotalEnergyConsumption, self.handle)
        return None if mj is None else mj / 1000.0

    def power_w(self) -> Optional[float]:
        """Instantaneous board power. nvmlDeviceGetPowerUsage is a trailing 1 s average on Ampere
        (but GA100) and later, which lags a ramp from idle by about a second; the
        NVML_FI_DEV_POWER_INSTANT field does not, so it is preferred where the driver has it."""
        mw = self._instant_mw()
        if mw is None:
            mw = _try(self.nvml.nvmlDeviceGetPowerUsage, self.handle)
        return None if mw is None else mw / 1000.0

    def _instant_mw(self) -> Optional[int]:
        if not hasattr(self.nvml, "nvmlDeviceGetFieldValues"):
            return None
        values = _try(self.nvml.nvmlDeviceGetFieldValues, self.handle, [NVML_FI_DEV_POWER_INSTANT])
        if not values or values[0].nvmlReturn != 0:
            return None
        return values[0].value.uiVal

    def _reasons_mask(self) -> Optional[int]:
        for name in ("nvmlDeviceGetCurrentClocksEventReasons", "nvmlDeviceGetCurrentClocksThrottleReasons"):
            fn = getattr(self.nvml, name, None)
            if fn is not None:
                mask = _try(fn, self.handle)
                if mask is not None:
                    return mask
        return None

    def state(self) -> DeviceState:
        n, h = self.nvml, self.handle
        limit_mw = _try(n.nvmlDeviceGetEnforcedPowerLimit, h)
        mask = self._reasons_mask()
        return DeviceState(
            sm_clock_mhz=_try(n.nvmlDeviceGetClockInfo, h, n.NVML_CLOCK_SM),
            sm_clock_max_mhz=_try(n.nvmlDeviceGetMaxClockInfo, h, n.NVML_CLOCK_SM),
            mem_clock_mhz=_try(n.nvmlDeviceGetClockInfo, h, n.NVML_CLOCK_MEM),
            temperature_c=_try(n.nvmlDeviceGetTemperature, h, n.NVML_TEMPERATURE_GPU),
            power_w=self.power_w(),
            power_limit_w=None if limit_mw is None else limit_mw / 1000.0,
            throttle_reasons=decode_reasons(mask) if mask is not None else [],
        )

    def availability(self) -> dict[str, str]:
        return {
            "energy counter": "yes (nvmlDeviceGetTotalEnergyConsumption)" if self.energy_j() is not None
            else "no: not supported on this device (power will be sampled)",
            "power": ("yes (NVML_FI_DEV_POWER_INSTANT)" if self._instant_mw() is not None
                      else "yes (nvmlDeviceGetPowerUsage, a 1 s trailing average)" if self.power_w() is not None
                      else "no: nvmlDeviceGetPowerUsage not supported"),
            "clocks/temperature": "yes",
            "throttle reasons": "yes" if self._reasons_mask() is not None else "no",
        }

    def fingerprint(self) -> dict[str, Any]:
        n, h = self.nvml, self.handle
        ecc = _try(n.nvmlDeviceGetEccMode, h)
        mig = _try(n.nvmlDeviceGetMigMode, h)
        limit = _try(n.nvmlDeviceGetEnforcedPowerLimit, h)
        default_limit = _try(n.nvmlDeviceGetPowerManagementDefaultLimit, h)
        count = _try(n.nvmlDeviceGetCount, default=0)
        return {
            "driver": _decode(_try(n.nvmlSystemGetDriverVersion)),
            "vbios": _decode(_try(n.nvmlDeviceGetVbiosVersion, h)),
            "power_limit_w": None if limit is None else limit / 1000.0,
            "default_power_limit_w": None if default_limit is None else default_limit / 1000.0,
            "sm_clock_max_mhz": _try(n.nvmlDeviceGetMaxClockInfo, h, n.NVML_CLOCK_SM),
            "mem_clock_max_mhz": _try(n.nvmlDeviceGetMaxClockInfo, h, n.NVML_CLOCK_MEM),
            "ecc_current": None if ecc is None else int(ecc[0]),
            "mig_current": None if mig is None else int(mig[0]),
            "persistence_mode": _try(n.nvmlDeviceGetPersistenceMode, h),
            "nvml_device_count": count,
            "nvlinks_active": self._active_nvlinks(),
            "pcie_link": self._pcie_link(),
            "topology": self._topology(count),
        }

    def health(self) -> Health:
        """NVML's health facts. Read the PCIe link under load: an idle GPU drops its link generation."""
        n, h = self.nvml, self.handle
        unreadable: list[str] = []
        read = fact_reader(n, h, unreadable, "nvidia-ml-py")

        def ecc(kind: int, counter: int) -> Optional[int]:
            return read("ECC errors", "nvmlDeviceGetTotalEccErrors", kind, counter)
        uncorrected, corrected = 1, 0  # nvmlMemoryErrorType_t
        volatile, aggregate = 0, 1  # nvmlEccCounterType_t
        rows = read("row remapping", "nvmlDeviceGetRemappedRows")
        limit = read("power limit", "nvmlDeviceGetEnforcedPowerLimit")
        default = read("default power limit", "nvmlDeviceGetPowerManagementDefaultLimit")
        mig = _try(n.nvmlDeviceGetMigMode, h) if hasattr(n, "nvmlDeviceGetMigMode") else None
        persistence = _try(n.nvmlDeviceGetPersistenceMode, h)
        return Health(
            ecc_uncorrected_volatile=ecc(uncorrected, volatile), ecc_uncorrected_aggregate=ecc(uncorrected, aggregate),
            ecc_corrected_volatile=ecc(corrected, volatile), ecc_corrected_aggregate=ecc(corrected, aggregate),
            rows_remapped_corrected=None if rows is None else int(rows[0]),
            rows_remapped_uncorrected=None if rows is None else int(rows[1]),
            row_remap_pending=None if rows is None else bool(rows[2]),
            row_remap_failed=None if rows is None else bool(rows[3]),
            pcie_gen=read("PCIe link", "nvmlDeviceGetCurrPcieLinkGeneration"),
            pcie_gen_max=read("PCIe link", "nvmlDeviceGetMaxPcieLinkGeneration"),
            pcie_width=read("PCIe link", "nvmlDeviceGetCurrPcieLinkWidth"),
            pcie_width_max=read("PCIe link", "nvmlDeviceGetMaxPcieLinkWidth"),
            nvlinks_active=self._active_nvlinks(),
            power_limit_w=None if limit is None else limit / 1000.0,
            power_limit_default_w=None if default is None else default / 1000.0,
            temperature_c=_try(n.nvmlDeviceGetTemperature, h, 0),  # NVML_TEMPERATURE_GPU
            driver=_decode(_try(n.nvmlSystemGetDriverVersion)), vbios=_decode(_try(n.nvmlDeviceGetVbiosVersion, h)),
            persistence_mode=None if persistence is None else bool(persistence),
            mig_mode=None if mig is None else bool(mig[0]), unreadable=sorted(set(unreadable)))

    def _active_nvlinks(self) -> Optional[int]:
        n = self.nvml
        if not hasattr(n, "nvmlDeviceGetNvLinkState"):
            return None
        links = [_try(n.nvmlDeviceGetNvLinkState, self.handle, i) for i in range(18)]
        return sum(1 for s in links if s == 1)

    def _pcie_link(self) -> Optional[str]:
        n, h = self.nvml, self.handle
        gen = _try(n.nvmlDeviceGetCurrPcieLinkGeneration, h)
        width = _try(n.nvmlDeviceGetCurrPcieLinkWidth, h)
        return None if gen is None or width is None else f"Gen{gen} x{width}"

    def _topology(self, count: int) -> Optional[str]:
        """One word per device pair with device 0, e.g. "0-1:NVLINK/SINGLE"; None for one device."""
        n = self.nvml
        if count < 2 or not hasattr(n, "nvmlDeviceGetTopologyCommonAncestor"):
            return None
        names = {0: "INTERNAL", 10: "SINGLE", 20: "MULTIPLE", 30: "HOSTBRIDGE", 40: "NODE", 50: "SYSTEM"}
        parts = []
        first = _try(n.nvmlDeviceGetHandleByIndex, 0)
        for j in range(1, count):
            other = _try(n.nvmlDeviceGetHandleByIndex, j)
            level = _try(n.nvmlDeviceGetTopologyCommonAncestor, first, other)
            parts.append(f"0-{j}:{names.get(level, level)}")
        return " ".join(parts)


def _decode(value: Any) -> Any:
    return value.decode() if isinstance(value, bytes) else value


def open_nvml(device_index: int = 0, pci_bus_id: Optional[str] = None) -> Telemetry:
    """An NVML reader for one GPU, or a NullTelemetry with the reason it is unavailable."""
    try:
        import pynvml  # provided by nvidia-ml-py
    except ImportError:
        return NullTelemetry("nvidia-ml-py is not installed (pip install 'accelbench[cuda]')")
    try:
        pynvml.nvmlInit()
    except Exception as exc:
        return NullTelemetry(f"NVML did not initialise: {exc}")
    handle = None
    if pci_bus_id:  # CUDA_VISIBLE_DEVICES may renumber devices; the bus id does not lie
        handle = _try(pynvml.nvmlDeviceGetHandleByPciBusId, pci_bus_id)
    if handle is None:
        handle = _try(pynvml.nvmlDeviceGetHandleByIndex, device_index)
    if handle is None:
        return NullTelemetry(f"NVML has no device {device_index}")
    return NvmlTelemetry(pynvml, handle)

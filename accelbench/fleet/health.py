"""A device's health facts, as its management library reports them (NVML, HLML), and the rules that
fail or warn a device on them alone (docs/fleet.md). Every field is None where it could not be read;
a rule on an unreadable field says nothing rather than passing the device on a guess."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional


@dataclass
class Health:
    ecc_uncorrected_volatile: Optional[int] = None  # since the driver loaded
    ecc_uncorrected_aggregate: Optional[int] = None  # over the card's life
    ecc_corrected_volatile: Optional[int] = None
    ecc_corrected_aggregate: Optional[int] = None
    rows_remapped_corrected: Optional[int] = None
    rows_remapped_uncorrected: Optional[int] = None
    row_remap_pending: Optional[bool] = None  # takes effect at the next reset: the card runs without it until then
    row_remap_failed: Optional[bool] = None
    pcie_gen: Optional[int] = None  # now (read under load: an idle link drops its generation to save power)
    pcie_gen_max: Optional[int] = None  # what the card and its slot can do
    pcie_width: Optional[int] = None
    pcie_width_max: Optional[int] = None
    nvlinks_active: Optional[int] = None
    power_limit_w: Optional[float] = None
    power_limit_default_w: Optional[float] = None
    temperature_c: Optional[float] = None
    driver: Optional[str] = None
    vbios: Optional[str] = None
    persistence_mode: Optional[bool] = None
    mig_mode: Optional[bool] = None
    unreadable: list[str] = field(default_factory=list)  # what could not be read, and why


@dataclass(frozen=True)
class Finding:
    severity: str  # "fail" or "warn"
    reason: str  # one line


def health_findings(health: Health, peers_nvlinks: Optional[int] = None) -> list[Finding]:
    """What the device's own health facts say, worst first. `peers_nvlinks`: the most active NVLinks
    any device of its node has (a card with fewer lost a link)."""
    out: list[Finding] = []
    uncorrected = [n for n in (health.ecc_uncorrected_volatile, health.ecc_uncorrected_aggregate) if n]
    if uncorrected:
        out.append(Finding("fail", f"{max(uncorrected)} uncorrected ECC error(s) (volatile "
                                   f"{health.ecc_uncorrected_volatile}, aggregate {health.ecc_uncorrected_aggregate})"))
    if health.row_remap_failed:
        out.append(Finding("fail", "a row remapping failed: the card has no spare rows left for a bad one"))
    if health.row_remap_pending:
        out.append(Finding("fail", "a row remapping is pending: it takes effect at the next GPU reset"))
    if health.pcie_gen is not None and health.pcie_gen_max is not None and health.pcie_gen < health.pcie_gen_max:
        out.append(Finding("fail", f"PCIe link at Gen{health.pcie_gen}, below the Gen{health.pcie_gen_max} it can do "
                                   "(read under load)"))
    if health.pcie_width is not None and health.pcie_width_max is not None and health.pcie_width < health.pcie_width_max:
        out.append(Finding("fail", f"PCIe link x{health.pcie_width}, below its x{health.pcie_width_max}"))
    if health.nvlinks_active is not None and peers_nvlinks is not None and health.nvlinks_active < peers_nvlinks:
        out.append(Finding("fail", f"{health.nvlinks_active} NVLinks active where its peers have {peers_nvlinks}"))
    if (health.power_limit_w is not None and health.power_limit_default_w is not None
            and health.power_limit_w < health.power_limit_default_w - 0.5):
        out.append(Finding("warn", f"power limit {health.power_limit_w:.0f} W, below its default "
                                   f"{health.power_limit_default_w:.0f} W"))
    if health.ecc_corrected_volatile:
        out.append(Finding("warn", f"{health.ecc_corrected_volatile} corrected ECC error(s) since the driver loaded"))
    return sorted(out, key=lambda f: f.severity != "fail")

"""The procurement view: performance per dollar and per watt, and the cost of a million tokens or of
a PFLOP of work, per device and kind of work a benchmark declares priced (an overview row's
`priced`), from measured figures and the prices the reader gives. Every assumption is returned
beside the figures.

Cost of one device-hour = its price per hour (rented), or its purchase price spread over the given
years of round-the-clock use (owned); plus energy: the power measured during the case × PUE ×
the energy price. The work rate is the same case's measured throughput."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import pandas as pd

from accelbench.reports.overview import declared_rows, device_named, row_cells
from accelbench.store import LoadedRun
from accelbench.view import OverviewRow, recipe_costs

HOURS_PER_YEAR = 24 * 365


@dataclass(frozen=True)
class Prices:
    per_hour: dict[str, float] = field(default_factory=dict)  # device -> USD per hour (rented)
    capex: dict[str, float] = field(default_factory=dict)  # device -> USD (owned)
    years: float = 3.0  # depreciation period of capex
    energy_usd_per_kwh: Optional[float] = None  # None: not given, energy left out (and said so)
    pue: float = 1.0

    @property
    def given(self) -> bool:
        return bool(self.per_hour or self.capex)

    def device_usd_per_hour(self, device: str) -> Optional[tuple[float, str]]:
        if device in self.per_hour:
            return self.per_hour[device], f"${self.per_hour[device]:,.2f}/h rented"
        if device in self.capex:
            hourly = self.capex[device] / (self.years * HOURS_PER_YEAR)
            return hourly, (f"${self.capex[device]:,.0f} over {self.years:g} years of round-the-clock use "
                            f"= ${hourly:,.3f}/h")
        return None


@dataclass
class CostRow:
    device: str
    work: str  # what the work is called, as its benchmark declares it
    case_id: str
    rate: float  # tokens/s or TFLOP/s
    rate_unit: str
    power_w: Optional[float]
    device_usd_per_hour: float
    energy_usd_per_hour: Optional[float]
    perf_per_dollar: float  # tokens per USD, or TFLOP per USD
    perf_per_dollar_unit: str
    perf_per_watt: Optional[float]
    perf_per_watt_unit: str
    cost: float  # USD per million tokens, or per PFLOP
    cost_unit: str
    assumptions: list[str]

    @property
    def usd_per_hour(self) -> float:
        return self.device_usd_per_hour + (self.energy_usd_per_hour or 0.0)


def cost_row(device: str, rate: float, power_w: Optional[float], prices: Prices, work: tuple[str, str],
             case_id: str = "") -> Optional[CostRow]:
    """The arithmetic, on one device's measured rate (tokens/s or TFLOP/s) and power (W); `work` is
    (what the work is called, "tokens" or "TFLOP")."""
    per_token = work[1] == "tokens"  # else TFLOP
    price = prices.device_usd_per_hour(device)
    if price is None or rate <= 0:
        return None
    hourly, price_note = price
    energy = None
    assumptions = [price_note]
    if prices.energy_usd_per_kwh is None:
        assumptions.append("no --energy-price given: energy cost left out")
    elif power_w is not None:
        energy = power_w / 1000 * prices.pue * prices.energy_usd_per_kwh
        assumptions.append(f"{power_w:,.0f} W measured × PUE {prices.pue:g} × ${prices.energy_usd_per_kwh:g}/kWh "
                           f"= ${energy:,.3f}/h")
    else:
        assumptions.append("no power measured for this case: energy cost left out")
    total = hourly + (energy or 0.0)
    per_hour_work = rate * 3600  # tokens, or TFLOP
    if per_token:
        cost, cost_unit, per_dollar_unit, per_watt_unit = total / per_hour_work * 1e6, "USD per million tokens", \
            "tokens per USD", "tokens/J"
    else:  # 1 PFLOP = 1000 TFLOP
        cost, cost_unit, per_dollar_unit, per_watt_unit = total / per_hour_work * 1000, "USD per PFLOP", \
            "TFLOP per USD", "TFLOP/s per W"
    assumptions.append(f"{rate:,.4g} {'tokens/s' if per_token else 'TFLOP/s'} sustained, every hour at full load")
    return CostRow(device, work[0], case_id, rate,
                   "tokens/s" if per_token else "TFLOP/s", power_w, hourly, energy, per_hour_work / total, per_dollar_unit,
                   rate / power_w if power_w else None, per_watt_unit, cost, cost_unit, assumptions)


def procurement(frame: pd.DataFrame, runs: list[LoadedRun], devices: list[str], prices: Prices,
                baseline: Optional[str] = None) -> list[CostRow]:
    """A row per priced device and kind of work it ran (the overview rows a benchmark declares
    `priced`), on the same work for every device where the row says what same work is (its
    `compare_on`: the case the overview compares), with the power measured during that case. A
    kind of work no two devices ran alike is not priced side by side: each device's own best is
    priced only where one device ran it."""
    if frame.empty or not prices.given:
        return []
    priced = sorted((row for row in declared_rows(runs) if row.priced), key=lambda r: r.priced[1] != "tokens")
    chosen = {}  # per kind of work (tokens first: the usual question), each device's cell of the same work
    for headline in priced:
        cells, no_ratio = row_cells(frame, runs, devices, baseline or devices[0], headline)
        if not no_ratio:
            chosen[headline] = dict(zip(devices, cells))
    out = []  # grouped by kind of work, so that like stands beside like
    for headline, cells in chosen.items():
        for device in devices:
            rows = frame[frame["device"] == device]
            cell = cells[device]
            if cell.value is None:
                continue
            power = rows[(rows["case_id"] == cell.case_id) & (rows["metric"] == "avg_power")]["value"].dropna()
            row = cost_row(device, cell.value, float(power.iloc[0]) if not power.empty else None, prices,
                           headline.priced, cell.case_id)
            if row is not None:
                row.assumptions += recipe_notes(frame, runs, rows, headline, cell.case_id)
                out.append(row)
    return out


def recipe_notes(frame: pd.DataFrame, runs: list[LoadedRun], device_rows: pd.DataFrame, headline: OverviewRow,
                 case_id: str) -> list[str]:
    """Where the priced case runs a precision recipe (its row's `recipe` parameter), what that recipe
    costs in quality, from any run's benchmark that declares a `RecipeCost` for it: quality
    depends on the numerics, not the device (emulated numerics are the same)."""
    case = device_rows[device_rows["case_id"] == case_id]
    if not headline.recipe or case.empty or headline.recipe not in case:
        return []
    recipe = str(case[headline.recipe].iloc[0])
    if recipe in ("none", "nan", "None"):
        return []
    costs = {c.benchmark: c for run in runs for c in recipe_costs(run.views)}
    notes = []
    for cost in costs.values():
        if cost.recipe not in frame:
            continue
        measured = frame[(frame["benchmark"] == cost.benchmark) & (frame[cost.recipe] == recipe)
                         & (frame["status"] == "ok")]
        for (subject, _), rows in measured.groupby([cost.per, "run_id"], sort=True):
            figures = [rows[rows["metric"] == m]["value"].dropna() for m in (cost.delta, cost.low, cost.high)]
            if any(f.empty for f in figures):
                continue
            model = _first(rows, cost.model)
            verdict = _first(rows, cost.verdict)
            notes.append(f"{subject}{f' on {model}' if model else ''} {figures[0].iloc[0]:+.1f} {cost.unit} "
                         f"[{figures[1].iloc[0]:+.1f}, {figures[2].iloc[0]:+.1f}]" + (f" ({verdict})" if verdict else ""))
    if not notes:
        return [f"{recipe}: no run here measured what this recipe costs in quality"]
    return [f"{recipe} against the unquantized model (the model evaluated may differ from the one priced): "
            + "; ".join(notes)]


def _first(rows: pd.DataFrame, column: str) -> str:
    if not column or column not in rows or not rows[column].notna().any():
        return ""
    return str(rows[column].dropna().iloc[0])


def parse_prices(pairs: tuple[str, ...], what: str, devices: list[str]) -> dict[str, float]:
    """DEVICE=NUMBER pairs; DEVICE is any name `device_named` resolves among the runs' `devices`
    ("H100" for "NVIDIA H100 80GB HBM3")."""
    out = {}
    for pair in pairs:
        device, sep, number = pair.rpartition("=")
        try:
            value = float(number)
        except ValueError:
            value = -1.0
        if not sep or not device or value < 0:
            raise ValueError(f"{what} takes DEVICE=NUMBER (e.g. 'NVIDIA H100 80GB HBM3=2.50'), got {pair!r}")
        out[device_named(devices, device, what)] = value
    return out

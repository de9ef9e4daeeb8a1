"""Pass / warn / fail for each device of a fleet, from its figures beside its peers', beside a known-good
baseline, and from its health facts (docs/fleet.md).

- **Peers**: for each figure (higher is better), the devices' median and their spread as a robust
  standard deviation (1.4826 × the median absolute deviation, at least 0.5 % of the median, so that
  a fleet of near-identical cards does not turn a 0.3 % difference into a large z). A device is
  *slow* on a figure where its robust z-score is at most -3.5 **and** it is at least 5 % below the
  median (warn: -3 and 3 %). Needs 3 devices with the figure; fewer say so.
- **Baseline**: a file of each figure's median on a known-good node (`Baseline.save`); a device at
  least `margin` (5 %) below it fails, 60 % of the margin warns.
- **Health**: health.py's rules.
A device whose process died, hung or failed a check is failed with that reason. Every reason is one line.
"""
from __future__ import annotations

import json
import statistics
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Optional

from accelbench.errors import UsageError
from accelbench.fleet.health import Health, health_findings

PEER_FAIL = (-3.5, 0.05)  # (robust z at most, deficit from the median at least)
PEER_WARN = (-3.0, 0.03)
MIN_PEERS = 3
SPREAD_FLOOR = 0.005  # of the median
BASELINE_MARGIN = 0.05
BASELINE_VERSION = 1


@dataclass
class DeviceResult:
    device: str  # e.g. "node-a/cuda:3"
    node: str
    figures: dict[str, float] = field(default_factory=dict)  # higher is better
    health: Health = field(default_factory=Health)
    failed: Optional[str] = None  # its process died or hung, or a case failed its check

    @classmethod
    def from_json(cls, data: dict) -> "DeviceResult":
        """One device of a fleet.json (cli/fleet.py writes them)."""
        health = {k: v for k, v in (data.get("health") or {}).items() if k in Health.__dataclass_fields__}
        return cls(str(data["device"]), str(data["node"]), {k: float(v) for k, v in data.get("figures", {}).items()},
                   Health(**health), data.get("failed"))


@dataclass
class Verdict:
    device: str
    node: str
    status: str  # pass / warn / fail
    reasons: list[str] = field(default_factory=list)
    z: dict[str, float] = field(default_factory=dict)  # robust z per figure against its peers


@dataclass
class Baseline:
    figures: dict[str, float]  # each figure's median on the known-good node
    source: str  # which run and node it was made from
    devices: int
    version: int = BASELINE_VERSION

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self), indent=1, sort_keys=True) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: Path) -> "Baseline":
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
            if data.get("version") != BASELINE_VERSION:
                raise UsageError(f"--baseline {path}: version {data.get('version')}, this suite reads "
                                 f"{BASELINE_VERSION}")
            return cls(figures={k: float(v) for k, v in data["figures"].items()}, source=str(data["source"]),
                       devices=int(data["devices"]))
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise UsageError(f"--baseline {path}: not a fleet baseline file ({type(exc).__name__}: {exc})") from None

    @classmethod
    def from_results(cls, results: list[DeviceResult], source: str) -> "Baseline":
        good = [r for r in results if r.failed is None]
        names = sorted({n for r in good for n in r.figures})
        return cls({n: statistics.median(r.figures[n] for r in good if n in r.figures) for n in names}, source,
                   len(good))


def robust_spread(values: list[float]) -> tuple[float, float]:
    """(median, robust standard deviation: the median absolute deviation scaled to a normal's σ) of `values`."""
    from scipy.stats import median_abs_deviation
    mid = statistics.median(values)
    return mid, max(float(median_abs_deviation(values, scale="normal")), SPREAD_FLOOR * abs(mid))


def judge(results: list[DeviceResult], baseline: Optional[Baseline] = None,
          margin: float = BASELINE_MARGIN) -> list[Verdict]:
    verdicts = {r.device: Verdict(r.device, r.node, "pass") for r in results}
    worst = {r.device: "pass" for r in results}

    def flag(device: str, severity: str, reason: str) -> None:
        verdicts[device].reasons.append(reason)
        if severity == "fail" or worst[device] == "pass":
            worst[device] = severity

    for r in results:
        if r.failed:
            flag(r.device, "fail", r.failed)
    working = [r for r in results if r.failed is None]
    for name in sorted({n for r in working for n in r.figures}):
        having = [r for r in working if name in r.figures]
        if len(having) < MIN_PEERS:
            continue
        mid, spread = robust_spread([r.figures[name] for r in having])
        for r in having:
            value = r.figures[name]
            z = (value - mid) / spread
            verdicts[r.device].z[name] = z
            deficit = 1.0 - value / mid if mid else 0.0
            for severity, (z_at_most, deficit_at_least) in (("fail", PEER_FAIL), ("warn", PEER_WARN)):
                if z <= z_at_most and deficit >= deficit_at_least:
                    flag(r.device, severity, f"{name} {value:.4g} is {100 * deficit:.1f} % below its peers' median "
                                             f"{mid:.4g} (robust z {z:.1f}, {len(having)} devices)")
                    break
    if baseline is not None:
        for r in working:
            for name, expected in baseline.figures.items():
                if name not in r.figures or not expected:
                    continue
                deficit = 1.0 - r.figures[name] / expected
                for severity, at_least in (("fail", margin), ("warn", 0.6 * margin)):
                    if deficit >= at_least:
                        flag(r.device, severity, f"{name} {r.figures[name]:.4g} is {100 * deficit:.1f} % below the "
                                                 f"baseline's {expected:.4g} ({baseline.source})")
                        break
    links = {}
    for r in results:
        if r.health.nvlinks_active is not None:
            links[r.node] = max(links.get(r.node, 0), r.health.nvlinks_active)
    for r in results:
        for finding in health_findings(r.health, links.get(r.node)):
            flag(r.device, finding.severity, finding.reason)
    for device, verdict in verdicts.items():
        verdict.status = worst[device]
    return list(verdicts.values())


def exit_code(verdicts: list[Verdict]) -> int:
    """0 when no device fails (warnings pass), 1 when one does."""
    return 1 if any(v.status == "fail" for v in verdicts) else 0

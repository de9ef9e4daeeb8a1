"""Device telemetry: energy counters, power, clocks, temperature, throttle reasons.

One small interface (`Telemetry`), one file per source (NVML, HLML/hl-smi, RAPL). Backends
hand the harness a reader; the harness never knows which one it holds.
"""
from accelbench.telemetry.base import NullTelemetry, Telemetry

__all__ = ["Telemetry", "NullTelemetry"]

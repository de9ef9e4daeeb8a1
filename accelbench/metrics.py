"""Figures derived from a case's timing, work count and energy (docs/metrics.md), in one place.

Units: TFLOP/s = 1e12 FLOP/s; GB/s = 1e9 bytes/s; MFU and bandwidth utilization in % of the
datasheet peak; efficiency as TFLOP/s per W (= TFLOP/J), GB/s per W (= GB/J), tokens/J.
"""
from __future__ import annotations

from typing import Optional

from accelbench.benchmark import Work
from accelbench.records import ClockRecord, EnergyRecord, Metric
from accelbench.specs import DeviceSpec
from accelbench.stats import SampleStats


# A bandwidth that is not device-memory bandwidth says so wherever it is shown, and is never
# given as a share of the datasheet's memory bandwidth.
MEMORY_NOTES = {"cache": "cache bandwidth: working set under 4x the last-level cache, not device memory",
                "link": "host link, not device memory",
                "unknown": "last-level cache size unknown: not compared with device memory"}


def performance_metrics(work: Work, stats: SampleStats, spec: Optional[DeviceSpec]) -> list[Metric]:
    t = stats.median
    out = [Metric("time", t, "s")]
    estimated = "peak estimated, not a datasheet figure" if spec and spec.estimated else None
    if work.flops:
        achieved = work.flops / t
        out.append(Metric("tflops", achieved / 1e12, "TFLOP/s"))
        peak = spec.peak(work.flops_dtype) if spec and work.flops_dtype else None
        if peak:
            out.append(Metric("mfu", 100.0 * achieved / peak, "%", estimated))
        else:
            out.append(Metric("mfu", None, "%", f"no {work.flops_dtype} peak known for this device"))
    if work.bytes and work.memory == "interconnect":
        out.append(Metric("algbw", work.bytes / t / 1e9, "GB/s", "nccl-tests algbw: message bytes / slowest rank's time"))
    elif work.bytes:
        achieved = work.bytes / t
        out.append(Metric("gbps", achieved / 1e9, "GB/s", MEMORY_NOTES.get(work.memory)))
        if work.memory == "device":
            peak = spec.mem_bandwidth_Bps if spec else None
            out.append(Metric("bw_util", 100.0 * achieved / peak if peak else None, "%",
                              None if peak else "no bandwidth peak known for this device"))
    if work.tokens:
        out.append(Metric("tokens_per_s", work.tokens / t, "tokens/s"))
    return out


def launch_overhead_metric(launches: int, per_launch_s: float, median_s: float, replayed: bool) -> Metric:
    """The share of a many-launch call's median that its launches cost (docs/method.md: a figure
    that includes launch overhead says so)."""
    share = min(1.0, launches * per_launch_s / median_s)
    return Metric("launch_overhead_share", 100.0 * share, "%",
                  f"estimated: {launches} launches x one {'replayed' if replayed else 'eager'} launch's "
                  "measured cost, over the median")


def energy_metrics(work: Work, energy: EnergyRecord) -> list[Metric]:
    note = "; ".join(n for n in ("from sampled power" if energy.source == "sampled" else "",
                                 f"summed over {energy.boards} boards" if energy.boards > 1 else "") if n) or None
    per_call_j = energy.joules / energy.iterations
    out = [Metric("avg_power", energy.avg_power_w, "W", note),
           Metric("energy_per_call", per_call_j, "J", note)]
    if energy.idle_power_w is not None:
        out.append(Metric("idle_power", energy.idle_power_w, "W"))
    if per_call_j <= 0:
        return out
    if work.flops:
        out.append(Metric("tflops_per_w", work.flops / per_call_j / 1e12, "TFLOP/s/W", note))
    if work.bytes:
        out.append(Metric("gbps_per_w", work.bytes / per_call_j / 1e9, "GB/s/W", note))
    if work.tokens:
        out.append(Metric("tokens_per_j", work.tokens / per_call_j, "tokens/J", note))
    return out


def clock_metrics(work: Work, stats: SampleStats, clocks: Optional[ClockRecord], spec: Optional[DeviceSpec],
                  max_sm_mhz: Optional[float] = None) -> list[Metric]:
    """The clocks a case ran at, and its clock-normalized efficiency: achieved FLOP/s over the dtype's
    peak scaled to the average SM clock (peak x average SM clock / the clock the peak assumes). It
    separates a slow kernel (low efficiency) from a capped card (low clock, efficiency intact)."""
    if clocks is None:
        return []
    out = [Metric("sm_clock_avg", clocks.sm_avg_mhz, "MHz", f"{clocks.readings} readings during the samples"),
           Metric("sm_clock_min", clocks.sm_min_mhz, "MHz"),
           Metric("mem_clock_avg", clocks.mem_avg_mhz, "MHz")]
    if clocks.sm_avg_mhz and max_sm_mhz:
        out.append(Metric("sm_clock_of_max", 100.0 * clocks.sm_avg_mhz / max_sm_mhz, "%",
                          f"average SM clock over the device's maximum, {max_sm_mhz:.0f} MHz"))
    out = [m for m in out if m.value is not None]
    peak = spec.peak(work.flops_dtype) if spec and work.flops and work.flops_dtype else None
    reference = spec.reference_clock(work.flops_dtype) if peak else None
    if peak and reference and clocks.sm_avg_mhz:
        scaled_peak = peak * clocks.sm_avg_mhz / reference
        out.append(Metric("clock_norm_eff", 100.0 * work.flops / stats.median / scaled_peak, "%",
                          f"of the {work.flops_dtype} peak at the average SM clock ({clocks.sm_avg_mhz:.0f} MHz; "
                          f"the datasheet's {peak / 1e12:.1f} TFLOP/s assumes {reference:.0f} MHz)"))
    return out

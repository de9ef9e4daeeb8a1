"""The records a run writes (docs/results-format.md), as dataclasses with a strict JSON round trip.

`to_json_dict` / `from_json_dict` are the only (de)serializers: the store and the loader
both go through them, so a field added here is written and validated in one place.
"""
from __future__ import annotations

import dataclasses
import functools
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Optional

from accelbench.stats import SampleStats

# Clock-event reasons that mean the device ran slower than it could have for reasons of power
# or heat. "idle" and "applications clocks" are not throttling.
THROTTLE_REASONS = frozenset({
    "sw_power_cap", "hw_slowdown", "sw_thermal_slowdown", "hw_thermal_slowdown", "hw_power_brake",
})


@dataclass
class Metric:
    name: str
    value: Optional[float]
    unit: str
    note: Optional[str] = None  # e.g. "peak estimated", "peak unknown for this device"


@dataclass
class Accuracy:
    passed: bool
    rel_fro_error: Optional[float]  # None where the error was not finite (stored JSON has no Inf)
    max_abs_error: Optional[float]
    sqnr_db: Optional[float]
    tolerance: float  # bound on the relative Frobenius error
    reference: str  # how the reference was computed, e.g. "fp64 matmul on cpu"
    max_abs_tolerance: Optional[float] = None  # bound on the largest element-wise error, where checked


@dataclass
class DeviceState:
    sm_clock_mhz: Optional[float] = None
    sm_clock_max_mhz: Optional[float] = None
    mem_clock_mhz: Optional[float] = None
    temperature_c: Optional[float] = None
    power_w: Optional[float] = None
    power_limit_w: Optional[float] = None
    throttle_reasons: list[str] = field(default_factory=list)

    @property
    def throttled(self) -> bool:
        return bool(THROTTLE_REASONS.intersection(self.throttle_reasons))


@dataclass
class ClockRecord:
    """The clocks a case's timed samples ran at, read by the telemetry sampler (every ~100 ms, and
    once more as the samples end)."""
    readings: int
    sm_avg_mhz: Optional[float] = None
    sm_min_mhz: Optional[float] = None
    mem_avg_mhz: Optional[float] = None
    mem_min_mhz: Optional[float] = None


@dataclass
class EnergyRecord:
    source: str  # "counter" (cumulative energy counter) or "sampled" (integrated power samples)
    reader: str  # nvml / hlml / rapl / hl-smi
    window_s: float
    iterations: int
    joules: float
    avg_power_w: float
    idle_power_w: Optional[float]
    sampled_avg_power_w: Optional[float]  # power sampled every ~100 ms over the same window
    power_samples: int
    throttle_reasons_seen: list[str] = field(default_factory=list)
    # Per-call time measured on the device's clock inside the window (median), to set beside the
    # timed median: both must describe the same work.
    per_call_s: Optional[float] = None
    # The window flushed the cache before each call, as the timed samples did; the energy of the
    # flushes (measured once per run on flushes alone) is subtracted from `joules`.
    flushed: bool = False
    flush_joules: Optional[float] = None
    # Boards summed: the ranks of a multi-rank case each measured their own board over the window.
    boards: int = 1


@dataclass
class TimingMethod:
    timer: str  # "device events" or "perf_counter_ns after synchronize"
    graphs: bool
    cache: str  # "flushed" or why not ("working set 3.2x L2: not flushed")
    warmup_iters: int
    warmup_s: float
    # How graphs were chosen: the measured per-call time of each way, e.g. "graph 75.5 µs vs eager 87.8 µs".
    graph_choice: Optional[str] = None
    # The replayed graph's output was checked against the reference before it was timed.
    graph_checked: Optional[bool] = None
    first_call_s: Optional[float] = None  # the correctness call, host wall time after a synchronize
    regime: str = "sustained"  # sustained or burst (timing.Regime)
    cooldown_s: Optional[float] = None  # burst: the idle gap before the short warm-up and window


@dataclass
class RooflineWork:
    """A case's place on the roofline, counted by its benchmark (Benchmark.roofline_work): `flops`
    done while `bytes` of device memory must move. Arithmetic intensity = flops / bytes. The
    achieved FLOP/s comes from the case's metric `per`: a time (unit s: "time" for one call, "tpot"
    for one decode step) that the flops take, or a bandwidth (unit GB/s) at which the bytes move."""

    kind: str  # the legend's name for such cases (gemm, fp8, bandwidth, decode)
    flops: float
    bytes: float
    per: str = "time"


# The figures an energy window gives (metrics.energy_metrics): missing where the device has no
# readable counter or power (RunInfo.no_energy_because says why).
ENERGY_METRICS = ("avg_power", "idle_power", "energy_per_call", "tflops_per_w", "gbps_per_w", "tokens_per_j")


# Runs written before a case recorded its headline (before method version 1): the order every
# reader used then, kept here so that old runs compare exactly as they did.
LEGACY_HEADLINES = ("tflops", "busbw", "gbps", "decode_tokens_per_s", "tokens_per_s")


@dataclass
class CaseRecord:
    benchmark: str
    case_id: str
    params: dict[str, Any]
    status: str  # ok / failed / skipped
    reason: Optional[str] = None
    started_at: str = ""
    duration_s: float = 0.0
    samples_s: list[float] = field(default_factory=list)
    stats: Optional[SampleStats] = None
    metrics: list[Metric] = field(default_factory=list)
    accuracy: Optional[Accuracy] = None
    energy: Optional[EnergyRecord] = None
    clocks: Optional[ClockRecord] = None  # during the timed samples, where the telemetry reads them
    state_before: Optional[DeviceState] = None
    state_after: Optional[DeviceState] = None
    method: Optional[TimingMethod] = None
    throttled: bool = False
    # Clock-event reasons seen during the timed samples, in the state read after them and in the
    # energy window.
    throttle_reasons: list[str] = field(default_factory=list)
    # CPUs that other processes (and a hypervisor's steal) kept busy, on average, over the case's
    # warm-up and samples, or the whole case where those were too short to tell (contention.py);
    # None where the host does not say (no /proc/stat) and in runs of several ranks.
    other_load: Optional[float] = None
    ceiling: Optional[str] = None  # the measured-ceiling key this case competes for, e.g. matmul.bf16
    peak_memory_bytes: Optional[int] = None
    facts: dict[str, Any] = field(default_factory=dict)  # found while preparing, e.g. l2_bytes
    repeat: Optional[int] = None  # with --repeat N: which round (1..N) of the interleaved repeats
    # The metric the case is known by (its summary line, `bench compare`, `bench history`), as its
    # benchmark declares it (`Benchmark.headline_metrics`); "time" where none of them has a value.
    headline: Optional[str] = None
    roofline: Optional[RooflineWork] = None  # where the case has a point on the roofline

    def metric(self, name: str) -> Optional[Metric]:
        return next((m for m in self.metrics if m.name == name), None)

    def headline_metric(self) -> Optional[Metric]:
        """The figure the case is known by: its recorded headline, or in a run that recorded none,
        the first of LEGACY_HEADLINES it has. None where it has no figure (failed, skipped, or a
        case known by its time: compare it on its samples)."""
        if self.headline == "time":
            return None
        names = (self.headline,) if self.headline is not None else LEGACY_HEADLINES
        return next((m for n in names if (m := self.metric(n)) is not None and m.value is not None), None)


@dataclass
class Ceiling:
    value: float
    unit: str
    case_id: str


@dataclass
class RunInfo:
    schema_version: int
    run_id: str
    status: str  # running / complete / interrupted / crashed / aborted (a rank stuck, raising or gone)
    started_at: str
    backend: str
    device_name: str
    device_count: int
    host: str
    accelbench_version: str
    commit: Optional[str]
    argv: list[str]
    suite: str
    label: Optional[str] = None
    ended_at: Optional[str] = None
    versions: dict[str, Any] = field(default_factory=dict)
    spec: Optional[dict[str, Any]] = None  # the peak-table entry the MFU figures use
    fingerprint: dict[str, Any] = field(default_factory=dict)
    idle_power_w: Optional[float] = None
    # Why the run has no energy figures, where it has none ("--no-energy", "no energy counter: ...").
    no_energy_because: Optional[str] = None
    ceilings: dict[str, Ceiling] = field(default_factory=dict)
    # Matmul dtypes the device runs in software only (dtype -> why), e.g. bf16 on an AVX2 CPU.
    emulated_matmul: dict[str, str] = field(default_factory=dict)
    # A multi-rank run: each rank's place and fingerprint (host, device, driver, links), the
    # differences between nodes, and why the run was aborted where it was.
    ranks: list[dict[str, Any]] = field(default_factory=list)
    node_differences: list[str] = field(default_factory=list)
    abort_reason: Optional[str] = None
    regime: str = "sustained"  # the timing regime of every case (--regime)
    repeats: int = 1  # --repeat N: every case ran N times, interleaved (A, B, ..., then A, B, ... again)
    flush_always: bool = False  # --flush always: the cache was flushed before every call
    method_version: int = 0  # accelbench.METHOD_VERSION of the code that measured; 0: before it was recorded
    # Per benchmark the suite had (run or not), how reports show it (Benchmark.view: headline
    # metrics, overview rows, plots, tables).
    views: dict[str, Any] = field(default_factory=dict)


def to_json_dict(record: Any) -> dict[str, Any]:
    return dataclasses.asdict(record)


@functools.lru_cache(maxsize=None)
def _fields_of(cls: type) -> tuple[dict[str, Any], frozenset[str], tuple]:
    """A record class's field types, names and fields, resolved once (resolving the annotations is
    most of the cost of reading a large cases file)."""
    fields = dataclasses.fields(cls)
    return typing.get_type_hints(cls), frozenset(f.name for f in fields), fields


def from_json_dict(cls: type, data: Any) -> Any:
    """Build `cls` from parsed JSON, rejecting missing or unknown fields with a clear message."""
    if not isinstance(data, dict):
        raise ValueError(f"{cls.__name__}: expected an object, got {type(data).__name__}")
    hints, names, fields = _fields_of(cls)
    unknown = set(data) - names
    if unknown:
        raise ValueError(f"{cls.__name__}: unknown field(s) {sorted(unknown)}")
    kwargs = {}
    for f in fields:
        if f.name not in data:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise ValueError(f"{cls.__name__}: missing field '{f.name}'")
            continue
        kwargs[f.name] = _build(hints[f.name], data[f.name], f"{cls.__name__}.{f.name}")
    return cls(**kwargs)


def _build(tp: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None:
            return None
        (inner,) = [a for a in typing.get_args(tp) if a is not type(None)]
        return _build(inner, value, where)
    if dataclasses.is_dataclass(tp):
        return from_json_dict(tp, value)
    if origin is list:
        if not isinstance(value, list):
            raise ValueError(f"{where}: expected a list")
        (inner,) = typing.get_args(tp)
        if inner is float:  # a case's samples: thousands of numbers, checked in one pass
            if not all(type(v) in (int, float) for v in value):
                bad = next(v for v in value if type(v) not in (int, float))
                raise ValueError(f"{where}: expected a number, got {bad!r}")
            return [float(v) for v in value]
        return [_build(inner, v, where) for v in value]
    if origin is dict:
        if not isinstance(value, dict):
            raise ValueError(f"{where}: expected an object")
        _, inner = typing.get_args(tp)
        return {k: _build(inner, v, where) for k, v in value.items()}
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if tp in (int, str, bool) and not isinstance(value, tp):
        raise ValueError(f"{where}: expected {tp.__name__}, got {value!r}")
    return value

"""What an end-to-end case should take on this device, from the parts the same run measured
(docs/metrics.md, "Predicted beside measured"), and where the difference goes.

- **Decode step**: weights streamed ÷ the run's measured device-memory read bandwidth, plus the KV
  cache read ÷ the same, plus two all-reduces per layer under tensor parallelism (the message ÷ the
  run's measured bus bandwidth at that size), plus each part of the step's fixed work the case
  measured itself (`fixed`: attention at its cache length, the FP8 quantizers, one replayed
  launch, ...).
- **Prefill**: its projections' FLOPs ÷ the run's best measured matmul rate for the dtype, the
  output layer read once, plus the prefill without its projections where the case timed it.
- `fixed` / `fixed_s` come from accelbench/e2e/decode/parts.py: the same engine running the step
  (or prefill) with every projection replaced by a stand-in that reads no weight.
A part is *measured* where its time comes from a timing of that part, *modelled* where it is a count
over a measured ceiling; the rest of the measured time is *unexplained*. A prediction needs its
ceilings from the run: without one, the case says which is missing instead of predicting from the
datasheet (a datasheet rate is not what this device reaches).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional


@dataclass(frozen=True)
class Part:
    name: str  # weights, kv_cache, communication, attention, quantizers, launch, ...
    seconds: float
    how: str  # "modelled": a count over a measured ceiling; "measured": timed on its own
    basis: str  # what it was computed from, in words


@dataclass
class Explanation:
    case_id: str
    measured_s: float
    parts: list[Part] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # ceilings the prediction needs and the run lacks

    @property
    def predicted_s(self) -> Optional[float]:
        return None if self.missing else sum(p.seconds for p in self.parts)

    @property
    def ratio(self) -> Optional[float]:
        """Measured ÷ predicted: 1.10 is 10 % slower than its parts say."""
        predicted = self.predicted_s
        return None if not predicted else self.measured_s / predicted

    @property
    def unexplained_s(self) -> Optional[float]:
        predicted = self.predicted_s
        return None if predicted is None else self.measured_s - predicted

    def shares(self) -> dict[str, float]:
        """Each part's share of the measured time, and the unexplained rest's."""
        if self.missing or not self.measured_s:
            return {}
        out = {p.name: p.seconds / self.measured_s for p in self.parts}
        out["unexplained"] = (self.unexplained_s or 0.0) / self.measured_s
        return out


@dataclass(frozen=True)
class Ceilings:
    """The run's own measured rates (run.json `ceilings`), None where the run did not measure one."""

    read_bytes_per_s: Optional[float] = None  # membw.device
    matmul_flops_per_s: dict[str, float] = field(default_factory=dict)  # dtype -> best measured FLOP/s
    allreduce_busbw: Optional[float] = None  # bytes/s at the message size the case sends

    @classmethod
    def from_run(cls, ceilings: dict[str, dict]) -> "Ceilings":
        """From run.json's `ceilings` (key -> {"value": ..., ...})."""
        return cls.from_values({key: entry.get("value") for key, entry in ceilings.items()})

    @classmethod
    def from_values(cls, ceilings: dict[str, Optional[float]], read_key: str = "membw.device") -> "Ceilings":
        """From the run's ceilings as key -> value (view.RunFigures): the read bandwidth of `read_key`,
        and every `matmul.<dtype>` rate."""
        matmul = {key.split(".", 1)[1]: value for key, value in ceilings.items() if key.startswith("matmul.") and value}
        return cls(read_bytes_per_s=ceilings.get(read_key), matmul_flops_per_s=matmul)


def decode_step(case_id: str, measured_s: float, weight_bytes: float, kv_bytes: float, ceilings: Ceilings,
                fixed: Optional[dict[str, float]] = None, allreduces: int = 0, allreduce_bytes: float = 0.0,
                ranks: int = 1) -> Explanation:
    """One decode step (its TPOT) from its parts. `allreduces` per step of `allreduce_bytes` each
    (tensor parallelism: two a layer), at the ring's bus-bandwidth convention."""
    out = Explanation(case_id, measured_s)
    if not ceilings.read_bytes_per_s:
        out.missing.append("a measured device-memory read bandwidth (membw.device: run the membw or decode floor case)")
    if allreduces and not ceilings.allreduce_busbw:
        out.missing.append("a measured all-reduce bus bandwidth at the step's message size (collectives)")
    if out.missing:
        return out
    bw = ceilings.read_bytes_per_s
    out.parts.append(Part("weights", weight_bytes / bw, "modelled",
                          f"{weight_bytes / 1e9:.3f} GB ÷ {bw / 1e9:.0f} GB/s measured"))
    if kv_bytes:
        out.parts.append(Part("kv_cache", kv_bytes / bw, "modelled", f"{kv_bytes / 1e9:.4f} GB ÷ {bw / 1e9:.0f} GB/s"))
    if allreduces:
        # busbw = algbw × 2(n-1)/n; time = bytes ÷ algbw
        algbw = ceilings.allreduce_busbw * ranks / (2 * (ranks - 1)) if ranks > 1 else ceilings.allreduce_busbw
        out.parts.append(Part("communication", allreduces * allreduce_bytes / algbw, "modelled",
                              f"{allreduces} all-reduces of {allreduce_bytes / 1e3:.0f} kB at "
                              f"{ceilings.allreduce_busbw / 1e9:.0f} GB/s bus bandwidth"))
    for name, seconds in (fixed or {}).items():
        out.parts.append(Part(name, seconds, "measured", "timed on its own in this run"))
    return out


def prefill(case_id: str, measured_s: float, flops: float, dtype: str, ceilings: Ceilings,
            fixed_s: Optional[float] = None, head_bytes: float = 0.0) -> Explanation:
    """A prefill (its TTFT) from its parts: the projections' FLOPs at the run's best measured matmul
    rate for `dtype`, the output layer read once (`head_bytes` at the measured read bandwidth: it
    runs on the last position only), and the prefill without its projections where timed
    (`fixed_s`: attention, norms, quantizers, launches)."""
    out = Explanation(case_id, measured_s)
    rate = ceilings.matmul_flops_per_s.get(dtype)
    if not rate:
        out.missing.append(f"a measured {dtype} matmul rate (matmul.{dtype}: run the gemm benchmark)")
    if head_bytes and not ceilings.read_bytes_per_s:
        out.missing.append("a measured device-memory read bandwidth (membw.device) for the output layer")
    if out.missing:
        return out
    out.parts.append(Part("matmul", flops / rate, "modelled", f"{flops / 1e12:.2f} TFLOP ÷ {rate / 1e12:.0f} TFLOP/s measured"))
    if head_bytes:
        bw = ceilings.read_bytes_per_s
        out.parts.append(Part("output_layer", head_bytes / bw, "modelled",
                              f"{head_bytes / 1e9:.3f} GB ÷ {bw / 1e9:.0f} GB/s measured"))
    if fixed_s is not None:
        out.parts.append(Part("fixed_work", fixed_s, "measured", "the prefill without its projections, timed"))
    return out


@dataclass(frozen=True)
class RatioPart:
    name: str
    ratio: Optional[float]  # the part's time on B ÷ on A (above 1: slower on B)
    weight: float  # its share of A's measured time


def decompose(a: Explanation, b: Explanation) -> tuple[Optional[float], list[RatioPart]]:
    """B's end-to-end time over A's, and each part's ratio with its share of A's time: "memory
    1.43×, fixed work 1.0×, so 1.30× overall". Parts either lacks are compared as None."""
    if not a.measured_s:
        return None, []
    names = list(dict.fromkeys([p.name for p in a.parts] + [p.name for p in b.parts])) + ["unexplained"]
    sa = {p.name: p.seconds for p in a.parts} | {"unexplained": a.unexplained_s}
    sb = {p.name: p.seconds for p in b.parts} | {"unexplained": b.unexplained_s}
    parts = []
    for name in names:
        x, y = sa.get(name), sb.get(name)
        parts.append(RatioPart(name, y / x if x and y is not None and x > 0 else None, (x or 0.0) / a.measured_s))
    return b.measured_s / a.measured_s, parts

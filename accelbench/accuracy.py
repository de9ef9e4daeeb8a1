"""Comparing a result with its higher-precision reference (docs/method.md).

A check bounds two things: the relative Frobenius error ||out-ref|| / ||ref|| (the overall
quality of the result) and the largest element-wise error (so one missing tile, one stale
element or one skipped block cannot hide inside a large norm). NaN or Inf anywhere fails.

References may be computed in chunks (`ErrorMeter.add` per chunk), so a 4 GiB array or a
16384² product needs no full-size fp64 copy beside its inputs; one chunk or many, the result
is the same `Accuracy`.
"""
from __future__ import annotations

import math
from typing import Callable, Optional

import torch

from accelbench.records import Accuracy

# Unit roundoff (half an ulp at 1.0) of the formats results are rounded to.
UNIT_ROUNDOFF = {torch.float64: 2.0**-53, torch.float32: 2.0**-24, torch.bfloat16: 2.0**-8,
                 torch.float16: 2.0**-11}


class ErrorMeter:
    """Accumulates the error of a result against its reference, one chunk at a time."""

    def __init__(self) -> None:
        self.err_sq = 0.0
        self.ref_sq = 0.0
        self.max_abs = 0.0
        self.ref_max_abs = 0.0
        self.count = 0
        self.nonfinite = 0
        self.shape_mismatch: Optional[str] = None

    def add(self, out: torch.Tensor, ref: torch.Tensor) -> None:
        got = out.detach().to(device=ref.device, dtype=torch.float64)
        want = ref.to(torch.float64)
        if got.shape != want.shape:
            self.shape_mismatch = f"shape {tuple(got.shape)} != {tuple(want.shape)}"
            return
        finite = torch.isfinite(got)
        self.nonfinite += int((~finite).sum())
        diff = torch.where(finite, got - want, torch.zeros((), dtype=torch.float64, device=want.device))
        self.err_sq += float(diff.square().sum())
        self.ref_sq += float(want.square().sum())
        if diff.numel():
            self.max_abs = max(self.max_abs, float(diff.abs().max()))
            self.ref_max_abs = max(self.ref_max_abs, float(want.abs().max()))
        self.count += got.numel()

    @property
    def ref_rms(self) -> float:
        return math.sqrt(self.ref_sq / self.count) if self.count else 0.0

    def result(self, tolerance: float, reference: str, max_abs_tolerance: Optional[float] = None) -> Accuracy:
        if self.shape_mismatch:
            return Accuracy(False, None, None, None, tolerance, f"{reference}; {self.shape_mismatch}",
                            max_abs_tolerance)
        err, ref = math.sqrt(self.err_sq), math.sqrt(self.ref_sq)
        rel = err / ref if ref > 0 else (0.0 if err == 0 else math.inf)
        sqnr = 20.0 * math.log10(ref / err) if err > 0 and ref > 0 else None
        passed = (self.nonfinite == 0 and math.isfinite(rel) and rel <= tolerance
                  and (max_abs_tolerance is None or self.max_abs <= max_abs_tolerance))
        note = f"{reference}; {self.nonfinite} non-finite element(s)" if self.nonfinite else reference
        return Accuracy(passed, rel if math.isfinite(rel) and not self.nonfinite else None,
                        self.max_abs if not self.nonfinite else None, sqnr, tolerance, note, max_abs_tolerance)


def compare(out: torch.Tensor, ref: torch.Tensor, tolerance: float, reference: str,
            max_abs_tolerance: Optional[float] = None) -> Accuracy:
    """One-chunk comparison: relative Frobenius error, max abs error and SQNR, in fp64."""
    meter = ErrorMeter()
    meter.add(out, ref)
    return meter.result(tolerance, reference, max_abs_tolerance)


def gemm_max_abs_tolerance(meter: ErrorMeter, out_dtype: torch.dtype, k: int, input_roundoff: float = 0.0,
                           accumulate_roundoff: float = 2.0**-24) -> float:
    """The largest element-wise error a right GEMM may show against the fp64 product of the same
    operands, from the formats involved and K (inputs drawn independently, zero mean):
    - output rounding: half an ulp of the largest element, u_out * max|C|;
    - operands rounded inside the kernel (tf32: u_in per operand): each of the K products is
      off by about 2 u_in of its size, so an element by about 2 u_in * rms(C) per standard
      deviation;
    - fp32 accumulation: a random walk of K roundings, about u_acc * sqrt(K) * rms(C).
    Six standard deviations cover the largest of up to 10^9 elements; a factor of 4 more leaves
    room for blocked summation orders. A missing or stale tile is off by |C| itself, about
    rms(C), which lies far outside this bound."""
    rms = meter.ref_rms
    return 4.0 * (UNIT_ROUNDOFF[out_dtype] * meter.ref_max_abs
                  + 6.0 * (2.0 * input_roundoff + accumulate_roundoff * math.sqrt(k)) * rms)


def reduction_tolerance(sum_abs_terms: float, reference: float, out_dtype: torch.dtype,
                        accumulate_roundoff: float = 2.0**-24) -> float:
    """The absolute error a right sum (or dot product) may show: accumulation roundoff scaled by
    the sum of the magnitudes of its terms, plus rounding of the result to its output format.
    With zero-mean, random-sign inputs the true sum is about sqrt(n) times one term, far
    smaller than sum|x| * 16 u, so a kernel that skips data, reads half and doubles it, or
    answers a constant is off by about |sum| itself and fails."""
    return 16.0 * accumulate_roundoff * sum_abs_terms + 2.0 * UNIT_ROUNDOFF[out_dtype] * abs(reference)


REFERENCE_CHUNK_BYTES = 256 * 2**20  # fp64 scratch a chunked reference holds at once


def matmul_meter(out: torch.Tensor, a: torch.Tensor, b: torch.Tensor, device: torch.device,
                 chunk_bytes: int = REFERENCE_CHUNK_BYTES) -> ErrorMeter:
    """`out` (M x N) against the fp64 product a @ b computed on `device`, a block of rows at a
    time: the fp64 scratch is B (K x N) plus at most `chunk_bytes`, not a full-size copy of
    every operand and of the result."""
    meter = ErrorMeter()
    b64 = b.to(device, torch.float64)
    m, k = a.shape
    rows = max(1, chunk_bytes // (8 * (k + 3 * b.shape[1])))
    for i in range(0, m, rows):
        meter.add(out[i:i + rows], a[i:i + rows].to(device, torch.float64) @ b64)
    return meter


def matmul_reference_bytes(k: int, n: int, chunk_bytes: int = REFERENCE_CHUNK_BYTES) -> int:
    """Device bytes `matmul_meter` holds at its peak when the reference runs on the device."""
    return 8 * k * n + chunk_bytes


EXACT_CHUNK = 2**24  # elements compared at once: a 1 GiB check never holds 1 GiB of indices


def exact_check(result: torch.Tensor, expected_at: Callable[[torch.Tensor], torch.Tensor], reference: str) -> Accuracy:
    """Every element equal to its expected value (`expected_at(indices)`, in chunks; NaN never is):
    for work with one right answer (collectives, copies). The error is the share of wrong elements."""
    wrong, worst = 0, 0.0
    flat = result.reshape(-1)
    for start in range(0, flat.numel(), EXACT_CHUNK):
        got = flat[start:start + EXACT_CHUNK]
        want = expected_at(torch.arange(start, start + got.numel(), device=flat.device))
        bad = got != want
        count = int(bad.sum())
        if count:
            wrong += count
            # In fp64 on the host: a device without fp64 (Gaudi) would compute it in fp32.
            diff = (got[bad].to("cpu", torch.float64) - want[bad].to("cpu", torch.float64)).abs()
            worst = math.inf if bool(diff.isnan().any()) else max(worst, float(diff.max()))
    return Accuracy(wrong == 0, wrong / max(flat.numel(), 1), worst if math.isfinite(worst) else None, None, 0.0,
                    f"{reference} (error: share of wrong elements, {wrong} of {flat.numel()})")

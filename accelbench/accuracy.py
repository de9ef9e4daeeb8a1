"""Comparing a result with its higher-precision reference (design.md §3)."""
from __future__ import annotations

import math

import torch

from accelbench.records import Accuracy


def compare(out: torch.Tensor, ref: torch.Tensor, tolerance: float, reference: str) -> Accuracy:
    """Relative Frobenius error ||out-ref||/||ref||, max abs error and SQNR, in fp64 on the
    reference's device. NaN or Inf anywhere fails the check."""
    got = out.detach().to(device=ref.device, dtype=torch.float64)
    want = ref.to(torch.float64)
    if got.shape != want.shape:
        return Accuracy(False, math.inf, math.inf, None, tolerance,
                        f"{reference}; shape {tuple(got.shape)} != {tuple(want.shape)}")
    diff = got - want
    err_norm = torch.linalg.vector_norm(diff).item()
    ref_norm = torch.linalg.vector_norm(want).item()
    rel = err_norm / ref_norm if ref_norm > 0 else (0.0 if err_norm == 0 else math.inf)
    max_abs = diff.abs().max().item() if diff.numel() else 0.0
    sqnr = None
    if err_norm > 0 and ref_norm > 0:
        sqnr = 20.0 * math.log10(ref_norm / err_norm)
    finite = math.isfinite(rel) and bool(torch.isfinite(got).all())
    return Accuracy(finite and rel <= tolerance, rel if math.isfinite(rel) else math.inf,
                    max_abs if math.isfinite(max_abs) else math.inf, sqnr, tolerance, reference)

"""`bench doctor`: a short self-check to run first on a new machine. Each check says what
works and what does not, so the first run on new hardware tells exactly what to fix."""
from __future__ import annotations

import time
import traceback
from dataclasses import dataclass
from typing import Callable, Optional

import torch

from accelbench.accuracy import compare
from accelbench.backends import backend_classes
from accelbench.backends.base import Backend


@dataclass
class CheckResult:
    name: str
    ok: Optional[bool]  # None: not run
    detail: str
    warning: bool = False  # works, but some figures will be missing (e.g. no energy counter)


class CheckWarning(Exception):
    """The check found something missing that costs figures, not correctness."""


def _device_check(b: Backend) -> str:
    spec = b.spec()
    entry = f"spec entry '{spec.name}'" if spec else "not in the spec table (MFU will be unknown)"
    return f"{b.device_name()} (x{b.device_count()}), {entry}"


def _gemm_check(b: Backend) -> str:
    gen = torch.Generator().manual_seed(0)
    a, w = torch.randn(256, 256, generator=gen), torch.randn(256, 256, generator=gen)
    out = (a.to(b.device, torch.bfloat16) @ w.to(b.device, torch.bfloat16))
    b.mark_step()
    b.synchronize()
    acc = compare(out.cpu(), a.double() @ w.double(), 2e-2, "fp64 on cpu")
    if not acc.passed:
        raise AssertionError(f"bf16 256x256 GEMM differs from CPU fp64: relative error {acc.rel_fro_error:.3g}")
    return f"bf16 256x256 GEMM matches CPU fp64 (relative error {acc.rel_fro_error:.2e})"


def _timer_check(b: Backend) -> str:
    x = torch.randn(1024, 1024, device=b.device, dtype=torch.bfloat16)
    for _ in range(3):
        x @ x
    b.mark_step()
    b.synchronize()
    start, end = b.event(), b.event()
    wall0 = time.perf_counter()
    start.record()
    for _ in range(20):
        x @ x
    b.mark_step()
    end.record()
    b.synchronize()
    wall = time.perf_counter() - wall0
    timed = start.seconds_until(end)
    if not 0 < timed <= wall * 1.05 + 1e-4:
        raise AssertionError(f"device timer says {timed * 1e3:.3f} ms for work that took {wall * 1e3:.3f} ms of wall time")
    return f"{b.timer_description}: 20 GEMMs in {timed * 1e3:.3f} ms (wall {wall * 1e3:.3f} ms)"


def _graph_check(b: Backend) -> str:
    if not b.supports("graphs"):
        return "no graph replay on this backend (not needed)"
    x = torch.randn(64, 64, device=b.device)
    out = torch.empty_like(x)
    replay = b.capture_graph(lambda: torch.mul(x, 2.0, out=out))
    out.zero_()
    replay()
    b.mark_step()
    b.synchronize()
    if not torch.equal(out.cpu(), (x * 2).cpu()):
        raise AssertionError("a replayed graph did not reproduce its captured work")
    return "capture and replay reproduce the work"


def _telemetry_check(b: Backend) -> str:
    avail = b.telemetry().availability()
    if b.telemetry().energy_source is None:
        raise CheckWarning("no energy figures: " + "; ".join(f"{k}: {v}" for k, v in avail.items()))
    return "; ".join(f"{k}: {v}" for k, v in avail.items())


def _collectives_check(b: Backend) -> str:
    reason = b.collectives_unavailable()
    if reason:
        raise AssertionError(reason)
    return f"{b.collectives_backend} importable"


def _fp8_check(b: Backend) -> str:
    if not b.supports("fp8"):
        return "no FP8 on this device (FP8 cases will be emulated)"
    from accelbench.fp8_engines import engine_for, weight_scheme
    from accelbench.quant import MODES, quantize
    mode = MODES["gaudi2" if getattr(b, "generation", None) == 2 else "tensor"]
    engine, emulated = engine_for(b, mode, "auto")
    if emulated:
        raise AssertionError(f"no native FP8 path: {emulated}")
    gen = torch.Generator().manual_seed(1)
    a = torch.randn(128, 256, generator=gen).to(b.device, torch.bfloat16)
    w = quantize(torch.randn(128, 256, generator=gen).to(b.device, torch.bfloat16), weight_scheme(mode))
    out = engine.gemm(engine.quantize_activations(a, mode, None), w, mode,
                      torch.empty(128, 128, dtype=torch.bfloat16, device=b.device))
    b.mark_step()
    b.synchronize()
    ref = quantize(a, mode.a).dequantize(torch.float64).cpu() @ w.dequantize(torch.float64).cpu().t()
    acc = compare(out.cpu(), ref, 2e-2, "fp64 on cpu")
    if not acc.passed:
        raise AssertionError(f"{engine.execution} differs from the reference: relative error {acc.rel_fro_error:.3g}")
    return f"{engine.execution} ({mode.name} mode) matches the reference (relative error {acc.rel_fro_error:.2e})"


CHECKS: list[tuple[str, Callable[[Backend], str]]] = [
    ("device", _device_check),
    ("GEMM vs CPU", _gemm_check),
    ("event timing", _timer_check),
    ("graph replay", _graph_check),
    ("energy telemetry", _telemetry_check),
    ("collectives", _collectives_check),
    ("FP8", _fp8_check),
]


def run_doctor(backend_name: str, device_index: int = 0) -> list[CheckResult]:
    classes = backend_classes()
    cls = classes[backend_name]
    reason = cls.unavailable_reason()
    if reason:
        return [CheckResult("software", False, reason)] + [
            CheckResult(name, None, "not run: needs the backend's software and a device") for name, _ in CHECKS]
    try:
        backend = cls(device_index)
    except Exception as exc:
        return [CheckResult("software", False, f"{type(exc).__name__}: {exc}")]
    results = [CheckResult("software", True, "imports and sees a device")]
    for name, check in CHECKS:
        try:
            results.append(CheckResult(name, True, check(backend)))
        except CheckWarning as exc:
            results.append(CheckResult(name, True, str(exc), warning=True))
        except Exception as exc:
            where = traceback.extract_tb(exc.__traceback__)[-1]
            results.append(CheckResult(name, False, f"{type(exc).__name__}: {exc} (at {where.name})"))
    return results

"""`bench doctor`: a short self-check to run first on a new machine. Each check says what
works and what does not, so the first run on new hardware tells exactly what to fix."""
from __future__ import annotations

import math
import time
import traceback
from dataclasses import dataclass
from typing import Callable, Optional

import torch

from accelbench.accuracy import compare
from accelbench.backends import backend_classes
from accelbench.backends.base import Backend
from accelbench.fp8.formats import E4M3, E4M3_GAUDI2, OperandScheme, ScalingMode
from accelbench.fp8.reference import quantize, quantize_with_scale, Quantized


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


def _timed_gemms(x: torch.Tensor, y: torch.Tensor, count: int) -> None:
    """The work the timer check times: results written into a persistent buffer, so a lazy
    bridge cannot drop them as unreferenced."""
    for _ in range(count):
        torch.matmul(x, x, out=y)


def _timer_check(b: Backend) -> str:
    # bf16 where the device multiplies it natively (an AVX2 CPU takes seconds per product).
    dtype = torch.float32 if "bf16" in b.emulated_matmul_dtypes() else torch.bfloat16
    gen = torch.Generator().manual_seed(2)
    host = torch.randn(1024, 1024, generator=gen).to(dtype)
    x = host.to(b.device)
    y = torch.full((1024, 1024), math.nan, dtype=dtype, device=b.device)
    _timed_gemms(x, y, 3)
    b.mark_step()
    b.synchronize()
    y.fill_(math.nan)
    b.mark_step()
    b.synchronize()
    start, end = b.event(), b.event()
    wall0 = time.perf_counter()
    start.record()
    _timed_gemms(x, y, 20)
    b.mark_step()
    end.record()
    b.synchronize()
    wall = time.perf_counter() - wall0
    timed = start.seconds_until(end)
    acc = compare(y.cpu(), host.double() @ host.double(), 2e-2, "fp64 on cpu")
    if not acc.passed:
        raise AssertionError("the timed GEMMs did not produce their result (dropped or wrong: relative error "
                             f"{acc.rel_fro_error}): the events timed something else")
    if not 0 < timed <= wall * 1.05 + 1e-4:
        raise AssertionError(f"device timer says {timed * 1e3:.3f} ms for work that took {wall * 1e3:.3f} ms of wall time")
    return (f"{b.timer_description}: 20 {str(dtype).split('.')[-1]} GEMMs in {timed * 1e3:.3f} ms "
            f"(wall {wall * 1e3:.3f} ms), result checked")


def _graph_check(b: Backend) -> str:
    if not b.supports("graphs"):
        return "no graph replay on this backend" + (" in eager mode (HPUGraph is lazy-mode only)"
                                                    if b.name == "hpu" else "")
    gen = torch.Generator().manual_seed(3)
    host = torch.randn(64, 64, generator=gen)
    x = host.to(b.device)
    out = torch.empty_like(x)
    captured = b.capture_graph(lambda: torch.mul(x, 2.0, out=out))
    out.fill_(math.nan)
    b.mark_step()
    b.synchronize()
    captured.replay()
    b.mark_step()
    b.synchronize()
    if not torch.equal(out.cpu(), host * 2):
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


def _doctor_fp8_mode(b: Backend) -> ScalingMode:
    """Per-token activations and per-channel weights, so a scale applied along the wrong axis
    shows; in Gaudi 2's E4M3 range (±240) on Gaudi 2."""
    fmt = E4M3_GAUDI2 if getattr(b, "generation", None) == 2 else E4M3
    return ScalingMode(f"row-{fmt.name}", OperandScheme(fmt, (1, 0)), OperandScheme(fmt, (0, 1)))


def _fp8_check(b: Backend) -> str:
    if not b.supports("fp8"):
        return "no FP8 on this device (FP8 cases will be emulated)"
    from accelbench.fp8.executors import executor_for, weight_scheme
    mode = _doctor_fp8_mode(b)
    executor, emulated = executor_for(b, mode, "auto")
    if emulated:
        raise AssertionError(f"no native FP8 path: {emulated}")
    gen = torch.Generator().manual_seed(1)
    a = torch.randn(128, 256, generator=gen).to(torch.bfloat16)
    # Output channels 100x apart in size: per-channel scales far from uniform.
    w = (torch.randn(96, 256, generator=gen) * torch.logspace(-1, 1, 96).unsqueeze(1)).to(torch.bfloat16)
    qw = quantize(w.to(b.device), weight_scheme(mode))
    qa = executor.quantize_activations(a.to(b.device), mode, None)
    out = executor.gemm(qa, qw, mode, torch.empty(128, 96, dtype=torch.bfloat16, device=b.device))
    b.mark_step()
    b.synchronize()
    cast = _cast_mismatch(executor, mode, a, qa)
    if cast:
        raise AssertionError(cast)
    # The reference is quantized, dequantized and multiplied on the CPU, in fp64 (no fp64 on Gaudi).
    ref = quantize(a, mode.a).dequantize(torch.float64) @ quantize(w, weight_scheme(mode)).dequantize(torch.float64).t()
    acc = compare(out.cpu(), ref, 2e-2, "fp64 on cpu")
    if not acc.passed:
        raise AssertionError(f"{executor.execution} differs from the reference: relative error {acc.rel_fro_error:.3g}")
    return (f"{executor.execution} (per-token x per-channel scales, channels 100x apart) matches the reference "
            f"(relative error {acc.rel_fro_error:.2e}); its activation cast matches the reference quantizer bit for bit")


def _cast_mismatch(executor, mode: ScalingMode, a: torch.Tensor, qa: Quantized) -> Optional[str]:
    """Why the executor's FP8 activations differ from the reference quantizer's on the same scales
    (None where they agree bit for bit, under one of the ways the executor is known to cast). The
    product check alone cannot see this: a value on a rounding tie one FP8 step away moves the
    GEMM's output by far less than its tolerance, yet fails the benchmark's exact checks."""
    got = qa.q.cpu().view(torch.uint8)
    scale = qa.scale.cpu()
    for candidate in executor.reference_modes(mode):
        s = candidate.a
        rows, cols = a.shape
        blocks = (rows // (s.block[0] or rows), cols // (s.block[1] or cols))
        want = quantize_with_scale(a, scale.reshape(blocks), s.block, s.fmt, s.cast).q.view(torch.uint8)
        if torch.equal(got, want):
            return None
        differ = int((got != want).sum())
    return (f"FP8 cast: {differ} of {got.numel()} activations differ from the reference quantizer (cast rule "
            f"'{s.cast}', quant.CASTS) on the same scales: the device rounds the cast another way than the "
            "reference models, so FP8 checks would fail on rounding ties")


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
    cls.select_device(device_index)
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

"""Who executes an FP8 GEMM on a backend: one executor module per backend family, found by
discovery (a module that names its `BACKEND` and its `EXECUTOR` class), emulation (base.py)
everywhere else, and torchao's linear on request (`impl=torchao`). The helpers give an executor
its weights' scheme and its policy's state, and the reference scale the first call must use."""
from __future__ import annotations

import importlib
import pkgutil
from typing import Optional

import torch

from accelbench.backends.base import Backend
from accelbench.fp8.executors.base import EmulatedExecutor, Scaling
from accelbench.fp8.formats import OperandScheme, ScalingMode
from accelbench.fp8.reference import DelayedScaling, block_amax, scale_from_amax


def executor_classes() -> dict[str, type]:
    """Backend name -> native executor class, from the modules of this package."""
    found = {}
    for info in pkgutil.iter_modules(__path__):
        module = importlib.import_module(f"{__name__}.{info.name}")
        if hasattr(module, "BACKEND") and hasattr(module, "EXECUTOR"):
            found[module.BACKEND] = module.EXECUTOR
    return found


def executor_for(backend: Backend, mode: ScalingMode, impl: str, shape: Optional[tuple[int, int, int]] = None):
    """The executor that runs `mode` (on an M x K x N `shape`) on `backend`, and why it is emulated
    where it is. Returns (executor, reason_or_None); raises ValueError(reason) when `impl` cannot
    run here."""
    if impl == "torchao":
        if backend.name != "cuda":
            raise ValueError("torchao's float8 inference path runs on the cuda backend")
        from accelbench.fp8.executors.torchao import TorchaoExecutor
        executor = TorchaoExecutor(backend)
        reason = executor.unsupported(mode, impl, shape)
        if reason:
            raise ValueError(reason)
        return executor, None
    natives = executor_classes()
    if impl == "emulated" or backend.name not in natives:
        executor = EmulatedExecutor(backend)
        reason = executor.unsupported(mode, impl, shape)
        if reason:
            raise ValueError(reason)
        return executor, None if impl == "emulated" else f"no native FP8 executor for the {backend.name} backend"
    executor = natives[backend.name](backend, impl)
    reason = executor.unsupported(mode, impl, shape)
    if reason is None:
        return executor, None
    if impl == "auto" and executor.emulate_unsupported:
        return EmulatedExecutor(backend), reason
    raise ValueError(reason)


def weight_scheme(mode: ScalingMode) -> OperandScheme:
    """B's scheme restated for W = B^T: its block transposes."""
    bk, bn = mode.b.block
    return OperandScheme(mode.b.fmt, (bn, bk), mode.b.rounding)


def policy_scale(mode: ScalingMode, a: torch.Tensor, previous: list[torch.Tensor]) -> Optional[torch.Tensor]:
    """The activation scale a delayed or static policy would use for `a`, given tensors of
    previous steps (delayed: their amax history; static: calibration on the first), by the
    reference policies of accelbench.fp8.reference: the definition the executors are checked against. None
    for current scaling, whose scale comes from `a` itself at quantization time."""
    if mode.policy == "current":
        return None
    from accelbench.fp8.reference import DelayedScaling, StaticScaling
    if mode.policy == "static":
        policy = StaticScaling()
        policy.calibrate(block_amax(previous[0], mode.a.block))
    else:
        policy = DelayedScaling()
        for p in previous:
            policy.amax(block_amax(p, mode.a.block))
    return scale_from_amax(policy.amax(block_amax(a, mode.a.block)), mode.a.fmt, mode.a.rounding)


def policy_state(mode: ScalingMode, previous: list[torch.Tensor]) -> Scaling:
    """What an executor carries from call to call under the mode's policy, after the previous
    steps: nothing (current), the calibrated scale (static), the amax history (delayed)."""
    if mode.policy == "current":
        return None
    first = block_amax(previous[0], mode.a.block)
    if mode.policy == "static":
        return scale_from_amax(first, mode.a.fmt, mode.a.rounding)
    history = DelayedScaling.empty(tuple(first.shape), first.device)
    for p in previous:
        history.record(block_amax(p, mode.a.block))
    return history

"""Installs a fake `torch.hpu`, HPU tensors (`_device.py`) and fake `torch.ops.hpu` FP8 ops on CPU
PyTorch, as strict as the real bridge where accelbench depends on it:
- one card per process, device 0 only. The card is taken when the device is first used (a tensor
  on it, a synchronize, an event, a memory query), not at import: then HLS_MODULE_ID, else
  HABANA_VISIBLE_MODULES (its LOCAL_RANK-th entry under a launcher), else the first free card; the
  bridge sets HLS_MODULE_ID to the card a rank took, as the real one does per local rank;
- no __version__ (the real version lives in the habana-torch-plugin distribution's metadata);
- cast_to_fp8_v2 multiplies by its scale in the input's dtype before the cast (the bridge's
  bit-exact test: simulateFp8Precision(input * scale.to(dtype))), saturating at the format's max;
- fp8_gemm_v2 scale shapes: A_scale_inv [1] or [M, 1], B_scale_inv [1] or [N] (per output
  channel), as vLLM's Gaudi path and neural-compressor pass them; anything else is refused;
- `torch.compile(backend="hpu_backend")` is registered, as the bridge registers it.
"""
import os
import sys
import time
import types

import torch

from habana_frameworks import RELEASE, STATE, record
from habana_frameworks.torch import _device
from habana_frameworks.torch.utils.internal import is_lazy

NAME = os.environ.get("STANDIN_HPU_NAME", "GAUDI2")
COUNT = int(os.environ.get("STANDIN_HPU_COUNT", "1"))
# Read when the bridge loads, as the real one reads it (Habana's HPU Graphs inference page).
LAZY_COLLECTIVES = os.environ.get("PT_HPU_ENABLE_LAZY_COLLECTIVES", "").lower() in ("1", "true")
record("import", HABANA_VISIBLE_MODULES=os.environ.get("HABANA_VISIBLE_MODULES"),
       HLS_MODULE_ID=os.environ.get("HLS_MODULE_ID"), lazy=is_lazy(), release=RELEASE)
# B's per-channel scales applied along the wrong axis: a bridge (or adapter) bug the checks must catch.
WRONG_AXIS = os.environ.get("STANDIN_HPU_WRONG_SCALE_AXIS") == "1"
# "fp32": the cast multiplies in fp32 instead of the input's dtype (rounds the other way on ties).
CAST_PRODUCT = os.environ.get("STANDIN_HPU_CAST_PRODUCT", "input-dtype")


def acquire_device() -> int:
    """The card this process drives, taken on first use (see the module docstring)."""
    if STATE.get("module") is None:
        chosen = os.environ.get("HLS_MODULE_ID")
        if chosen is None:
            visible = [m.strip() for m in os.environ.get("HABANA_VISIBLE_MODULES", "").split(",") if m.strip()]
            local_rank = int(os.environ.get("LOCAL_RANK", "0"))
            chosen = visible[local_rank % len(visible)] if visible else str(local_rank % max(COUNT, 1))
            if "LOCAL_RANK" in os.environ:
                os.environ["HLS_MODULE_ID"] = chosen  # as the bridge does for each local rank
        STATE["module"] = int(chosen)
        record("acquire", module=STATE["module"])
    return STATE["module"]


class Event:
    def __init__(self, enable_timing=False):
        acquire_device()
        record("Event", enable_timing=enable_timing)
        self.t = None

    def record(self):
        record("Event.record")
        self.t = time.perf_counter()

    def elapsed_time(self, end):
        return (end.t - self.t) * 1e3


def _synchronize(device=None):
    acquire_device()
    record("synchronize")
    STATE["pending"] = False


def _only_device_zero(index=0):
    if index not in (0, None):
        raise RuntimeError(f"stand-in: the Gaudi bridge has only device 0 in a process (asked for {index}); "
                           "choose the card with HABANA_VISIBLE_MODULES or HLS_MODULE_ID")
    acquire_device()
    return index


def _reset_peak(index=0):
    _only_device_zero(index)
    record("reset_peak_memory_stats", index=index)
    _device.MEMORY.peak = _device.MEMORY.in_use


fake = types.ModuleType("torch.hpu")
fake.__dict__.update(
    is_available=lambda: COUNT > 0,
    is_initialized=lambda: STATE.get("module") is not None,
    device_count=lambda: min(COUNT, 1),
    current_device=lambda: 0,
    _lazy_init=acquire_device,  # torch calls it when a tensor is first made with device="hpu"
    get_device_name=lambda index=0: _only_device_zero(index) or NAME,
    synchronize=_synchronize,
    Event=Event,
    max_memory_allocated=lambda index=0: _only_device_zero(index) or _device.MEMORY.peak,
    reset_peak_memory_stats=_reset_peak,
    memory_stats=lambda index=0: _only_device_zero(index) or {"Limit": _device.MEMORY.limit,
                                                              "InUse": _device.MEMORY.in_use,
                                                              "MaxInUse": _device.MEMORY.peak},
)
torch.hpu = fake
sys.modules["torch.hpu"] = fake
_device.ON_FIRST_USE[0] = acquire_device
_device.install()

E4M3_MAX_GAUDI2 = 240.0


def _fp8_limit(dtype):
    limit = torch.finfo(dtype).max
    if dtype == torch.float8_e4m3fn and "2" in NAME:
        limit = E4M3_MAX_GAUDI2  # Gaudi 2's E4M3 saturates at 240
    return limit


def _cast(input, scale, dtype):
    dtype = dtype or torch.float8_e4m3fn
    if isinstance(scale, torch.Tensor) and scale.shape not in ((), (1,), (input.shape[0], 1)):
        raise RuntimeError(f"stand-in: cast_to_fp8_v2 scale of shape {tuple(scale.shape)} for input "
                           f"{tuple(input.shape)} (takes [1] or [M, 1])")
    if scale is None:
        x = input.float()
    elif CAST_PRODUCT == "fp32":
        x = input.float() * (scale.float() if isinstance(scale, torch.Tensor) else scale)
    else:  # the scale rounded to the input's dtype, the product in that dtype (the bridge's bit-exact model)
        s = scale.to(input.dtype) if isinstance(scale, torch.Tensor) else torch.tensor(scale, dtype=input.dtype)
        x = (input * s).float()
    limit = _fp8_limit(dtype)
    return x.clamp(-limit, limit).to(dtype), input.abs().amax().float()


def _cast_to_fp8_v2(input, scale=None, stochastic_rounding=False, is_amax=False, dtype=None):
    record("cast_to_fp8_v2", scale=None if scale is None else scale.clone(), stochastic_rounding=stochastic_rounding,
           is_amax=is_amax, dtype=dtype, shape=tuple(input.shape), input_dtype=input.dtype)
    return _cast(input, scale, dtype)


def _cast_to_fp8_v2_scalar(input, scale, stochastic_rounding=False, is_amax=False, dtype=None):
    record("cast_to_fp8_v2.scalar", scale=scale, stochastic_rounding=stochastic_rounding, dtype=dtype)
    return _cast(input, float(scale), dtype)


def _gemm(A, trans_A, B, trans_B, out_dtype, a_scale, b_scale):
    a = A.float().t() if trans_A else A.float()
    b = B.float().t() if trans_B else B.float()
    c = a @ b  # M x N
    m, n = c.shape
    if isinstance(a_scale, torch.Tensor) and a_scale.shape not in ((), (1,), (m, 1)):
        raise RuntimeError(f"stand-in: fp8_gemm_v2 A_scale_inv of shape {tuple(a_scale.shape)} (takes [1] or [M, 1])")
    if isinstance(b_scale, torch.Tensor) and b_scale.shape not in ((), (1,), (n,)):
        raise RuntimeError(f"stand-in: fp8_gemm_v2 B_scale_inv of shape {tuple(b_scale.shape)} (takes [1] or [N])")
    if a_scale is not None:
        c = c * (a_scale.float() if isinstance(a_scale, torch.Tensor) else a_scale)
    if b_scale is not None:
        if isinstance(b_scale, torch.Tensor) and WRONG_AXIS and b_scale.numel() == n > 1:
            c = c * b_scale.float().flip(0)  # each channel gets another channel's scale
        else:
            c = c * (b_scale.float() if isinstance(b_scale, torch.Tensor) else b_scale)
    return c.to(out_dtype)


def _fp8_gemm_v2(A, trans_A, B, trans_B, D, out_dtype, A_scale_inv=None, B_scale_inv=None, bias=None, accumulate=False):
    record("fp8_gemm_v2", trans_A=trans_A, trans_B=trans_B, out_dtype=out_dtype, a_dtype=A.dtype, b_dtype=B.dtype,
           A_scale_inv=None if A_scale_inv is None else A_scale_inv.clone(),
           B_scale_inv=None if B_scale_inv is None else B_scale_inv.clone(), a_shape=tuple(A.shape), b_shape=tuple(B.shape))
    return _gemm(A, trans_A, B, trans_B, out_dtype, A_scale_inv, B_scale_inv)


def _fp8_gemm_v2_scalar(A, trans_A, B, trans_B, D, out_dtype, A_scale_inv, B_scale_inv, bias=None, accumulate=False):
    record("fp8_gemm_v2.scalar", A_scale_inv=A_scale_inv, B_scale_inv=B_scale_inv, out_dtype=out_dtype)
    return _gemm(A, trans_A, B, trans_B, out_dtype, float(A_scale_inv), float(B_scale_inv))


# Op registrations are process-wide: a fresh import (tests reload the stand-in with other knobs)
# first removes the previous stand-in's library.
if getattr(torch, "_accelbench_standin_hpu_lib", None) is not None:
    torch._accelbench_standin_hpu_lib._destroy()
_lib = torch.library.Library("hpu", "DEF")
torch._accelbench_standin_hpu_lib = _lib
_lib.define("cast_to_fp8_v2(Tensor input, Tensor? scale=None, bool stochastic_rounding=False, bool is_amax=False, "
            "ScalarType? dtype=None) -> (Tensor, Tensor)")
_lib.impl("cast_to_fp8_v2", _cast_to_fp8_v2, "CompositeExplicitAutograd")
_lib.define("cast_to_fp8_v2.scalar(Tensor input, float scale, bool stochastic_rounding=False, bool is_amax=False, "
            "ScalarType? dtype=None) -> (Tensor, Tensor)")
_lib.impl("cast_to_fp8_v2.scalar", _cast_to_fp8_v2_scalar, "CompositeExplicitAutograd")
if os.environ.get("STANDIN_HPU_NO_FP8_GEMM") != "1":
    _lib.define("fp8_gemm_v2(Tensor A, bool trans_A, Tensor B, bool trans_B, Tensor? D, ScalarType out_dtype, "
                "Tensor? A_scale_inv=None, Tensor? B_scale_inv=None, Tensor? bias=None, bool accumulate=False) -> Tensor")
    _lib.impl("fp8_gemm_v2", _fp8_gemm_v2, "CompositeExplicitAutograd")
    _lib.define("fp8_gemm_v2.scalar(Tensor A, bool trans_A, Tensor B, bool trans_B, Tensor? D, ScalarType out_dtype, "
                "float A_scale_inv, float B_scale_inv, Tensor? bias=None, bool accumulate=False) -> Tensor")
    _lib.impl("fp8_gemm_v2.scalar", _fp8_gemm_v2_scalar, "CompositeExplicitAutograd")


def _hpu_backend(graph_module, example_inputs):
    """The bridge's torch.compile backend; the stand-in runs the traced graph as it is."""
    record("hpu_backend", nodes=len(graph_module.graph.nodes))
    return graph_module.forward


try:
    from torch._dynamo import list_backends, register_backend
    if "hpu_backend" not in list_backends(exclude_tags=()):
        register_backend(name="hpu_backend")(_hpu_backend)
    else:
        from torch._dynamo.backends import registry  # a reload: this stand-in's function replaces the last one's
        _hpu_backend._tags = ()
        registry._COMPILER_FNS["hpu_backend"] = _hpu_backend
except ImportError:  # a torch without dynamo: the bridge offers no compile path either
    pass

from habana_frameworks.torch import hpu  # noqa: E402,F401  (makes habana_frameworks.torch.hpu an attribute)

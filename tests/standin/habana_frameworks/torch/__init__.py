"""Installs a fake `torch.hpu` and fake `torch.ops.hpu` FP8 ops on CPU PyTorch."""
import os
import sys
import time
import types

import torch

from habana_frameworks import record
from habana_frameworks.torch import hpu  # noqa: F401  (makes habana_frameworks.torch.hpu an attribute)

__version__ = "standin-0.0"
NAME = os.environ.get("STANDIN_HPU_NAME", "GAUDI2")
COUNT = int(os.environ.get("STANDIN_HPU_COUNT", "1"))


class Event:
    def __init__(self, enable_timing=False):
        record("Event", enable_timing=enable_timing)
        self.t = None

    def record(self):
        record("Event.record")
        self.t = time.perf_counter()

    def elapsed_time(self, end):
        return (end.t - self.t) * 1e3


def _synchronize(device=None):
    record("synchronize")


fake = types.SimpleNamespace(
    is_available=lambda: COUNT > 0,
    device_count=lambda: COUNT,
    get_device_name=lambda index=0: NAME,
    synchronize=_synchronize,
    Event=Event,
    max_memory_allocated=lambda index=0: 12345,
    reset_peak_memory_stats=lambda index=0: record("reset_peak_memory_stats"),
    memory_stats=lambda index=0: {"Limit": 96 * 2**30},
)
torch.hpu = fake
sys.modules["torch.hpu"] = fake

E4M3_MAX_GAUDI2 = 240.0


def _cast_to_fp8_v2(input, scale=None, stochastic_rounding=False, is_amax=False, dtype=None):
    record("cast_to_fp8_v2", scale=None if scale is None else scale.clone(), stochastic_rounding=stochastic_rounding,
           is_amax=is_amax, dtype=dtype, shape=tuple(input.shape))
    dtype = dtype or torch.float8_e4m3fn
    limit = torch.finfo(dtype).max
    if dtype == torch.float8_e4m3fn and "2" in NAME:
        limit = E4M3_MAX_GAUDI2  # Gaudi 2's E4M3 saturates at 240
    x = input.float() * (scale if scale is not None else 1.0)
    return x.clamp(-limit, limit).to(dtype), input.abs().amax().float()


def _fp8_gemm_v2(A, trans_A, B, trans_B, D, out_dtype, A_scale_inv=None, B_scale_inv=None, bias=None, accumulate=False):
    record("fp8_gemm_v2", trans_A=trans_A, trans_B=trans_B, out_dtype=out_dtype, a_dtype=A.dtype, b_dtype=B.dtype,
           A_scale_inv=None if A_scale_inv is None else A_scale_inv.clone(),
           B_scale_inv=None if B_scale_inv is None else B_scale_inv.clone(), a_shape=tuple(A.shape), b_shape=tuple(B.shape))
    a = A.float().t() if trans_A else A.float()
    b = B.float().t() if trans_B else B.float()
    c = a @ b
    if A_scale_inv is not None:
        c = c * A_scale_inv.float()
    if B_scale_inv is not None:
        c = c * B_scale_inv.float()
    return c.to(out_dtype)


# Op registrations are process-wide: a fresh import (tests reload the stand-in with other knobs)
# first removes the previous stand-in's library.
if getattr(torch, "_accelbench_standin_hpu_lib", None) is not None:
    torch._accelbench_standin_hpu_lib._destroy()
_lib = torch.library.Library("hpu", "DEF")
torch._accelbench_standin_hpu_lib = _lib
_lib.define("cast_to_fp8_v2(Tensor input, Tensor? scale=None, bool stochastic_rounding=False, bool is_amax=False, "
            "ScalarType? dtype=None) -> (Tensor, Tensor)")
_lib.impl("cast_to_fp8_v2", _cast_to_fp8_v2, "CompositeExplicitAutograd")
if os.environ.get("STANDIN_HPU_NO_FP8_GEMM") != "1":
    _lib.define("fp8_gemm_v2(Tensor A, bool trans_A, Tensor B, bool trans_B, Tensor? D, ScalarType out_dtype, "
                "Tensor? A_scale_inv=None, Tensor? B_scale_inv=None, Tensor? bias=None, bool accumulate=False) -> Tensor")
    _lib.impl("fp8_gemm_v2", _fp8_gemm_v2, "CompositeExplicitAutograd")

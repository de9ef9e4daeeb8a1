"""HPU tensors for the stand-in: tensors that report device `hpu:0` and keep their values in CPU
storage, so code under test meets the device rules the real bridge enforces rather than CPU rules.

How: `HpuTensor` is a wrapper subclass (device `hpu:0`, no storage of its own) around a CPU tensor,
and a torch-function mode pushed while the bridge is loaded turns every torch call into the same
call on the CPU tensors inside, then wraps what comes back. The mode also sees factories
(`torch.empty(..., device="hpu")`) and moves (`t.to(hpu)`, `t.cpu()`), which no subclass would.
Collectives reach the dispatcher with the wrapper itself: `__torch_dispatch__` unwraps those.

What it refuses, as the bridge does (each says "stand-in:" and what the bridge says or does):
- tensors of two devices in one op (an HPU tensor and a CPU tensor of one element or more), except
  a copy between them and CPU index tensors;
- `torch.Generator(device="hpu")` (torch itself refuses it here: no HPU generator is registered, as the
  bridge registers none; its random ops take a CPU generator, which works here too);
- pinning host memory without `device="hpu"` (the torch of Gaudi 1.19 pins for CUDA by default);
- allocations past the device's memory (`STANDIN_HPU_MEMORY_BYTES`), with the bridge's plain
  `RuntimeError` naming PT_DEVMEM, not `torch.OutOfMemoryError`;
- fp64 on the device: silently computed in fp32 (values rounded to fp32 after every op) as the bridge
  maps Double to Float, or refused outright with `STANDIN_HPU_STRICT_FP64=1`.
"""
from __future__ import annotations

import os
import warnings
import weakref

import torch
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_flatten, tree_map

from habana_frameworks import STATE, record

HPU = torch.device("hpu", 0)
CPU = torch.device("cpu")
STRICT_FP64 = os.environ.get("STANDIN_HPU_STRICT_FP64") == "1"
MEMORY_BYTES = int(os.environ.get("STANDIN_HPU_MEMORY_BYTES", str(96 * 2**30)))
# Metadata read from the wrapper itself (its own device, dtype, shape), not from the CPU values.
_OWN_ATTRIBUTES = {"device", "dtype", "shape", "is_cpu", "is_cuda", "ndim", "layout", "requires_grad",
                   "is_leaf", "grad_fn", "is_meta", "is_sparse", "is_quantized", "itemsize", "names"}
_MOVES_TO_HOST = {torch.Tensor.cpu}


def _is_hpu(device) -> bool:
    if device is None:
        return False
    if isinstance(device, int):  # a bare index means the current accelerator, here the HPU
        return True
    return torch.device(device).type == "hpu"


class HpuTensor(torch.Tensor):
    """A tensor on the HPU: values in `inner` (CPU), reported device hpu:0."""

    @staticmethod
    def __new__(cls, inner: torch.Tensor, dtype: torch.dtype | None = None):
        ON_FIRST_USE[0]()
        self = torch.Tensor._make_wrapper_subclass(cls, inner.size(), strides=inner.stride(),
                                                   storage_offset=inner.storage_offset(),
                                                   dtype=dtype or inner.dtype, device=HPU,
                                                   requires_grad=inner.requires_grad)
        self.inner = inner
        MEMORY.hold(self, inner)
        return self

    def __repr__(self, *, tensor_contents=None):
        return f"{self.inner!r}".replace("tensor(", "hpu_tensor(", 1)[:-1] + ", device='hpu:0')"

    def get_device(self) -> int:
        return 0

    def numpy(self, *args, **kwargs):
        raise TypeError("can't convert hpu:0 device type tensor to numpy. Use Tensor.cpu() to copy the "
                        "tensor to host memory first.")

    __array__ = numpy

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        return run_on_device(func, args, kwargs or {})

    @classmethod
    def __torch_dispatch__(cls, func, types, args=(), kwargs=None):
        # What reaches the dispatcher with a wrapper in hand: collectives (c10d ops) and the odd
        # internal call. Run it on the CPU values; hand back the caller's own wrappers.
        return _call_unwrapped(func, args, kwargs or {}, wrap_outputs=True)


class DeviceMemory:
    """Bytes held by live HPU tensors (storage counted once however many views share it)."""

    def __init__(self, limit: int):
        self.limit = limit
        self.in_use = 0
        self.peak = 0
        self._storages: dict[int, list[int]] = {}  # storage address -> [bytes, wrappers alive]

    def hold(self, wrapper: HpuTensor, inner: torch.Tensor) -> None:
        storage = inner.untyped_storage()
        key = storage.data_ptr()
        if key not in self._storages:
            nbytes = storage.nbytes()
            if self.in_use + nbytes > self.limit:
                raise RuntimeError(f"[Rank:0] FATAL ERROR :: MODULE:PT_DEVMEM Allocation failed for size::{nbytes} "
                                   f"({nbytes // 2**20})MB (stand-in: {self.in_use} of {self.limit} bytes in use)")
            self._storages[key] = [nbytes, 0]
            self.in_use += nbytes
            self.peak = max(self.peak, self.in_use)
        self._storages[key][1] += 1
        weakref.finalize(wrapper, self._release, key)

    def _release(self, key: int) -> None:
        entry = self._storages.get(key)
        if entry is None:
            return
        entry[1] -= 1
        if entry[1] == 0:
            self.in_use -= entry[0]
            del self._storages[key]


MEMORY = DeviceMemory(MEMORY_BYTES)
# Called before the first HPU tensor is made: the bridge takes its card on first use (set by torch/__init__).
ON_FIRST_USE = [lambda: None]


def _device_fp64(what: str) -> None:
    if STRICT_FP64:
        raise RuntimeError(f"stand-in (STANDIN_HPU_STRICT_FP64=1): float64 on the HPU ({what}); Gaudi has no "
                           "fp64 and the bridge computes it as fp32: compute fp64 on the host")


def _wrap(value: torch.Tensor) -> HpuTensor:
    if value.dtype == torch.float64:
        _device_fp64("a float64 result")
        value = value.float().double()  # what the device holds: fp32 values
    return HpuTensor(value)


def _check_one_device(func, args, kwargs) -> None:
    """An op on HPU tensors given a CPU tensor (one element or more) fails, as on any device."""
    if func in (torch.Tensor.copy_, torch.Tensor.to, torch.Tensor.__setitem__, torch.Tensor.__getitem__,
                torch.Tensor.index_put_, torch.Tensor.index_put, torch.Tensor.type_as, torch.Tensor.new_tensor):
        return
    flat, _ = tree_flatten((args, kwargs))
    tensors = [x for x in flat if isinstance(x, torch.Tensor)]
    if any(isinstance(t, HpuTensor) for t in tensors) and any(
            not isinstance(t, HpuTensor) and t.dim() > 0 and t.device.type == "cpu" for t in tensors):
        raise RuntimeError("Expected all tensors to be on the same device, but found at least two devices, "
                           f"hpu:0 and cpu! (stand-in: in {getattr(func, '__name__', func)})")


def _unwrap(x):
    if isinstance(x, HpuTensor):
        if x.dtype == torch.float64:
            _device_fp64("a float64 operand")
        return x.inner
    if isinstance(x, torch.device) and x.type == "hpu":
        return CPU
    return x


def _call_unwrapped(func, args, kwargs, wrap_outputs: bool):
    originals = {}
    for x in tree_flatten((args, kwargs))[0]:
        if isinstance(x, HpuTensor):
            originals[id(x.inner)] = x
    inner_args, inner_kwargs = tree_map(_unwrap, (args, kwargs))
    if "device" in inner_kwargs and _is_hpu(kwargs.get("device")):
        inner_kwargs["device"] = CPU
    out = func(*inner_args, **inner_kwargs)
    for wrapper in originals.values():  # in-place results on fp64 tensors: back to fp32 values
        if wrapper.inner.dtype == torch.float64:
            wrapper.inner.copy_(wrapper.inner.float().double())
    if not wrap_outputs:
        return out

    def rewrap(value):
        if isinstance(value, torch.Tensor) and not isinstance(value, HpuTensor):
            same = originals.get(id(value))
            return same if same is not None else _wrap(value)
        return value

    return tree_map(rewrap, out)


def _to_host(value):
    """A copy in host memory (never the device's own storage)."""
    if isinstance(value, HpuTensor):
        return value.inner.to(value.dtype, copy=True)
    return value


def _pin(func, args, kwargs):
    device = kwargs.get("device", args[1] if len(args) > 1 else None)
    if func is torch.Tensor.is_pinned:
        return id(args[0]) in STATE["pinned"]
    if device is None or not _is_hpu(device):
        raise RuntimeError("stand-in: pin_memory() without device='hpu': the torch that Gaudi software 1.19 ships "
                           "pins for CUDA by default and fails on a machine without it; the bridge pins with "
                           "pin_memory(device='hpu')")
    record("pin_memory", device=str(device))
    pinned = args[0].clone()
    STATE["pinned"].add(id(pinned))
    weakref.finalize(pinned, STATE["pinned"].discard, id(pinned))
    return pinned


def run_on_device(func, args, kwargs):
    """One torch call, on whichever device its arguments and `device=` say."""
    if func in (torch.Tensor.pin_memory, torch.Tensor.is_pinned):
        return _pin(func, args, kwargs)
    if kwargs.get("pin_memory"):
        raise RuntimeError("stand-in: pin_memory=True without a device: the torch that Gaudi software 1.19 ships "
                           "pins for CUDA; allocate, then pin_memory(device='hpu')")
    flat, _ = tree_flatten((args, kwargs))
    on_device = any(isinstance(x, HpuTensor) for x in flat)
    if getattr(func, "__name__", "") == "__get__":  # a property
        owner = args[0] if args else None
        if isinstance(owner, HpuTensor) and getattr(func, "__self__", None) is not None and \
                func.__self__.__name__ in _OWN_ATTRIBUTES:
            with torch._C.DisableTorchFunctionSubclass():
                return func(*args, **kwargs)
    if func is torch.Tensor.to:
        return _move(func, args, kwargs)
    if func in _MOVES_TO_HOST:
        return _to_host(args[0])
    target = kwargs.get("device")
    creates_on_device = _is_hpu(target)
    if not on_device and not creates_on_device:
        return func(*args, **kwargs)
    if on_device:
        _check_one_device(func, args, kwargs)
    wrap = creates_on_device or (on_device and (target is None or _is_hpu(target)))
    if "dtype" in kwargs and kwargs["dtype"] == torch.float64 and wrap:
        _device_fp64(f"{getattr(func, '__name__', func)}(dtype=torch.float64)")
    out = _call_unwrapped(func, args, kwargs, wrap_outputs=wrap)
    if not wrap:  # e.g. torch.empty_like(hpu_tensor, device="cpu"): a host tensor, never the device's storage
        return tree_map(lambda v: v.clone() if isinstance(v, torch.Tensor) else v, out)
    return out


def _move(func, args, kwargs):
    self = args[0]
    kwargs = dict(kwargs)
    copy = kwargs.pop("copy", False)
    device, dtype, non_blocking, memory_format = torch._C._nn._parse_to(*args[1:], **kwargs)
    values = self.inner if isinstance(self, HpuTensor) else self
    if isinstance(self, HpuTensor) and self.dtype == torch.float64:
        values = values.double()
    to_device = _is_hpu(device) if device is not None else isinstance(self, HpuTensor)
    if dtype == torch.float64 and to_device:
        _device_fp64("to(torch.float64)")
    if to_device:
        if isinstance(self, HpuTensor) and (dtype is None or dtype == self.dtype) and not copy:
            return self
        moved = values.to(dtype=dtype if dtype is not None else self.dtype, copy=True)
        return _wrap(moved)
    # to the host (or another device type, which the CPU build here does not have)
    return values.to(device=device, dtype=dtype, copy=True) if isinstance(self, HpuTensor) else \
        values.to(*args[1:], copy=copy, **kwargs)


class HpuMode(TorchFunctionMode):
    """Sees every torch call while the bridge is loaded: HPU factories and moves included."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        return run_on_device(func, args, kwargs or {})


MODE = HpuMode()


def install() -> None:
    """Push the mode for the life of the process (the bridge, once loaded, is never unloaded)."""
    torch._C._push_on_torch_function_stack(MODE)
    STATE["mode_installed"] = True


def uninstall() -> None:
    """Tests that reload the stand-in with other knobs take the old mode off first."""
    stack = []
    while torch._C._len_torch_function_stack():
        mode = torch._C._pop_torch_function_stack()
        if not isinstance(mode, HpuMode):
            stack.append(mode)
    for mode in reversed(stack):
        torch._C._push_on_torch_function_stack(mode)


warnings.filterwarnings("ignore", message="The argument 'device' of Tensor.(pin_memory|is_pinned)")

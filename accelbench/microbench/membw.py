"""Device memory bandwidth: STREAM kernels over a size sweep that crosses the last-level cache.

Bytes are counted once, here, the BabelStream way: the fewest bytes the kernel must move,
(arrays read + arrays written) x N x element size. GB = 1e9 bytes. Inputs are seeded random
values (never constants); outputs are poisoned with NaN before the check run, so an element
a kernel forgets to write fails the check. Small sizes are *not* flushed between calls: they
measure the cache on purpose, which is what draws the cache cliff.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Optional

import torch

from accelbench.accuracy import compare
from accelbench.backends.base import Backend
from accelbench.benchmark import Benchmark, Case, Work, Workload
from accelbench.errors import CaseSkipped

SCALAR = 0.4  # BabelStream's start scalar
# A small array's kernel runs for a few microseconds, less than its own launch and ramp-up, so
# one call per sample measures launch overhead rather than the cache. Each sample therefore
# runs the kernel back to back until it has moved at least this many bytes (replayed as one
# graph where the backend has graphs); `repeats` is recorded with the case.
BYTES_PER_SAMPLE = 256 * 2**20


@dataclass(frozen=True)
class StreamKernel:
    reads: int  # arrays read
    writes: int  # arrays written
    reference: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # in fp64, from inputs a, b
    reduces: bool = False


KERNELS = {
    "copy": StreamKernel(1, 1, lambda a, b: a),
    "mul": StreamKernel(1, 1, lambda a, b: SCALAR * a),
    "add": StreamKernel(2, 1, lambda a, b: a + b),
    "triad": StreamKernel(2, 1, lambda a, b: a + SCALAR * b),
    "dot": StreamKernel(2, 0, lambda a, b: (a * b).sum().reshape(1), reduces=True),
    "read": StreamKernel(1, 0, lambda a, b: a.sum().reshape(1), reduces=True),
    "write": StreamKernel(0, 1, lambda a, b: torch.full_like(a, SCALAR)),
}
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}
# Element-wise results are rounded once; sums of N fp32 terms carry ~1e-7*log2(N) relative error
# with tree/blocked reduction; bf16 outputs carry bf16 rounding (2^-9).
TOLERANCE = {("fp32", False): 1e-6, ("fp32", True): 1e-4, ("bf16", False): 1e-2, ("bf16", True): 1e-2}


def bytes_moved(kernel: str, n: int, element_size: int) -> int:
    k = KERNELS[kernel]
    return (k.reads + k.writes) * n * element_size


@dataclass(frozen=True)
class Sweep:
    sizes: tuple[int, ...]  # bytes per array
    kernels: tuple[str, ...]
    dtypes: tuple[str, ...]
    bf16_kernels: tuple[str, ...]
    bf16_min_size: int


def pow2_range(lo: int, hi: int, step: int) -> tuple[int, ...]:
    return tuple(2**e for e in range(lo, hi + 1, step))


SUITES = {
    "quick": Sweep(pow2_range(16, 24, 4), tuple(KERNELS), ("fp32",), ("copy", "triad"), 2**24),
    "standard": Sweep(pow2_range(16, 32, 2), tuple(KERNELS), ("fp32",), ("copy", "triad", "read"), 2**30),
    "full": Sweep(pow2_range(14, 33, 1), tuple(KERNELS), ("fp32", "bf16"), tuple(KERNELS), 0),
}
IMPLS = ("torch", "triton")


def human_bytes(n: int) -> str:
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= scale:
            return f"{n / scale:g}{unit}"
    return f"{n}B"


class MemoryBandwidth(Benchmark):
    name = "membw"
    description = "STREAM kernels (copy, mul, add, triad, dot, read, write) over a size sweep: GB/s, % of datasheet"

    def cases(self, suite: str) -> list[Case]:
        s = SUITES[suite]
        out = []
        for dtype in s.dtypes + (("bf16",) if "bf16" not in s.dtypes else ()):
            kernels = s.kernels if dtype in s.dtypes else s.bf16_kernels
            sizes = s.sizes if dtype in s.dtypes else tuple(x for x in s.sizes if x >= s.bf16_min_size)
            for impl in IMPLS:
                for kernel in kernels:
                    for size in sizes:
                        out.append(Case(f"{impl}/{kernel}/{dtype}/{human_bytes(size)}",
                                        {"impl": impl, "kernel": kernel, "dtype": dtype, "array_bytes": size}))
        return out

    def implementation(self, impl: str, backend: Backend) -> Callable:
        if impl == "torch":
            return torch_stream
        if not backend.supports("triton"):
            raise CaseSkipped(f"the Triton kernels need a GPU backend with triton; {backend.name} has none")
        from accelbench.kernels import stream
        return lambda kernel, a, b, c, partials: (
            stream.reduction(a, b if kernel == "dot" else None, partials) if KERNELS[kernel].reduces
            else stream.elementwise(kernel, a, b, c, SCALAR))

    def prepare(self, case: Case, backend: Backend) -> Workload:
        p = case.params
        kernel, dtype = KERNELS[p["kernel"]], DTYPES[p["dtype"]]
        if p["dtype"] == "bf16" and not backend.supports("bf16"):
            raise CaseSkipped("bf16 is not supported by this backend")
        run_kernel = self.implementation(p["impl"], backend)
        n = p["array_bytes"] // dtype.itemsize
        gen = torch.Generator(device=backend.device).manual_seed(n % 2**31)
        # Uniform in [0.5, 1.5): random, never zero, sums well-conditioned. Drawn on the device:
        # drawing gigabytes on the host would dominate the case's time.
        a = (torch.rand(n, generator=gen, device=backend.device) + 0.5).to(dtype)
        b = (torch.rand(n, generator=gen, device=backend.device) + 0.5).to(dtype)
        c = torch.full((n,), math.nan, dtype=dtype, device=backend.device)
        partials = torch.empty(4 * 1024, dtype=torch.float32, device=backend.device)
        per_call = bytes_moved(p["kernel"], n, dtype.itemsize)
        repeats = max(1, BYTES_PER_SAMPLE // per_call)

        def run():
            for _ in range(repeats - 1):
                run_kernel(p["kernel"], a, b, c, partials)
            return run_kernel(p["kernel"], a, b, c, partials)

        def check(result):
            ref_dev = backend.reference_device
            want = kernel.reference(a.to(ref_dev, torch.float64), b.to(ref_dev, torch.float64))
            got = result.reshape(1) if kernel.reduces else result
            return compare(got, want, TOLERANCE[(p["dtype"], kernel.reduces)],
                           f"fp64 {p['kernel']} of the same inputs on {ref_dev.type}")

        arrays = kernel.reads + kernel.writes
        working_set = arrays * n * dtype.itemsize
        l2 = backend.cache_bytes()
        resident = l2 is not None and working_set <= l2
        dram = l2 is not None and working_set >= 4 * l2
        return Workload(
            run=run, check=check, work=Work(bytes=repeats * per_call),
            working_set_bytes=working_set, measures_cache=True, launches_per_call=repeats,
            ceiling="membw.device" if dram else None,
            facts={"working_set_bytes": working_set, "cache_bytes": l2, "cache_resident": resident,
                   "repeats": repeats})


def torch_stream(kernel: str, a: torch.Tensor, b: torch.Tensor, c: torch.Tensor,
                 partials: Optional[torch.Tensor] = None) -> torch.Tensor:
    """The framework's own ops, as a user would write them."""
    if kernel == "copy":
        return c.copy_(a)
    if kernel == "mul":
        return torch.mul(a, SCALAR, out=c)
    if kernel == "add":
        return torch.add(a, b, out=c)
    if kernel == "triad":
        return torch.add(a, b, alpha=SCALAR, out=c)
    if kernel == "dot":
        return torch.dot(a, b)
    if kernel == "read":
        return a.sum()
    if kernel == "write":
        return c.fill_(SCALAR)
    raise ValueError(kernel)

"""Device memory bandwidth: STREAM kernels over a size sweep that crosses the last-level cache.

Bytes are counted once, here, the BabelStream way: the fewest bytes the kernel must move,
(arrays read + arrays written) x N x element size, times the passes a call makes. GB = 1e9
bytes. Inputs are seeded random values of zero mean (never constants); outputs are poisoned
with NaN before the check run, so an element a kernel forgets to write fails the check, and
sums are checked against a bound scaled by the sum of their terms' magnitudes. Small sizes are
*not* flushed between calls: they measure the cache on purpose, which draws the cache cliff.
Only working sets of at least 4x the last-level cache are device-memory bandwidth (and a % of
the datasheet); smaller ones are labelled cache bandwidth.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch

from accelbench.accuracy import UNIT_ROUNDOFF, ErrorMeter, reduction_tolerance
from accelbench.backends.base import Backend
from accelbench.benchmark import Benchmark, Case, Work, Workload
from accelbench.errors import CaseSkipped
from accelbench.records import Accuracy, RooflineWork
from accelbench.view import OverviewRow, Plot, TableView

SCALAR = 0.4  # BabelStream's start scalar
# A small array's kernel runs for a few microseconds, less than its own launch and ramp-up, so
# one call per sample would measure launch overhead rather than the cache. The Triton kernels
# therefore sweep a cache-sized array many times inside one launch (each program loops over its
# slice, loads cached in L2 only), until at least BYTES_PER_LAUNCH have moved: one launch, about
# 100 µs or more of memory traffic. The torch ops cannot loop inside a kernel: each sample runs
# the op back to back until BYTES_PER_SAMPLE have moved (replayed as one graph where the backend
# has graphs), and the case records the share of launch overhead in its figure.
BYTES_PER_SAMPLE = 256 * 2**20
BYTES_PER_LAUNCH = 2**30
DEVICE_MEMORY_FACTOR = 4  # a working set at least this many times the last-level cache measures device memory


@dataclass(frozen=True)
class StreamKernel:
    reads: int  # arrays read
    writes: int  # arrays written
    flops: int  # floating-point operations per element (BabelStream: mul 1, add 1, triad 2, dot 2)
    # In fp64, from inputs a and b: the output element-wise, or for a reduction the terms it sums.
    reference: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    reduces: bool = False


KERNELS = {
    "copy": StreamKernel(1, 1, 0, lambda a, b: a),
    "mul": StreamKernel(1, 1, 1, lambda a, b: SCALAR * a),
    "add": StreamKernel(2, 1, 1, lambda a, b: a + b),
    "triad": StreamKernel(2, 1, 2, lambda a, b: a + SCALAR * b),
    "dot": StreamKernel(2, 0, 2, lambda a, b: a * b, reduces=True),
    "read": StreamKernel(1, 0, 0, lambda a, b: a, reduces=True),
    "write": StreamKernel(0, 1, 0, lambda a, b: torch.full_like(a, SCALAR)),
}
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}
# Element-wise results are rounded once (twice for triad's scaled term); sums are checked by
# accuracy.reduction_tolerance, scaled by the sum of their terms' magnitudes.
ELEMENTWISE_TOLERANCE = {"fp32": 1e-6, "bf16": 1e-2}
REFERENCE_CHUNK = 32 * 2**20  # elements per chunk of the fp64 reference


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
    summary_groups = ("kernel", "impl", "dtype")
    # Compared on one kernel and working set every device holds in device memory (not cache).
    overview = (OverviewRow("device memory bandwidth", "gbps", (("memory_level", "device"),),
                            same=("kernel", "array_bytes"), compare_on=("impl", "kernel", "dtype", "array_bytes"),
                            absent="all working sets cache-resident (under 4x LLC)",
                            order=40),)
    table = TableView(("gbps", "bw_util", "time"), names=(("bw_util", "of datasheet bw"),))
    plots = (Plot("Memory bandwidth vs working set", x="working_set_bytes", y=("gbps",), series=("impl", "dtype"),
                  panels="kernel", columns=4, marks=("memory_bandwidth", "cache"), x_label="working set (bytes)",
                  y_labels=("GB/s (1e9 B/s)",)),)

    @classmethod
    def roofline_work(cls, params, facts):
        """A kernel with FLOPs on device memory: its FLOPs over the bytes it moves, one pass, at its GB/s."""
        kernel = KERNELS.get(params.get("kernel"))
        if kernel is None or not kernel.flops or facts.get("memory_level") != "device" or "array_bytes" not in params:
            return None
        element = DTYPES[params["dtype"]].itemsize if params.get("dtype") in DTYPES else 4
        n = params["array_bytes"] // element
        return RooflineWork("bandwidth", float(kernel.flops * n), float(bytes_moved(params["kernel"], n, element)), "gbps")
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

    def device_bytes(self, case: Case, backend: Backend) -> int:
        p = case.params
        arrays = 3 * p["array_bytes"]  # a, b, c: every kernel gets all three
        reference = 8 * 4 * REFERENCE_CHUNK if backend.reference_device == backend.device else 0
        return arrays + reference + 2**20

    def prepare(self, case: Case, backend: Backend) -> Workload:
        p = case.params
        kernel, dtype = KERNELS[p["kernel"]], DTYPES[p["dtype"]]
        if p["dtype"] == "bf16" and not backend.supports("bf16"):
            raise CaseSkipped("bf16 is not supported by this backend")
        if p["impl"] == "triton" and not backend.supports("triton"):
            raise CaseSkipped(f"the Triton kernels need a GPU backend with triton; {backend.name} has none")
        n = p["array_bytes"] // dtype.itemsize
        gen = backend.generator(n % 2**31)
        # Uniform in [-1, 1): zero mean and random signs, so a sum is about sqrt(n) times one term
        # and a kernel that skips data, halves it or guesses cannot land near the right answer.
        # Drawn on the device, in place (drawing gigabytes on the host would dominate the case).
        a = torch.empty(n, dtype=dtype, device=backend.device).uniform_(-1.0, 1.0, generator=gen)
        b = torch.empty(n, dtype=dtype, device=backend.device).uniform_(-1.0, 1.0, generator=gen)
        c = torch.full((n,), math.nan, dtype=dtype, device=backend.device)
        partials = torch.empty(4 * 1024, dtype=torch.float32, device=backend.device)
        per_pass = bytes_moved(p["kernel"], n, dtype.itemsize)
        working_set = (kernel.reads + kernel.writes) * n * dtype.itemsize
        l2 = backend.cache_bytes()
        memory = "unknown" if l2 is None else "device" if working_set >= DEVICE_MEMORY_FACTOR * l2 else "cache"
        if p["impl"] == "triton":
            from accelbench.kernels import stream
            sweeps = pow2_at_least(BYTES_PER_LAUNCH // per_pass) if memory == "cache" else 1
            launches, repeats = (3 if kernel.reduces else 1), 1
            # A reduction over `sweeps` passes sums every element `sweeps` times (a power of two,
            # so dividing back is exact).
            run_once = (lambda: stream.reduction(a, b if p["kernel"] == "dot" else None, partials, sweeps))\
                if kernel.reduces else (lambda: stream.elementwise(p["kernel"], a, b, c, SCALAR, sweeps))
            how = (f"one launch sweeps the arrays {sweeps} times, L2-only loads" if sweeps > 1
                   else "one pass per launch")
        else:
            sweeps, repeats = 1, max(1, BYTES_PER_SAMPLE // per_pass)
            launches = repeats
            run_once = lambda: torch_stream(p["kernel"], a, b, c)  # noqa: E731
            how = f"{repeats} launches back to back per sample: includes launch overhead" if repeats > 1 \
                else "one launch per sample"

        def run():
            for _ in range(repeats - 1):
                run_once()
            return run_once()

        def check(result):
            return check_stream(p["kernel"], result, a, b, p["dtype"], backend.reference_device)

        resident = l2 is not None and working_set <= l2
        return Workload(
            run=run, check=check,
            work=Work(bytes=repeats * sweeps * per_pass, memory=memory),
            working_set_bytes=working_set, measures_cache=True,
            ceiling="membw.device" if memory == "device" else None,
            launches_per_call=launches,
            facts={"working_set_bytes": working_set, "cache_bytes": l2, "cache_resident": resident,
                   "memory_level": memory,
                   "repeats": repeats, "sweeps": sweeps, "launches_per_sample": launches, "method": how})


def pow2_at_least(x: int) -> int:
    return 1 << max(0, math.ceil(math.log2(max(1, x))))


def check_stream(kernel_name: str, result: torch.Tensor, a: torch.Tensor, b: torch.Tensor, dtype: str,
                 device: torch.device) -> Accuracy:
    """The kernel's output against its fp64 reference, computed a chunk at a time on `device`."""
    kernel = KERNELS[kernel_name]
    reference = f"fp64 {kernel_name} of the same inputs on {device.type}"
    chunks = range(0, a.numel(), REFERENCE_CHUNK)

    def terms(i: int) -> torch.Tensor:
        return kernel.reference(a[i:i + REFERENCE_CHUNK].to(device, torch.float64),
                                b[i:i + REFERENCE_CHUNK].to(device, torch.float64))

    if kernel.reduces:
        total, magnitude = 0.0, 0.0
        for i in chunks:
            t = terms(i)
            total += float(t.sum())
            magnitude += float(t.abs().sum())
        bound = reduction_tolerance(magnitude, total, result.dtype)
        meter = ErrorMeter()
        meter.add(result.reshape(1), torch.tensor([total], dtype=torch.float64, device=device))
        return meter.result(bound / abs(total) if total else math.inf,
                            f"{reference}; bound {bound:.3g} from sum|terms| {magnitude:.4g}", bound)
    meter = ErrorMeter()
    for i in chunks:
        meter.add(result[i:i + REFERENCE_CHUNK], terms(i))
    # One rounding of the result, plus fp32 arithmetic on inputs of magnitude <= 1 (triad's
    # scaled term, the fp32 scalar): far below any wrong element's error.
    bound = 4.0 * (UNIT_ROUNDOFF[result.dtype] * meter.ref_max_abs + 2.0**-24 * 2.0)
    return meter.result(ELEMENTWISE_TOLERANCE[dtype], reference, bound)


def torch_stream(kernel: str, a: torch.Tensor, b: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
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

"""GEMM: achieved TFLOP/s, MFU and MAMF utilization for fp32, tf32, fp16 and bf16.

FLOPs = 2*M*N*K (docs/metrics.md). A (M x K) and B (K x N) are drawn from a seeded standard
normal distribution in the case's dtype; the output is checked against the fp64 product of
the same (already rounded) inputs before anything is timed.

The "values" group runs the same squares on other input data (distributions.VALUE_KINDS: zeros,
small-range uniform, normal, full-range): on a power-capped GPU the data moves the figure through
the power it draws, and the group shows by how much (its TFLOP/s, W and average clock). Zeros are
the one input that docs/method.md keeps out of every other case: their check can only prove that
every output element was written (exactly zero), not that it was computed.
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import torch

from accelbench.accuracy import exact_check, gemm_max_abs_tolerance, matmul_meter, matmul_reference_bytes
from accelbench.backends.base import Backend
from accelbench.benchmark import Benchmark, Case, Work, Workload
from accelbench.distributions import VALUE_KINDS, draw_values
from accelbench.errors import CaseSkipped
from accelbench.models import GEMM_MODELS, PUBLISHED_70B_SHAPES
from accelbench.records import RooflineWork
from accelbench.view import OverviewRow, Plot, TableView


@dataclass(frozen=True)
class GemmDtype:
    torch_dtype: torch.dtype
    tf32: bool
    # Relative Frobenius error vs fp64 of the same inputs. Seen on an H200 (K up to 16384): fp32
    # 2e-6, tf32 3e-4, fp16 2e-4, bf16 1.7e-3 (output rounding); tolerances leave 5-10x headroom.
    tolerance: float
    feature: str  # backend feature needed
    # Operands rounded inside the kernel (tf32 keeps 10 mantissa bits of fp32 inputs): its unit
    # roundoff enters the element-wise bound (accuracy.gemm_max_abs_tolerance).
    input_roundoff: float = 0.0


DTYPES = {
    "fp32": GemmDtype(torch.float32, False, 1e-4, ""),
    "tf32": GemmDtype(torch.float32, True, 3e-3, "tf32", input_roundoff=2.0**-11),
    "fp16": GemmDtype(torch.float16, False, 3e-3, "fp16"),
    "bf16": GemmDtype(torch.bfloat16, False, 1e-2, "bf16"),
}


@dataclass(frozen=True)
class SuiteShapes:
    dtypes: tuple[str, ...]
    square: tuple[int, ...]
    llm_tokens: tuple[int, ...]
    llm_dtypes: tuple[str, ...]
    published_dtypes: tuple[str, ...]
    mamf_mn: tuple[int, ...]
    mamf_k: tuple[int, ...]
    mamf_dtypes: tuple[str, ...]
    values_sizes: tuple[int, ...] = ()
    values_dtypes: tuple[str, ...] = ()


SUITES = {
    "quick": SuiteShapes(("fp32", "bf16"), (128, 256, 512, 1024), (1, 16), ("bf16",), (),
                         (512, 1024), (512, 1024), ("bf16",), (256,), ("fp32",)),
    "standard": SuiteShapes(("fp32", "tf32", "fp16", "bf16"), (256, 512, 1024, 2048, 4096, 8192, 16384),
                            (1, 16, 128, 1024, 4096, 16384), ("bf16",), ("bf16", "fp16"),
                            (4096, 8192, 12288, 16384), (2048, 4096, 8192, 16384), ("bf16",),
                            (4096, 8192), ("bf16",)),
    "full": SuiteShapes(("fp32", "tf32", "fp16", "bf16"),
                        (256, 512, 1024, 2048, 3072, 4096, 6144, 8192, 12288, 16384),
                        (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384),
                        ("bf16", "fp16"), ("fp32", "tf32", "bf16", "fp16"),
                        tuple(range(2048, 20481, 2048)), (1024, 2048, 4096, 8192, 12288, 16384),
                        ("bf16", "fp16"), (4096, 8192), ("bf16", "fp32")),
}


def gemm_case(group: str, dtype: str, m: int, k: int, n: int, name: str, values: str = "normal") -> Case:
    return Case(f"{dtype}/{group}/{name}", {"dtype": dtype, "m": m, "k": k, "n": n, "group": group,
                                           "shape": name, "values": values}, matmul_dtypes=(dtype,))


class Gemm(Benchmark):
    name = "gemm"
    # Devices are compared on one shape they all ran (the one the baseline runs fastest), shown
    # in the cell: a 256^3 product is not set against an 8192^3 one.
    SAME_WORK = ("dtype", "m", "k", "n")
    SHAPE = ("m", "k", "n")
    overview = (
        OverviewRow("GEMM bf16", "tflops", (("dtype", "bf16"),), same=SHAPE, compare_on=SAME_WORK, order=10,
                    priced=("bf16 GEMM", "TFLOP")),
        OverviewRow("GEMM bf16 MFU", "mfu", (("dtype", "bf16"),), of_best="tflops", same=SHAPE, compare_on=SAME_WORK,
                    order=11),
        OverviewRow("GEMM fp16", "tflops", (("dtype", "fp16"),), same=SHAPE, compare_on=SAME_WORK, order=12),
        OverviewRow("GEMM fp16 MFU", "mfu", (("dtype", "fp16"),), of_best="tflops", same=SHAPE, compare_on=SAME_WORK,
                    order=13),
        OverviewRow("GEMM fp32", "tflops", (("dtype", "fp32"),), same=SHAPE, compare_on=SAME_WORK, order=14),
        OverviewRow("GEMM fp32 MFU", "mfu", (("dtype", "fp32"),), of_best="tflops", same=SHAPE, compare_on=SAME_WORK,
                    order=15),
        # Each device's best matmul over its own search: a capability, shown without a ratio.
        OverviewRow("MAMF bf16 (best matmul measured)", "tflops", (("dtype", "bf16"),), ceiling="matmul.bf16",
                    order=30),
        OverviewRow("GEMM bf16 energy efficiency", "tflops_per_w", (("dtype", "bf16"),), same=SHAPE,
                    compare_on=SAME_WORK, order=90),
    )
    table = TableView(("tflops", "mfu", "time"), more=("mamf_util",), names=(("mamf_util", "of MAMF"),))
    plots = (Plot("GEMM throughput vs size (square)", x="n", y=("tflops",), series=("dtype",),
                  where=(("group", "square"),), x_label="M = N = K", y_labels=("TFLOP/s (FLOPs = 2·M·N·K)",)),)

    @classmethod
    def roofline_work(cls, params, facts):
        """2·M·N·K FLOPs over A, B and C moved once each in the case's dtype."""
        if not {"m", "n", "k"} <= params.keys():  # a variant of other parameters
            return None
        m, n, k = params["m"], params["n"], params["k"]
        element = DTYPES[params["dtype"]].torch_dtype.itemsize if params.get("dtype") in DTYPES else 2
        return RooflineWork("gemm", 2.0 * m * n * k, float((m * k + k * n + m * n) * element))
    description = "Dense matrix multiply C = A @ B: TFLOP/s, MFU, MAMF utilization (FLOPs = 2*M*N*K)"

    def cases(self, suite: str) -> list[Case]:
        s = SUITES[suite]
        out = [gemm_case("square", d, n, n, n, f"{n}") for d in s.dtypes for n in s.square]
        for d in s.llm_dtypes:
            for model in GEMM_MODELS:
                for proj, (k, n) in model.projections().items():
                    out += [gemm_case("llm", d, t, k, n, f"{model.name}-{proj}-t{t}") for t in s.llm_tokens]
        for d in s.published_dtypes:
            out += [gemm_case("llama70b-tp8", d, m, k, n, f"m{m}k{k}n{n}") for m, k, n in PUBLISHED_70B_SHAPES]
        for d in s.mamf_dtypes:
            out += [gemm_case("mamf", d, m, k, n, f"m{m}k{k}n{n}")
                    for m, n, k in itertools.product(s.mamf_mn, s.mamf_mn, s.mamf_k)]
        out += [gemm_case("values", d, n, n, n, f"{n}-{kind}", kind)
                for d in s.values_dtypes for n in s.values_sizes for kind in VALUE_KINDS]
        return out

    def matmul(self, a: torch.Tensor, b: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        return torch.matmul(a, b, out=out)

    def device_bytes(self, case: Case, backend: Backend) -> int:
        p = case.params
        m, k, n = p["m"], p["k"], p["n"]
        operands = (m * k + k * n + m * n) * DTYPES[p["dtype"]].torch_dtype.itemsize
        drawn = 4 * max(m * k, k * n)  # fp32 draw before rounding to the case's dtype
        reference = matmul_reference_bytes(k, n) if backend.reference_device == backend.device else 0
        return operands + drawn + reference

    def prepare(self, case: Case, backend: Backend) -> Workload:
        p = case.params
        spec = DTYPES[p["dtype"]]
        if spec.feature and not backend.supports(spec.feature):
            raise CaseSkipped(f"{p['dtype']} matmul is not supported by the {backend.name} backend")
        m, k, n = p["m"], p["k"], p["n"]
        gen = backend.generator((m * 1_000_003 + k * 1_009 + n) % 2**31)
        # Drawn on the device in fp32, then rounded to the case's dtype.
        values = p.get("values", "normal")
        a = draw_values(values, (m, k), gen, backend.device).to(spec.torch_dtype)
        b = draw_values(values, (k, n), gen, backend.device).to(spec.torch_dtype)
        # Poisoned: an output tile the kernel never writes stays NaN and fails the check.
        out = torch.full((m, n), math.nan, dtype=spec.torch_dtype, device=backend.device)
        precision = "high" if spec.tf32 else "highest"

        def run() -> torch.Tensor:
            torch.set_float32_matmul_precision(precision)
            return self.matmul(a, b, out)

        def check(result: torch.Tensor):
            if values == "zeros":
                return exact_check(result, lambda i: torch.zeros(i.shape, dtype=result.dtype, device=result.device),
                                   "zeros in, zeros out (exact; proves every element was written, not computed)")
            ref_dev = backend.reference_device
            meter = matmul_meter(result, a, b, ref_dev)
            bound = gemm_max_abs_tolerance(meter, spec.torch_dtype, k, spec.input_roundoff)
            return meter.result(spec.tolerance, f"fp64 matmul of the same inputs on {ref_dev.type}", bound)

        elem = spec.torch_dtype.itemsize
        return Workload(run=run, check=check,
                        work=Work(flops=2.0 * m * n * k, flops_dtype=p["dtype"]),
                        working_set_bytes=(m * k + k * n + m * n) * elem,
                        ceiling=f"matmul.{p['dtype']}")

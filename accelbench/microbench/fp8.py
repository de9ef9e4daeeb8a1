"""FP8 GEMM: speed and numerical error of each scaling mode, side by side.

Per case: (a) GEMM-only time with both operands already quantized, or (b) quantize+GEMM time
(amax, scale, cast of the activations every call; weights pre-quantized once, as in inference;
the dequantizing epilogue is part of the GEMM). The output is first checked against the fp64
product of the *quantized* operands (is the kernel right?), then its error against the fp64
product of the *unquantized* inputs is reported (how good is the mode?): relative Frobenius
error, SQNR (dB), max abs error. FLOPs = 2*M*N*K; MFU against the FP8 dense peak.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import torch

from accelbench.accuracy import ErrorMeter, compare, gemm_max_abs_tolerance
from accelbench.backends.base import Backend
from accelbench.benchmark import Benchmark, Case, Work, Workload
from accelbench.distributions import DISTRIBUTIONS, draw
from accelbench.errors import CaseSkipped
from accelbench.fp8.executors import executor_for, policy_scale, policy_state, weight_scheme
from accelbench.fp8.executors.base import EmulatedExecutor
from accelbench.models import PUBLISHED_70B_SHAPES
from accelbench.fp8.formats import MODES
from accelbench.fp8.reference import quantize
from accelbench.records import Accuracy, Metric, RooflineWork
from accelbench.view import OverviewRow, Plot, TableView

STAGES = ("gemm", "quant+gemm")
CONSTANT_SCALE_MODES = ("tensor", "gaudi2", "tensor-static")
TORCHAO_MODES = ("tensor", "row")
# The output is bf16: its rounding (2^-9) dominates; fast accumulation adds its own error.
KERNEL_TOLERANCE = {False: 1e-2, True: 2e-2}
# Largest element error of a fast-accumulation kernel, in units of the reference's RMS: its
# partial sums are kept in reduced precision, so no bound follows from the formats alone; a
# missing tile is off by about 1 RMS and more.
FAST_ACCUM_MAX_ABS_RMS = 0.2


def check_product(result: torch.Tensor, ref: torch.Tensor, tolerance: float, reference: str, k: int,
                  fast_accum: bool = False) -> Accuracy:
    """A bf16 GEMM output against its fp64 reference: Frobenius and element-wise bounds."""
    meter = ErrorMeter()
    meter.add(result, ref)
    bound = FAST_ACCUM_MAX_ABS_RMS * meter.ref_rms if fast_accum else gemm_max_abs_tolerance(meter, torch.bfloat16, k)
    return meter.result(tolerance, reference, bound)


@dataclass(frozen=True)
class Fp8Suite:
    shapes: tuple[tuple[int, int, int], ...]  # (M, K, N), normal inputs, both stages
    accuracy_shape: tuple[int, int, int]  # heavy-tailed and outlier inputs, GEMM-only


SUITES = {
    "quick": Fp8Suite(((256, 256, 256),), (256, 256, 256)),
    "standard": Fp8Suite(((4096, 4096, 4096), (8192, 8192, 8192), *PUBLISHED_70B_SHAPES), (4096, 4096, 4096)),
    "full": Fp8Suite(tuple((n, n, n) for n in (1024, 2048, 4096, 8192, 16384)) + tuple(PUBLISHED_70B_SHAPES),
                     (8192, 8192, 8192)),
}


class ErrorVsExact:
    """The error of a case's actual output against the fp64 product of the unquantized inputs:
    what a mode (or bf16) costs in accuracy, as opposed to the pass/fail kernel check."""

    def __init__(self, exact: torch.Tensor):
        self.exact = exact
        self.found: Optional[Accuracy] = None

    def measure(self, result: torch.Tensor) -> None:
        self.found = compare(result, self.exact, float("inf"), "fp64 product of the unquantized inputs")

    def metrics(self, stats=None) -> list[Metric]:
        f = self.found
        return [Metric("quant_rel_error", f and f.rel_fro_error, "ratio", "vs fp64 of unquantized inputs"),
                Metric("sqnr", f and f.sqnr_db, "dB"),
                Metric("max_abs_error", f and f.max_abs_error, "abs")]


def shape_name(m: int, k: int, n: int) -> str:
    return f"m{m}k{k}n{n}"


def _case(mode: str, impl: str, stage: str, dist: str, shape: tuple[int, int, int]) -> Case:
    m, k, n = shape
    return Case(f"{mode}/{impl}/{stage}/{dist}/{shape_name(m, k, n)}",
                {"mode": mode, "impl": impl, "stage": stage, "dist": dist, "m": m, "k": k, "n": n},
                matmul_dtypes=("bf16",) if mode == "bf16" else ())


class Fp8Gemm(Benchmark):
    name = "fp8"
    summary_groups = ("mode", "impl", "stage")
    # Compared on one scaling mode and shape every device ran, named in the cell.
    SAME_WORK = ("mode", "impl", "stage", "dist", "m", "k", "n")
    overview = (OverviewRow("GEMM FP8 (GEMM only)", "tflops", (("stage", "gemm"),), same=("mode", "m", "k", "n"),
                            compare_on=SAME_WORK, order=20),
                OverviewRow("GEMM FP8 MFU", "mfu", (("stage", "gemm"),), of_best="tflops", same=("mode", "m", "k", "n"),
                            compare_on=SAME_WORK, order=21))
    table = TableView(("tflops", "quant_cost", "quant_rel_error", "mfu", "sqnr", "time"), more=("mamf_util",),
                      names=(("quant_rel_error", "rel. error"), ("quant_cost", "quantize+GEMM ÷ GEMM"),
                             ("mamf_util", "of MAMF")),
                      lower_is_better=("quant_rel_error", "time"),
                      facts=(("execution", "GEMM"), ("activation_quantizer", "quantizer")))
    # One point per mode and implementation, GEMM-only on normal inputs, at the largest shape measured.
    plots = (Plot("FP8 scaling modes: speed vs error", x="quant_rel_error", y=("tflops",), series=("mode", "impl"),
                  where=(("stage", "gemm"), ("dist", "normal")), scatter=True, largest=("m", "k", "n"),
                  unnamed=("auto", "torch"), x_log=10,
                  x_label="relative Frobenius error vs fp64 of unquantized inputs", y_labels=("TFLOP/s (GEMM only)",)),)

    @classmethod
    def roofline_work(cls, params, facts):
        """2·M·N·K FLOPs over the FP8 operands (bf16 for the baseline) and the bf16 output, once each."""
        if not {"m", "n", "k"} <= params.keys():  # a variant of other parameters
            return None
        m, n, k = params["m"], params["n"], params["k"]
        element = 2 if params.get("mode") == "bf16" else 1
        return RooflineWork("fp8", 2.0 * m * n * k, float((m * k + k * n) * element + m * n * 2))
    description = "FP8 GEMM scaling modes: GEMM-only and quantize+GEMM time, error vs fp64, speed-up over bf16"

    def cases(self, suite: str) -> list[Case]:
        s = SUITES[suite]
        shapes = list(dict.fromkeys(s.shapes + (s.accuracy_shape,)))
        out = [_case("bf16", "torch", "gemm", "normal", sh) for sh in shapes]
        for mode in MODES:
            for impl in ("auto", "triton") if MODES[mode].granularity == "block" else ("auto",):
                out += [_case(mode, impl, st, "normal", sh) for st in STAGES for sh in s.shapes]
                out += [_case(mode, impl, "gemm", d, s.accuracy_shape) for d in DISTRIBUTIONS if d != "normal"]
        # torchao's FP8 inference linear beside ours (it quantizes inside the linear: quant+gemm only).
        for mode in TORCHAO_MODES:
            out += [_case(mode, "torchao", "quant+gemm", "normal", sh) for sh in s.shapes]
        # Per-tensor scales passed as constants beside the same modes' runtime-tensor scales
        # (Gaudi: constant scales can take the hardware exponent-bias path). Only where the scale
        # is known ahead of the call: the GEMM-only stage, and static scaling's quantize+GEMM.
        for mode in CONSTANT_SCALE_MODES:
            stages = STAGES if MODES[mode].policy == "static" else ("gemm",)
            out += [_case(mode, "const", st, "normal", sh) for st in stages for sh in s.shapes]
        return out

    def prepare(self, case: Case, backend: Backend) -> Workload:
        p = case.params
        m, k, n = p["m"], p["k"], p["n"]
        gen = backend.generator((m * 7919 + k * 104729 + n) % 2**31)
        a = draw(p["dist"], (m, k), gen, backend.device).to(torch.bfloat16)
        b = torch.randn(k, n, generator=gen, device=backend.device).to(torch.bfloat16)
        # Poisoned: an output tile the kernel never writes stays NaN and fails the check.
        out = torch.full((m, n), math.nan, dtype=torch.bfloat16, device=backend.device)
        ref_dev = backend.reference_device
        exact = a.to(ref_dev, torch.float64) @ b.to(ref_dev, torch.float64)
        baseline = f"bf16/torch/gemm/normal/{shape_name(m, k, n)}"
        error = ErrorVsExact(exact)
        if p["mode"] == "bf16":
            def check_bf16(result: torch.Tensor) -> Accuracy:
                error.measure(result)
                return check_product(result, exact, 1e-2, f"fp64 matmul on {ref_dev.type}", k)

            return Workload(run=lambda: torch.matmul(a, b, out=out), check=check_bf16,
                            work=Work(flops=2.0 * m * n * k, flops_dtype="bf16"),
                            working_set_bytes=2 * (m * k + k * n + m * n), ceiling="matmul.bf16",
                            extra_metrics=error.metrics)

        mode = MODES[p["mode"]]
        try:
            executor, emulated_because = executor_for(backend, mode, p["impl"], (m, k, n))
        except ValueError as exc:
            raise CaseSkipped(str(exc)) from None
        previous = [draw(p["dist"], (m, k), gen, backend.device).to(torch.bfloat16) for _ in range(4)] \
            if mode.policy != "current" else []
        # The reference policy gives the scale the first call must use; the executor carries its own
        # state (a calibrated scale, an amax history on the device) from call to call.
        scale = policy_scale(mode, a, previous)
        state = policy_state(mode, previous)
        del previous
        # As the executor rounds its scales: one way, or (a library) any of the ways it may.
        candidates = executor.reference_modes(mode)
        checked_as = candidates[0]
        w = quantize(b.t().contiguous(), weight_scheme(checked_as))  # weights: once, ahead of time
        executor.take_weight(b.t().contiguous(), mode)
        reference = EmulatedExecutor(backend).quantize_activations(a, checked_as, scale)

        def quantized_exact(candidate):
            """fp64 product of the operands as the reference quantizes them under `candidate`."""
            qa = reference if candidate == checked_as else EmulatedExecutor(backend).quantize_activations(a, candidate, scale)
            qw = w if candidate.b == checked_as.b else quantize(b.t().contiguous(), weight_scheme(candidate))
            return qa.dequantize(torch.float64, ref_dev) @ qw.dequantize(torch.float64, ref_dev).t()

        first_exact = quantized_exact(checked_as)

        if p["stage"] == "gemm":
            qa = executor.quantize_activations(a, mode, state)
            run = lambda: executor.gemm(qa, w, mode, out)  # noqa: E731
        else:
            run = lambda: executor.quantize_and_gemm(a, w, mode, state, out)  # noqa: E731

        def check(result: torch.Tensor) -> Accuracy:
            error.measure(result)
            for i, candidate in enumerate(candidates):
                rounding = "" if len(candidates) == 1 else \
                    f", activation scales rounded {candidate.a.rounding}, weight scales {candidate.b.rounding}"
                found = check_product(result, first_exact if i == 0 else quantized_exact(candidate),
                                      KERNEL_TOLERANCE[mode.fast_accum],
                                      f"fp64 product of the reference-quantized operands on {ref_dev.type}{rounding}",
                                      k, mode.fast_accum)
                if found.passed:
                    break
            return found

        gemm_alone = None
        if p["stage"] != "gemm":
            # What quantizing costs: this call over the same GEMM on operands quantized ahead (the
            # reference quantizer's, bit for bit the executor's), timed beside it. torchao, which has
            # no GEMM of its own to call: cuBLAS's.
            gemm_executor = executor if p["impl"] != "torchao" else executor_for(backend, mode, "auto", (m, k, n))[0]
            gemm_alone = (lambda: gemm_executor.gemm(reference, w, mode, out),
                          f"the GEMM alone ({gemm_executor.execution}) on operands quantized ahead")
        facts = {"execution": executor.execution, "activation_quantizer": executor.activation_quantizer(mode, state),
                 "saturated_pct": 100.0 * reference.saturated,
                 "scale_policy": mode.policy, "granularity": mode.granularity, **executor.notes(mode)}
        if emulated_because:
            facts["emulated_because"] = emulated_because
        if checked_as != mode:
            facts["scale_rounding"] = ("the executor computes its scales in the input's dtype (bf16-rounded); the "
                                       "check's reference says which rounding its output matched")
        if reference.saturated > 0:
            facts["saturation"] = (f"{100 * reference.saturated:.3g}% of activations clamped to "
                                   f"±{mode.a.fmt.max_value:g} ({mode.policy} scaling)")
        weight_bytes = k * n  # one byte per FP8 element
        return Workload(
            run=run, check=check,
            # Delayed scaling's history moves on every call (its slot index lives on the host): a
            # replayed graph would write one slot forever.
            graph_safe=mode.policy != "delayed",
            work=Work(flops=2.0 * m * n * k, flops_dtype="fp8" if executor.native else "fp8-emulated"),
            working_set_bytes=m * k * (1 + (2 if p["stage"] != "gemm" else 0)) + weight_bytes + 2 * m * n,
            ceiling="matmul.fp8" if executor.native and p["stage"] == "gemm" else None,
            baseline_case=baseline, extra_metrics=error.metrics, facts=facts,
            paired_ratios={"quant_cost": gemm_alone} if gemm_alone else {},
            rewind=state.rewinder() if mode.policy == "delayed" else None)

    def device_bytes(self, case: Case, backend: Backend) -> int:
        p = case.params
        m, k, n = p["m"], p["k"], p["n"]
        operands = 2 * (m * k + k * n + m * n) + 4 * 2 * m * k  # bf16 a, b, out; fp32 draws
        history = 2 * 4 * m * k if p["mode"] != "bf16" else 0  # delayed/static: earlier steps
        quantized = (m * k + k * n) * (1 + 4)  # fp8 values and their fp32 dequantization
        on_device = backend.reference_device == backend.device
        references = 8 * (3 * m * n + m * k + k * n) if on_device else 0  # exact, quantized exact, check
        return operands + history + quantized + references

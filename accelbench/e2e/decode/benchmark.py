"""The decode benchmarks: their cases, what one timed call is, and how their figures are shown."""
from __future__ import annotations

import dataclasses
import itertools
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import torch

from accelbench.backends.base import Backend
from accelbench.benchmark import Benchmark, Case, Work, Workload
from accelbench.e2e.decode.fp8_linear import Fp8Linears
from accelbench.e2e.decode.model import Llama
from accelbench.e2e.decode.tensor_parallel import all_reduce_sum, parameters_per_rank, shard_config, shard_of
from accelbench.e2e.decode.tensor_parallel import unsupported as tp_unsupported
from accelbench.e2e.decode.weights import check_checkpoint, checkpoint_config, load_checkpoint, synthetic_weights, tiny_config
from accelbench.errors import CaseSkipped, UsageError
from accelbench.metrics import MEMORY_NOTES
from accelbench.microbench.membw import MemoryBandwidth, human_bytes
from accelbench.models import MODELS, ModelConfig
from accelbench.records import Accuracy, Metric, RooflineWork
from accelbench.stats import SampleStats, percentile
from accelbench.timing import StepMarks
from accelbench.view import FloorFraction, OverviewRow, Plot, PrefillModel, StepModel, TableView


from accelbench.e2e.decode.engines import EagerEngine, GraphEngine, HfEngine
from accelbench.e2e.decode.parts import fp8_activation_quantizer, time_without_projections
from accelbench.e2e.decode.quality import CHECK_STEPS, Fp8Cost, TextScore, check_logits, text_tokens

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}
ENGINES = ("eager", "graphs", "hf")
KEEP_CALLS = 16  # calls whose per-step events are kept for TTFT and TPOT
# A 4-layer Llama-3-shaped model small enough for a CPU's quick run (not a published model).
# Its 154 MB of fp32 weights read per step exceed 4x a 32 MiB last-level cache: device memory on such a CPU.
TINY = tiny_config("tiny-llama3", hidden=512, heads=8, kv_heads=2, head_dim=64, intermediate=1536, layers=10,
                   vocab=16384, max_positions=8192)
CONFIGS = {**MODELS, TINY.name: TINY}


@dataclass(frozen=True)
class Grid:
    models: tuple[str, ...]
    dtypes: tuple[str, ...]
    batches: tuple[int, ...]
    prompts: tuple[int, ...]
    new_tokens: int
    # "none", "w8a8-MODE" (FP8 weights and activations) or "w8-MODE" (FP8 weights only) of the decoder
    # layers' projections; "w8a8+head-MODE": the output projection too. fp8_linear.py
    fp8: tuple[str, ...] = ("none",)
    engines: tuple[str, ...] = ENGINES


SUITES = {
    # No graphs case: on a fresh GPU machine each compiles for 30-60 s (Inductor with coordinate-descent
    # tuning; 64 s for llama3.2-1b on an H100, a fifth of the whole quick suite), and the quick suite
    # is to take under 5 minutes there (suite_notes says so in `bench list`).
    "quick": [Grid(("tiny-llama3",), ("fp32", "bf16"), (1,), (32,), 8, engines=("eager", "hf")),
              Grid(("tiny-llama3",), ("bf16",), (1,), (32,), 8, ("w8a8-row",), engines=("eager",)),
              Grid(("llama3.2-1b",), ("bf16",), (1,), (128,), 32, engines=("eager", "hf")),
              Grid(("llama3.2-1b",), ("bf16",), (1,), (128,), 32, ("w8a8-row",), engines=("eager",))],
    # Every engine at batch 1; the batch sweep and FP8 on the engines that scale (eager is
    # launch-bound at any batch a GPU serves).
    "standard": [Grid(("llama3.1-8b",), ("bf16",), (1,), (512,), 256),
                 Grid(("llama3.1-8b",), ("bf16",), (1, 16), (512,), 256,
                      ("w8a8-row", "w8a8-tensor", "w8a8+head-tensor", "w8-row"),
                      engines=("graphs",)),
                 Grid(("llama3.1-8b",), ("bf16",), (4, 16, 64), (512,), 256, engines=("graphs", "hf")),
                 Grid(("llama3.2-1b", "llama3.2-3b", "qwen2.5-7b", "mistral-7b", "llama3.1-70b"), ("bf16",), (1,), (512,), 256),
                 # A long prefill (TTFT at 4096 prompt tokens) on the eager engine: its prefill is the
                 # graphs engine's, without a second compile.
                 Grid(("llama3.1-8b",), ("bf16",), (1,), (4096,), 32, engines=("eager",))],
    "full": [Grid(tuple(MODELS), ("bf16",), (1, 2, 4, 8, 16, 32, 64, 128, 256), (128, 512, 2048, 8192), 256,
                  ("none", "w8a8-row", "w8-row"))],
}
TP_SUITES = {
    "quick": [Grid(("tiny-llama3",), ("fp32", "bf16"), (1,), (32,), 8)],
    "standard": [Grid(("llama3.1-70b", "llama3.1-8b"), ("bf16",), (1, 16), (512,), 256)],
    "full": [Grid(("llama3.1-70b", "llama3.1-8b"), ("bf16",), (1, 4, 16, 64), (512, 2048), 256)],
}
FLOOR_ARRAY_BYTES = 2**30  # the floor probe's copy: 2 x 1 GiB, at least 4x any GPU's L2
FLOOR_CASE = Case("floor/copy", {"engine": "floor"})


def grid_cases(grids: list[Grid], engines: tuple[str, ...] = ENGINES, tag: str = "",
               extra: Optional[dict[str, Any]] = None) -> list[Case]:
    """Every case of `grids` on those of `engines` each grid names; FP8 variants run on our engines
    only (transformers runs the model's dtype)."""
    out = []
    for g in grids:
        for model, dtype, batch, prompt, fp8 in itertools.product(g.models, g.dtypes, g.batches, g.prompts, g.fp8):
            for engine in (e for e in engines if e in g.engines and (fp8 == "none" or e != "hf")):
                params = {"model": model, "engine": engine, "dtype": dtype, "fp8": fp8, "batch": batch,
                          "prompt": prompt, "new_tokens": g.new_tokens, **(extra or {})}
                precision = dtype if fp8 == "none" else f"{dtype}-{fp8}"
                out.append(Case(f"{model}/{tag}{engine}/{precision}/b{batch}/p{prompt}/n{g.new_tokens}", params,
                                matmul_dtypes=(dtype,)))
    return out


class Decode(Benchmark):
    # A decode case is known by its decode steps' rate; the floor probe (floor/copy) by its GB/s.
    headline_metrics = ("decode_tokens_per_s", "tokens_per_s", "gbps")
    # Devices are compared on the same work only: the same model, batch, prompt, new tokens,
    # engine and precision (OverviewRow.compare_on).
    SAME_WORK = ("model", "batch", "prompt", "new_tokens", "engine", "dtype", "fp8")
    overview = (
        OverviewRow("decode tokens/s, batch 1, unquantized", "decode_tokens_per_s", (("batch", 1), ("fp8", "none")),
                    same=("model",), compare_on=SAME_WORK, order=70),
        OverviewRow("decode TPOT, batch 1, unquantized (lower is better)", "tpot", (("batch", 1), ("fp8", "none")),
                    higher_is_better=False, of_best="decode_tokens_per_s", same=("model",), compare_on=SAME_WORK,
                    order=71),
        OverviewRow("decode tokens/s, largest batch every device ran, unquantized", "decode_tokens_per_s",
                    (("fp8", "none"),), same=("model", "batch"), compare_on=SAME_WORK, largest="batch", order=72,
                    priced=("decode tokens", "tokens")),
        # Priced too: what FP8 saves, beside what it costs in accuracy (the procurement view adds the
        # accuracy benchmark's delta for the same recipe where a run has it).
        OverviewRow("decode tokens/s, batch 1, FP8 W8A8 per tensor", "decode_tokens_per_s",
                    (("batch", 1), ("fp8", "w8a8-tensor")), same=("model",), compare_on=SAME_WORK, order=73,
                    priced=("decode tokens, FP8 w8a8-tensor", "tokens"), recipe="fp8",
                    absent="no w8a8-tensor case at batch 1 (the quick suite runs FP8 decode as w8a8-row only)"),
        OverviewRow("decode energy efficiency", "tokens_per_j", same=("model", "batch"), compare_on=SAME_WORK,
                    order=91),
    )
    # A decode case's figures; the floor probe (floor/copy) has only its GB/s.
    table = TableView(("decode_tokens_per_s", "tpot", "floor_fraction_measured_bw", "floor_fraction_datasheet_bw",
                       "kl_vs_unquantized", "tokens_per_s", "gbps", "time"),
                      more=("ttft", "tpot_p90", "achieved_bw", "top1_vs_unquantized", "perplexity"),
                      lower_is_better=("tpot", "kl_vs_unquantized", "time"),
                      names=(("decode_tokens_per_s", "tokens/s"), ("tpot", "TPOT"), ("floor_fraction_measured_bw", "of floor (measured bw)"),
                             ("floor_fraction_datasheet_bw", "of floor (datasheet bw)"),
                             ("kl_vs_unquantized", "KL vs unquantized")))
    plots = (Plot("LLM decode: throughput and time per output token vs batch", x="batch", y=("decode_tokens_per_s", "tpot"),
                  series=("model", "prompt", "engine", "dtype", "fp8"), defaults=(("fp8", "none"),), formats=(("prompt", "p{}"),),
                  unnamed=("none",), x_label="batch", y_labels=("decode tokens/s (batch / TPOT)", "TPOT (ms)"),
                  y_scales=(1.0, 1e3)),)

    # A step's fraction of the memory-bandwidth floor: floor time (bytes a step must read /
    # bandwidth) over the measured time per step, with the run's measured device-memory ceiling
    # (`membw.device`, which the floor probe measures first) where it has one, else the datasheet's.
    # And the step predicted from its parts (accelbench/explain/model.py): the weights at the same
    # measured bandwidth, plus the step without its projections where the case timed it
    # (--step-parts), else the KV cache at that bandwidth and the rest unexplained; the prefill
    # from the run's measured matmul rate plus the prefill without its projections.
    derived = (FloorFraction("floor_fraction", "bytes_per_step", "tpot", "membw.device",
                             only_where=(("memory_level", "device"),)),
               StepModel("tpot", "weight_bytes_streamed", "bytes_per_step", "membw.device",
                         only_where=(("memory_level", "device"),), fixed_metric="tpot_without_projections",
                         projections_metric="projections_timed", untimed_weights_fact="weight_bytes_untimed"),
               PrefillModel("ttft", "prefill_projection_flops", "output_layer_bytes", "matmul_dtype", "membw.device",
                            "ttft_without_projections"))

    @classmethod
    def roofline_work(cls, params, facts):
        """One decode step: about 2 FLOPs per parameter per sequence, over the bytes the step reads
        (weights and KV cache), in the time of one step (TPOT)."""
        if "parameters" not in facts or not facts.get("bytes_per_step") or "batch" not in params:
            return None
        return RooflineWork("decode", 2.0 * facts["parameters"] * params["batch"], float(facts["bytes_per_step"]), "tpot")
    name = "decode"
    description = ("LLM decode (Llama family, synthetic weights): TTFT, TPOT, tokens/s, fraction of the "
                   "memory-bandwidth floor; eager, graphs and Hugging Face engines")
    suite_notes = {"quick": "the graphs engine (torch.compile, then a captured step: 30-60 s to compile per case on a "
                            "GPU); standard and full run it on every model they list"}

    def __init__(self) -> None:
        self.checkpoint: Optional[tuple[Path, ModelConfig]] = None
        self.text_tokens: Optional[list[int]] = None
        self.text_name = ""
        self.step_parts = False  # also time each case's step and prefill without their projections

    run_options = ("weights", "text", "step_parts")  # bench run --weights DIR [--text FILE] [--step-parts]

    def configure(self, option: str, value: Any) -> None:
        if option == "step_parts":
            self.step_parts = bool(value)
            return
        {"weights": self.use_weights, "text": self.use_text}[option](Path(value))

    def use_text(self, text_file: Path) -> None:
        """Report the perplexity of this local text (needs --weights: the checkpoint's tokenizer)."""
        if self.checkpoint is None:
            raise UsageError("--text needs --weights: the text is tokenized by the checkpoint's tokenizer")
        self.text_tokens, self.text_name = text_tokens(self.checkpoint[0], Path(text_file)), Path(text_file).name

    def use_weights(self, directory: Path) -> None:
        """Run a local Hugging Face checkpoint instead of the synthetic models: its config.json
        gives the architecture; its tensors are checked against it now, before any case runs."""
        config = checkpoint_config(directory)
        check_checkpoint(directory, config)
        self.checkpoint = (Path(directory), config)

    def _grids(self, grids: list[Grid]) -> list[Grid]:
        if self.checkpoint is None:
            return grids
        name = self.checkpoint[1].name  # the suite's shapes, with the checkpoint as the one model
        return list(dict.fromkeys(dataclasses.replace(g, models=(name,)) for g in grids))

    def _config(self, name: str) -> ModelConfig:
        if self.checkpoint is not None and name == self.checkpoint[1].name:
            return self.checkpoint[1]
        return CONFIGS[name]

    def cases(self, suite: str) -> list[Case]:
        return [FLOOR_CASE] + grid_cases(self._grids(SUITES[suite]))

    def device_bytes(self, case: Case, backend: Backend) -> Optional[int]:
        p = case.params
        if p["engine"] == "floor":
            return None
        config, element = self._config(p["model"]), DTYPES[p["dtype"]].itemsize
        params, ranks = self._parameters_here(config), self._ranks()
        weights = params * element * (2 if p["engine"] == "hf" else 1)  # hf holds its own copy
        weights += params * (p["fp8"] != "none")  # FP8 copies of the projections
        cache = p["batch"] * (p["prompt"] + p["new_tokens"]) * config.kv_bytes_per_token(element) // ranks
        activations = p["batch"] * p["prompt"] * (4 * config.hidden + 2 * config.intermediate // ranks) * element * 2
        logits = p["batch"] * (CHECK_STEPS + 1) * config.vocab * 4
        return int(weights + cache + activations + 2 * logits)

    def budget_estimate(self, case: Case) -> Optional[tuple[str, float]]:
        """A case's bytes read per call from its model's shape alone (every parameter and the mean KV
        cache each step; with FP8, one byte per parameter, a lower bound): building a 1B-parameter
        model only to skip it costs a CPU half a minute. A lower bound errs short, so a case that
        would fit is never skipped by it; the exact count follows in `prepare`."""
        p = case.params
        if p["engine"] == "floor" or type(self) is not Decode:  # tensor parallel: a rank reads its shard
            return None
        config, itemsize = self._config(p["model"]), DTYPES[p["dtype"]].itemsize
        kv = p["batch"] * config.kv_bytes_per_token(itemsize) * (p["prompt"] + (p["new_tokens"] - 1) / 2 + 0.5)
        weights = config.streamed_parameters() * (itemsize if p["fp8"] == "none" else 1)
        return f"{p['engine']}/{p['dtype']}/{p['fp8']}", float(p["new_tokens"] * (weights + kv))

    def prepare(self, case: Case, backend: Backend) -> Workload:
        p = case.params
        if p["engine"] == "floor":
            return self._floor(backend)
        config, dtype = self._config(p["model"]), DTYPES[p["dtype"]]
        if p["dtype"] == "bf16" and not backend.supports("bf16"):
            raise CaseSkipped("bf16 is not supported by this backend")
        if p["engine"] == "graphs" and not backend.supports("graphs") and backend.compile_backend() is None:
            raise CaseSkipped(f"the {backend.name} backend has no graphs"
                              + (" in this mode (HPU graphs need lazy mode)" if backend.name == "hpu" else "")
                              + " and no torch.compile backend for the step")
        if p["engine"] == "hf":
            try:
                import transformers  # noqa: F401
            except ImportError:
                raise CaseSkipped("transformers is not installed (pip install 'accelbench[decode]')") from None
        batch, prompt_len, new = p["batch"], p["prompt"], p["new_tokens"]
        device = backend.device
        weights, reference_model = self._model(config, dtype, backend)
        model = reference_model
        gen = torch.Generator(device="cpu").manual_seed(batch * 7919 + prompt_len)
        prompt = torch.randint(0, config.vocab, (batch, prompt_len), generator=gen).to(device)
        fp8, cost = None, Fp8Cost()
        score = TextScore(self.text_tokens, self.text_name)
        if p["fp8"] != "none":
            kind, _, mode = p["fp8"].partition("-")
            head = reference_model.head if kind.endswith("+head") else None
            try:
                fp8 = Fp8Linears(reference_model.w, config.layers, mode, kind.split("+")[0] == "w8", backend, head)
            except ValueError as exc:
                raise CaseSkipped(str(exc)) from None
            fp8.choose_kernels(rows=batch)  # a decode step multiplies `batch` rows
            model = Llama(reference_model.config, reference_model.w, linear=fp8, reduce=reference_model.reduce)
        clock = StepMarks(backend, keep_calls=KEEP_CALLS)
        engine = {"eager": EagerEngine, "graphs": GraphEngine, "hf": HfEngine}[p["engine"]](
            model, prompt, new, clock, backend)

        def check(result: tuple[torch.Tensor, torch.Tensor]) -> Accuracy:
            accuracy = check_logits(model, prompt, *result, p["dtype"] if fp8 is None else "fp8",
                                    backend.reference_device)
            if fp8 is not None and accuracy.passed:
                cost.measure(reference_model, model, prompt, result[0])
            if accuracy.passed:
                score.measure(model, reference_model if fp8 is not None else None, device)
            return accuracy

        # Read per step (on this rank): every weight it holds but the embedding table, only gathered.
        streamed_params = sum(t.numel() for n, t in weights.items()
                              if n != "model.embed_tokens.weight" or config.tie_embeddings)
        streamed = streamed_params * dtype.itemsize
        if fp8 is not None:  # the projections are read as FP8 values and their scales
            streamed += fp8.fp8_bytes() - sum(q.q.numel() for q in fp8.q.values()) * dtype.itemsize
        kv_token = reference_model.config.kv_bytes_per_token(dtype.itemsize)
        # The cache a step reads grows by one position a step: its mean over the decode steps.
        mean_kv = batch * kv_token * (prompt_len + (new - 1) / 2 + 0.5)
        bytes_per_step = streamed + mean_kv
        here = reference_model.config  # this rank's shard where tensor-parallel
        prefill_flops = 2 * streamed_params * batch * prompt_len \
            + 2 * batch * here.layers * here.heads * here.head_dim * prompt_len * prompt_len  # QK^T and PV, causal
        # What the prefill's projections multiply: every position through every projection but the
        # output layer, which runs on the last position only (read once: a bandwidth cost).
        head_params = weights[reference_model.head_weight].numel()
        prefill_projection_flops = 2 * (streamed_params - head_params) * batch * prompt_len
        head_bytes = head_params * dtype.itemsize if fp8 is None or fp8.head is None else head_params
        spec = backend.spec()
        llc = backend.cache_bytes()
        # Weights that fit in (or near) the last-level cache are read from the cache: no floor fraction.
        memory = "unknown" if llc is None else "device" if bytes_per_step >= 4 * llc else "cache"

        def step_metrics(stats: SampleStats) -> list[Metric]:
            ttft, steps = sorted(clock.first()), sorted(clock.steps())
            tpot = percentile(steps, 50)
            out = [Metric("ttft", percentile(ttft, 50), "s", "prefill + first token, median over calls"),
                   Metric("tpot", tpot, "s", f"median over {len(steps)} decode steps"),
                   Metric("tpot_p90", percentile(steps, 90), "s"),
                   Metric("decode_tokens_per_s", batch / tpot, "tokens/s", "batch / TPOT"),
                   Metric("achieved_bw", bytes_per_step / tpot / 1e9, "GB/s",
                          MEMORY_NOTES.get(memory, "weights (embedding table excluded) + KV cache read per step, over TPOT"))]
            peak_dtype = "fp8" if p["fp8"].startswith("w8a8") else p["dtype"]
            peak = spec.peak(peak_dtype) if spec else None
            out.append(Metric("prefill_mfu", 100.0 * prefill_flops / percentile(ttft, 50) / peak if peak else None, "%",
                              f"of the {peak_dtype} peak" if peak else f"no {peak_dtype} peak known for this device"))
            return out + cost.metrics() + score.found + parts_metrics()

        def parts_metrics() -> list[Metric]:
            """The step and the prefill without their projections (parts.py), on this engine."""
            if not self.step_parts or p["engine"] not in ("eager", "graphs"):
                return []
            quantize = fp8_activation_quantizer(fp8) if fp8 is not None else None
            ttft_rest, tpot_rest = time_without_projections(type(engine), model, prompt, new, backend, quantize,
                                                            tensor_parallel=self._ranks() > 1)
            what = "every projection replaced by a stand-in that reads no weight (parts.py), same engine"
            out = [Metric("tpot_without_projections", tpot_rest, "s", f"the decode step with {what}"),
                   Metric("ttft_without_projections", ttft_rest, "s", f"the prefill with {what}")]
            timed = fp8.projections_timed_s() if fp8 is not None else None
            if timed is not None:
                out.append(Metric("projections_timed", timed, "s", "a step's FP8 projections: each one's chosen kernel "
                                  "timed over every layer's weights before capture (fp8_linear.choose_kernels)"))
            return out

        return Workload(
            run=engine.run, check=check, work=Work(tokens=batch * new), working_set_bytes=int(streamed),
            # A call's cost grows with the bytes its steps read: predicts larger models' calls
            # from smaller ones of the same engine and precision, so they are skipped uncalled.
            budget_work=(f"{p['engine']}/{p['dtype']}/{p['fp8']}", float(new * bytes_per_step)),
            graph_safe=False,  # the graphs engine captures its own step; the others are what they are
            no_flush_reason="a generation streams the weights every step; nothing stays cached",
            extra_metrics=step_metrics,
            # A call made only to measure its cost (on one thread, admission's budget probe) is no
            # step of the timed calls: its marks are dropped, not mixed into TTFT and TPOT.
            rewind=clock.calls.clear,
            # A call is hundreds of steps: a few calls make a stable median.
            timing={"min_samples": 3, "warmup_min_iters": 1, "warmup_s": 0.0, "min_time_s": 0.0},
            facts={"bytes_per_step": bytes_per_step, "memory_level": memory, "weight_bytes_streamed": streamed,
                   "parameters": config.parameters(),
                   "weights": f"checkpoint {self.checkpoint[0]}" if self.checkpoint else "synthetic (seeded)",
                   "published_model": config.name in MODELS,
                   "kv_cache_bytes": batch * (prompt_len + new) * kv_token, "prefill_flops": prefill_flops,
                   "prefill_projection_flops": prefill_projection_flops, "output_layer_bytes": head_bytes,
                   # What a step streams besides the FP8 projections (the bf16 output layer, norms):
                   # modelled where those projections are timed (projections_timed).
                   **({"weight_bytes_untimed": streamed - fp8.fp8_bytes()} if fp8 is not None else {}),
                   "matmul_dtype": "fp8" if p["fp8"].startswith("w8a8") else p["dtype"],
                   "engine_detail": engine.detail, **({"fp8_execution": fp8.execution} if fp8 else {})})

    def _ranks(self) -> int:
        return 1

    def _parameters_here(self, config: ModelConfig) -> int:
        return config.parameters()

    def _weights(self, config: ModelConfig, dtype: torch.dtype, backend: Backend, shard=None) -> dict:
        if self.checkpoint is not None and config is self.checkpoint[1]:
            weights = load_checkpoint(self.checkpoint[0], config, dtype, backend.device)
            return {n: shard(n, t) for n, t in weights.items()} if shard else weights
        return synthetic_weights(config, dtype, backend.device, shard=shard, generator=backend.generator)

    def _model(self, config: ModelConfig, dtype: torch.dtype, backend: Backend) -> tuple[dict, Llama]:
        weights = self._weights(config, dtype, backend)
        return weights, Llama(config, weights)

    @staticmethod
    def _floor(backend: Backend) -> Workload:
        """A copy of 2 x 1 GiB (at least 2 x 4x the last-level cache) through membw's own kernel:
        the run's measured `membw.device` ceiling, which the floor is taken from."""
        cache = backend.cache_bytes() or 0
        size = max(FLOOR_ARRAY_BYTES if backend.device.type != "cpu" else 2**26, 1 << math.ceil(math.log2(2 * cache or 1)))
        case = Case(f"torch/copy/fp32/{human_bytes(size)}", {"impl": "torch", "kernel": "copy", "dtype": "fp32",
                                                            "array_bytes": size})
        workload = MemoryBandwidth().prepare(case, backend)
        if workload.ceiling != "membw.device":
            raise CaseSkipped("the last-level cache size is unknown: no device-memory figure can be measured, "
                              "the floor falls back to the datasheet")
        workload.facts["purpose"] = "the run's measured memory bandwidth, for the decode floor"
        return workload



class TensorParallelDecode(Decode):
    """The same decode across the ranks of a multi-rank run (bench run --bench decode-tp --nproc N,
    or under torchrun / srun), the model split over all of them (tensor_parallel.py). Figures are
    per rank where they concern memory: bytes per step are one rank's shard and KV cache, so the
    floor fraction says how close each rank came to its own memory's floor."""

    name = "decode-tp"
    description = ("LLM decode with tensor parallelism over all ranks of the run: TTFT, TPOT, tokens/s, "
                   "fraction of each rank's memory-bandwidth floor")
    distributed = True
    suite_notes = {"quick": "models other than tiny-llama3 (its graphs cases compile for 30-60 s each)"}

    def cases(self, suite: str) -> list[Case]:
        return [FLOOR_CASE] + grid_cases(self._grids(TP_SUITES[suite]), engines=("eager", "graphs"), tag="tp/",
                                         extra={"tp": "all ranks"})

    def _ranks(self) -> int:
        import torch.distributed as dist
        return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1

    def _parameters_here(self, config: ModelConfig) -> int:
        return parameters_per_rank(config, self._ranks())

    def prepare(self, case: Case, backend: Backend) -> Workload:
        if case.params["engine"] != "floor":
            why = tp_unsupported(self._config(case.params["model"]), self._ranks())
            if case.params["engine"] == "graphs" and backend.supports("graphs"):
                why = why or backend.graph_collectives_unavailable()  # the step's all-reduces are captured
            if why:
                raise CaseSkipped(why)
        workload = super().prepare(case, backend)
        workload.facts["ranks"] = self._ranks()
        return workload

    def _model(self, config: ModelConfig, dtype: torch.dtype, backend: Backend) -> tuple[dict, Llama]:
        import torch.distributed as dist
        ranks, rank = dist.get_world_size(), dist.get_rank()
        weights = self._weights(config, dtype, backend, shard=shard_of(rank, ranks))
        return weights, Llama(shard_config(config, ranks), weights, reduce=all_reduce_sum())


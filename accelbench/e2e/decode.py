"""End-to-end LLM decode (design.md §4, LLM decode): how fast a Llama-family model generates
tokens, and how close that is to the memory-bandwidth floor.

One timed call is one whole greedy generation: prefill of the prompt, then `new_tokens - 1`
single-token decode steps on a static KV cache. The harness times the call end to end on the
device's clock; inside it, the engine marks the first token and every step with the harness's
`timing.StepMarks` (the same clock), which gives TTFT = prefill + first token and each step's
time, so TPOT = (end-to-end - TTFT) / (new_tokens - 1) is reported as the median and p90 over
steps of the timed calls.

Engines run the same cases from the same weights:
- `eager`: the decoder of `llama.py`, one kernel launch at a time (launch-bound at batch 1);
- `graphs`: the same decoder, its decode step captured once as a device graph (CUDA graphs, HPU
  graphs in lazy mode) and replayed for every step; prefill eager;
- `hf`: Hugging Face transformers' `generate` (greedy, its default dynamic cache), what users would
  otherwise run; needs `transformers` (pip install 'accelbench[decode]').

Bytes per step = every weight but the embedding table (only gathered; a tied table is read as the
output projection) + the KV cache the step attends to. Fraction of the floor = (bytes / bandwidth)
/ TPOT, with the bandwidth the run's measured `membw.device` ceiling (each decode run measures one
first: the `floor/copy` case) or else the datasheet's; the tables say which (store.py).

Correctness: the logits of the first steps of a call are checked against an eager reference, a
forward pass without cache over the prompt and the generated tokens, in the same dtype.
"""
from __future__ import annotations

import contextlib
import dataclasses
import itertools
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import torch

from accelbench.accuracy import ErrorMeter
from accelbench.backends.base import Backend
from accelbench.benchmark import Benchmark, Case, Work, Workload
from accelbench.e2e.fp8_linear import Fp8Linears, kl_and_agreement
from accelbench.e2e.llama import KVCache, Llama, StaticStep
from accelbench.e2e.tensor_parallel import all_reduce_sum, parameters_per_rank, shard_config, shard_of
from accelbench.e2e.tensor_parallel import unsupported as tp_unsupported
from accelbench.e2e.weights import (check_checkpoint, checkpoint_config, hf_config_dict, load_checkpoint,
                                    synthetic_weights, tiny_config)
from accelbench.errors import CaseSkipped, UsageError
from accelbench.metrics import MEMORY_NOTES
from accelbench.microbench.membw import MemoryBandwidth, human_bytes
from accelbench.models import MODELS, ModelConfig
from accelbench.records import Accuracy, Metric
from accelbench.stats import SampleStats, percentile
from accelbench.timing import StepMarks

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}
ENGINES = ("eager", "graphs", "hf")
CHECK_STEPS = 4  # logits checked against the eager reference: the first token and three steps
# Relative Frobenius error of those logits against a forward pass without cache in the same dtype
# (different kernels and reduction orders only).
LOGIT_TOLERANCE = {"fp32": 1e-4, "bf16": 4e-2, "fp8": 1e-1}
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
    "quick": [Grid(("tiny-llama3",), ("fp32", "bf16"), (1,), (32,), 8),
              Grid(("tiny-llama3",), ("bf16",), (1,), (32,), 8, ("w8a8-row",)),
              Grid(("llama3.2-1b",), ("bf16",), (1,), (128,), 32, ("none", "w8a8-row"))],
    # Every engine at batch 1; the batch sweep and FP8 on the engines that scale (eager is
    # launch-bound at any batch a GPU serves).
    "standard": [Grid(("llama3.1-8b",), ("bf16",), (1,), (512,), 256),
                 Grid(("llama3.1-8b",), ("bf16",), (1, 16), (512,), 256,
                      ("w8a8-row", "w8a8-tensor", "w8a8+head-tensor", "w8-row"),
                      engines=("graphs",)),
                 Grid(("llama3.1-8b",), ("bf16",), (4, 16, 64), (512,), 256, engines=("graphs", "hf")),
                 Grid(("llama3.2-1b", "llama3.2-3b", "qwen2.5-7b", "mistral-7b", "llama3.1-70b"), ("bf16",), (1,), (512,), 256)],
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
    name = "decode"
    description = ("LLM decode (Llama family, synthetic weights): TTFT, TPOT, tokens/s, fraction of the "
                   "memory-bandwidth floor; eager, graphs and Hugging Face engines")

    def __init__(self) -> None:
        self.checkpoint: Optional[tuple[Path, ModelConfig]] = None
        self.text_tokens: Optional[list[int]] = None
        self.text_name = ""

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

    def prepare(self, case: Case, backend: Backend) -> Workload:
        p = case.params
        if p["engine"] == "floor":
            return self._floor(backend)
        config, dtype = self._config(p["model"]), DTYPES[p["dtype"]]
        if p["dtype"] == "bf16" and not backend.supports("bf16"):
            raise CaseSkipped("bf16 is not supported by this backend")
        if p["engine"] == "graphs" and not backend.supports("graphs"):
            raise CaseSkipped(f"the {backend.name} backend has no graphs"
                              + (" in this mode (HPU graphs need lazy mode)" if backend.name == "hpu" else ""))
        if p["engine"] == "hf":
            try:
                import transformers  # noqa: F401
            except ImportError:
                raise CaseSkipped("transformers is not installed (pip install 'accelbench[decode]')") from None
        batch, prompt_len, new = p["batch"], p["prompt"], p["new_tokens"]
        device = backend.device
        weights, reference_model = self._model(config, dtype, device)
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
            accuracy = check_logits(model, prompt, *result, p["dtype"] if fp8 is None else "fp8")
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
            return out + cost.metrics() + score.found

        return Workload(
            run=engine.run, check=check, work=Work(tokens=batch * new), working_set_bytes=int(streamed),
            graph_safe=False,  # the graphs engine captures its own step; the others are what they are
            no_flush_reason="a generation streams the weights every step; nothing stays cached",
            extra_metrics=step_metrics,
            # A call is hundreds of steps: a few calls make a stable median.
            timing={"min_samples": 3, "warmup_min_iters": 1, "warmup_s": 0.0, "min_time_s": 0.0},
            facts={"bytes_per_step": bytes_per_step, "memory_level": memory, "weight_bytes_streamed": streamed,
                   "parameters": config.parameters(),
                   "weights": f"checkpoint {self.checkpoint[0]}" if self.checkpoint else "synthetic (seeded)",
                   "published_model": config.name in MODELS,
                   "kv_cache_bytes": batch * (prompt_len + new) * kv_token, "prefill_flops": prefill_flops,
                   "engine_detail": engine.detail, **({"fp8_execution": fp8.execution} if fp8 else {})})

    def _ranks(self) -> int:
        return 1

    def _parameters_here(self, config: ModelConfig) -> int:
        return config.parameters()

    def _weights(self, config: ModelConfig, dtype: torch.dtype, device: torch.device, shard=None) -> dict:
        if self.checkpoint is not None and config is self.checkpoint[1]:
            weights = load_checkpoint(self.checkpoint[0], config, dtype, device)
            return {n: shard(n, t) for n, t in weights.items()} if shard else weights
        return synthetic_weights(config, dtype, device, shard=shard)

    def _model(self, config: ModelConfig, dtype: torch.dtype, device: torch.device) -> tuple[dict, Llama]:
        weights = self._weights(config, dtype, device)
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


class Fp8Cost:
    """What FP8 costs in accuracy: the FP8 model against the model in its own dtype on the same
    weights and the same tokens (the prompt and the FP8 model's generation, teacher forcing):
    mean KL divergence of next-token distributions, and top-1 agreement."""

    def __init__(self) -> None:
        self.kl: Optional[float] = None
        self.agreement: Optional[float] = None

    def measure(self, reference: Llama, model: Llama, prompt: torch.Tensor, tokens: torch.Tensor) -> None:
        sequence = torch.cat([prompt, tokens[:, :-1]], dim=1)
        positions = torch.arange(sequence.shape[1], device=sequence.device)
        kls, agrees = [], []
        with torch.no_grad():
            for row in range(sequence.shape[0]):  # one sequence at a time: logits of every position are large
                seq = sequence[row:row + 1]
                kl, agree = kl_and_agreement(reference.forward(seq, positions, last=tokens.shape[1]),
                                             model.forward(seq, positions, last=tokens.shape[1]))
                kls.append(kl)
                agrees.append(agree)
        self.kl, self.agreement = sum(kls) / len(kls), sum(agrees) / len(agrees)

    def metrics(self) -> list[Metric]:
        if self.kl is None:
            return []
        return [Metric("kl_vs_unquantized", self.kl, "nats", "mean KL(unquantized || FP8) of next-token distributions"),
                Metric("top1_vs_unquantized", 100.0 * self.agreement, "%", "same greedy token as the unquantized model")]


class TextScore:
    """Perplexity of a local text under the case's model (and, for FP8, under the unquantized one)."""

    def __init__(self, tokens: Optional[list[int]], name: str):
        self.tokens, self.name = tokens, name
        self.found: list[Metric] = []

    def measure(self, model: Llama, reference: Optional[Llama], device: torch.device) -> None:
        if not self.tokens:
            return
        tokens = torch.tensor([self.tokens], device=device)
        note = f"{len(self.tokens)} tokens of {self.name}"
        self.found = [Metric("perplexity", perplexity(model, tokens), "", note)]
        if reference is not None:
            self.found.append(Metric("perplexity_unquantized", perplexity(reference, tokens), "", note))


MAX_TEXT_TOKENS = 1024


def text_tokens(checkpoint: Path, text_file: Path) -> list[int]:
    """The text's first MAX_TEXT_TOKENS tokens, by the checkpoint's own tokenizer (tokenizer.json,
    read locally)."""
    from tokenizers import Tokenizer
    path = checkpoint / "tokenizer.json"
    if not path.is_file():
        raise UsageError(f"{path}: not found: perplexity needs the checkpoint's tokenizer.json")
    ids = Tokenizer.from_file(str(path)).encode(text_file.read_text(encoding="utf-8")).ids[:MAX_TEXT_TOKENS]
    if len(ids) < 2:
        raise UsageError(f"{text_file}: fewer than 2 tokens of text")
    return ids


def perplexity(model: Llama, tokens: torch.Tensor) -> float:
    """exp(mean negative log-likelihood of each next token) over `tokens` [1, n], teacher forcing."""
    with torch.no_grad():
        logits = model.forward(tokens[:, :-1], torch.arange(tokens.shape[1] - 1, device=tokens.device))
        nll = torch.nn.functional.cross_entropy(logits[0].float(), tokens[0, 1:])
    return math.exp(float(nll))


class EagerEngine:
    detail = "static KV cache, one launch per op"

    def __init__(self, model: Llama, prompt: torch.Tensor, new: int, clock: StepMarks, backend: Backend):
        self.model, self.prompt, self.new, self.clock, self.backend = model, prompt, new, clock, backend
        batch, self.plen = prompt.shape
        self.cache = KVCache.empty(model.config, batch, self.plen + new, model.w["model.norm.weight"].dtype, prompt.device)
        self.tokens = torch.empty(batch, new, dtype=torch.long, device=prompt.device)
        self.positions = torch.arange(self.plen + new, device=prompt.device)  # sliced per step: no host copy
        self.logits = torch.empty(batch, CHECK_STEPS, model.config.vocab, dtype=torch.float32, device=prompt.device)

    def prefill(self) -> torch.Tensor:
        logits = self.model.forward(self.prompt, self.positions[:self.plen], self.cache, attend_to=self.plen,
                                    last=1)[:, -1]
        self.logits[:, 0].copy_(logits)
        token = logits.argmax(-1)
        self.tokens[:, 0].copy_(token)
        return token

    def run(self) -> tuple[torch.Tensor, torch.Tensor]:
        """One generation: prefill and the first token, then a step per token, each marked."""
        self.clock.start()
        self.begin(self.prefill())
        self.clock.mark()
        for i in range(1, self.new):
            logits, token = self.step_at(self.plen + i - 1)
            if i < CHECK_STEPS:
                self.logits[:, i].copy_(logits)
            self.tokens[:, i].copy_(token)
            self.backend.mark_step()
            self.clock.mark()
        return self.tokens, self.logits

    def begin(self, first: torch.Tensor) -> None:
        self._token = first

    def step_at(self, position: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(logits, next token) of the step that reads the token at `position`."""
        logits = self.model.forward(self._token[:, None], self.positions[position:position + 1], self.cache,
                                    attend_to=position + 1)[:, -1]
        self._token = logits.argmax(-1)
        return logits, self._token


class GraphEngine(EagerEngine):

    def __init__(self, model: Llama, prompt: torch.Tensor, new: int, clock: StepMarks, backend: Backend):
        super().__init__(model, prompt, new, clock, backend)
        if new < 6:
            raise CaseSkipped("the graphs engine needs at least 6 new tokens (capture advances the step 4 times)")
        self.step = StaticStep(model, self.cache, prompt.shape[0])
        self.step.start(self.prefill(), self.plen)
        step, self.detail = self.step, "static KV cache; decode step captured once as a device graph; prefill eager"
        tuning = contextlib.nullcontext()
        if backend.supports("triton"):
            # Fused by Inductor (norms, RoPE, SiLU, residual adds: one kernel each, not several),
            # then captured in our own graph, as gpt-fast's compiled decode step is. Coordinate-descent
            # tuning, as gpt-fast sets it, is also what makes Inductor turn a one-row matmul (batch 1)
            # into a Triton reduction tuned to stream the weight at full bandwidth.
            import torch._inductor.config as inductor
            step, tuning = torch.compile(self.step, fullgraph=True, dynamic=False), \
                inductor.patch(coordinate_descent_tuning=True)
            self.detail = self.detail.replace("decode step", "decode step compiled (torch.compile, coordinate-descent "
                                                             "tuning), then")
        try:
            with tuning:  # compilation happens on the first call, inside the capture's warm-up
                captured = backend.capture_graph(step)
        except Exception as exc:
            if step is self.step:
                raise
            backend.synchronize()
            self.detail = f"torch.compile failed ({str(exc).splitlines()[0][:120]}): eager step captured"
            self.step.start(self.tokens[:, 0], self.plen)
            captured = backend.capture_graph(self.step)
        if captured is None:
            raise CaseSkipped(f"the {backend.name} backend captured no graph")
        self.replay = captured.replay

    def begin(self, first: torch.Tensor) -> None:
        self.step.start(first, self.plen)

    def step_at(self, position: int) -> tuple[torch.Tensor, torch.Tensor]:
        self.replay()  # the graph keeps its own position
        return self.step.logits, self.step.token


class HfEngine:
    """transformers' `generate` on the same weights: greedy, exactly `new` tokens, its default cache."""

    detail = "transformers generate (greedy, default dynamic cache, eager)"

    def __init__(self, model: Llama, prompt: torch.Tensor, new: int, clock: StepMarks, backend: Backend):
        import transformers
        config = hf_config_dict(model.config)
        arch = getattr(transformers, config.pop("architectures")[0])
        config_cls = transformers.Qwen2Config if model.config.qkv_bias else transformers.LlamaConfig
        dtype = model.w["model.norm.weight"].dtype
        with torch.device(prompt.device):
            try:
                self.hf = arch._from_config(config_cls(**config), dtype=dtype).eval()
            except TypeError:  # transformers before 4.56 names it torch_dtype
                self.hf = arch._from_config(config_cls(**config), torch_dtype=dtype).eval()
        self.hf.load_state_dict(model.hf_state_dict(), strict=False)
        self.prompt, self.new, self.clock, self.backend = prompt, new, clock, backend
        self.detail = f"transformers {transformers.__version__} generate (greedy, default dynamic cache, eager)"

    def run(self) -> tuple[torch.Tensor, torch.Tensor]:
        clock = self.clock

        class Marks:  # transformers calls put() with the prompt, then with each new token
            def __init__(self):
                self.seen = 0

            def put(self, value):
                if self.seen:
                    clock.mark()
                self.seen += 1

            def end(self):
                pass

        clock.start()
        with torch.no_grad():
            out = self.hf.generate(self.prompt, max_new_tokens=self.new, min_new_tokens=self.new, do_sample=False,
                                   eos_token_id=None, pad_token_id=0, streamer=Marks(), output_logits=True,
                                   return_dict_in_generate=True)
        logits = torch.stack([x.float() for x in out.logits[:CHECK_STEPS]], dim=1)
        return out.sequences[:, self.prompt.shape[1]:], logits


def check_logits(model: Llama, prompt: torch.Tensor, tokens: torch.Tensor, logits: torch.Tensor,
                 dtype: str) -> Accuracy:
    """The first CHECK_STEPS logits of a generation against a forward pass without cache over the
    prompt and the generated tokens (teacher forcing), in the model's dtype."""
    k = logits.shape[1]
    sequence = torch.cat([prompt, tokens[:, :k - 1]], dim=1)
    with torch.no_grad():
        reference = model.forward(sequence, torch.arange(sequence.shape[1], device=sequence.device), last=k)
    meter = ErrorMeter()
    meter.add(logits, reference.double())
    agree = float((logits.argmax(-1) == reference.argmax(-1)).float().mean())
    return meter.result(LOGIT_TOLERANCE[dtype], f"{dtype} forward pass without cache over the prompt and the "
                        f"generated tokens, first {k} logits (top-1 agreement {agree:.3f})")


class TensorParallelDecode(Decode):
    """The same decode across the ranks of a multi-rank run (bench run --bench decode-tp --nproc N,
    or under torchrun / srun), the model split over all of them (tensor_parallel.py). Figures are
    per rank where they concern memory: bytes per step are one rank's shard and KV cache, so the
    floor fraction says how close each rank came to its own memory's floor."""

    name = "decode-tp"
    description = ("LLM decode with tensor parallelism over all ranks of the run: TTFT, TPOT, tokens/s, "
                   "fraction of each rank's memory-bandwidth floor")
    distributed = True

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
            if why:
                raise CaseSkipped(why)
        workload = super().prepare(case, backend)
        workload.facts["ranks"] = self._ranks()
        return workload

    def _model(self, config: ModelConfig, dtype: torch.dtype, device: torch.device) -> tuple[dict, Llama]:
        import torch.distributed as dist
        ranks, rank = dist.get_world_size(), dist.get_rank()
        weights = self._weights(config, dtype, device, shard=shard_of(rank, ranks))
        return weights, Llama(shard_config(config, ranks), weights, reduce=all_reduce_sum())

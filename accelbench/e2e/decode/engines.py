"""The engines one decode case runs on the same weights: eager, graphs (a captured or compiled
step), hf (transformers' generate)."""
from __future__ import annotations

import contextlib

import torch

from accelbench.backends.base import Backend
from accelbench.e2e.decode.model import KVCache, Llama, StaticStep
from accelbench.e2e.decode.weights import hf_config_dict
from accelbench.errors import CaseSkipped
from accelbench.timing import StepMarks
from accelbench.e2e.decode.quality import CHECK_STEPS


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
        if not backend.supports("graphs"):
            self.replay = self._compiled_step(backend)
            return
        step, self.detail = self.step, "static KV cache; decode step captured once as a device graph; prefill eager"
        tuning = contextlib.nullcontext()
        if backend.supports("triton"):
            # Fused by Inductor (norms, RoPE, SiLU, residual adds: one kernel each, not several),
            # then captured in our own graph, as gpt-fast's compiled decode step is. Coordinate-descent
            # tuning, as gpt-fast sets it, is also what makes Inductor turn a one-row matmul (batch 1)
            # into a Triton reduction tuned to stream the weight at full bandwidth.
            import torch._inductor.config as inductor
            # Each step compiles afresh: the same frame (StaticStep.__call__) is compiled once per
            # case (twice with --step-parts), and past Dynamo's recompile limit (8) it would stop
            # compiling it. Steps already captured replay their graphs without Dynamo.
            torch._dynamo.reset()
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

    def _compiled_step(self, backend: Backend):
        """Where the device has no graph replay but a torch.compile backend (Gaudi eager mode:
        `hpu_backend`, Intel's supported path), the step compiled by it and called each step."""
        name = backend.compile_backend()
        compiled = torch.compile(self.step, backend=name, fullgraph=True, dynamic=False)
        try:
            compiled()  # compiles on the first call (the step's state is reset by begin())
            backend.mark_step()
            backend.synchronize()
        except Exception as exc:
            raise CaseSkipped(f"torch.compile(backend={name!r}) failed on the decode step: "
                              f"{str(exc).splitlines()[0][:160]}") from None
        self.detail = (f"static KV cache; decode step compiled with torch.compile(backend={name!r}) and called each "
                       f"step (no graph replay on this {backend.name} device in its mode); prefill eager")
        return compiled

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



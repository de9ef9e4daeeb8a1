"""The suite's decoder (e2e/decode/model.py) as an lm-evaluation-harness language model, so that
every task is prompted and scored by lm-eval itself while every forward pass runs through the
suite's own model and its linear layers (the precision under test: FP8 executors included).

Scoring follows lm-eval's HFLM for a causal model: (context, continuation) pairs are encoded by
TemplateLM (trailing spaces of the context move to the continuation; the whole string is encoded
and split at the context's length), inputs are cut to the last `max_length` tokens, and a
continuation's log-likelihood is the sum of its tokens' log-probabilities, `is_greedy` whether
each was the argmax. Requests are batched longest first, right-padded: a causal model's outputs at
real positions never see the padding after them.
"""
from __future__ import annotations

import time
from typing import Callable, Optional

import torch
import torch.nn.functional as F

from lm_eval.api.model import TemplateLM

from accelbench.e2e.decode.model import KVCache, Llama, decode_eager, prefill


class SuiteLM(TemplateLM):
    def __init__(self, model: Llama, tokenizer, device: torch.device, dtype: torch.dtype, max_length: int,
                 eot_token_id: int, batch_tokens: int = 4096, max_gen_toks: int = 256,
                 progress: Optional[Callable[[int, int], None]] = None):
        """`tokenizer`: a `tokenizers.Tokenizer`; `eot_token_id`: the checkpoint's end-of-text token
        (the prefix of an empty context, padding, and a stop of generation). `batch_tokens`: padded
        tokens per forward pass. `progress(done, total)`: called after each batch of requests."""
        super().__init__()
        self._eot = eot_token_id
        self.model, self.tok, self._device, self.dtype = model, tokenizer, device, dtype
        self.max_length, self.batch_tokens, self.max_gen_toks = max_length, batch_tokens, max_gen_toks
        self.progress = progress or (lambda done, total: None)
        self.forward_s = 0.0  # seconds inside the model (forward passes and generation)
        self.tokens_scored = 0

    # --- tokenization (no special tokens: lm-eval's HFLM adds no BOS for Llama-family models) ---
    @property
    def eot_token_id(self) -> int:
        return self._eot

    def tok_encode(self, string: str, add_special_tokens: Optional[bool] = None, **kwargs) -> list[int]:
        return self.tok.encode(string, add_special_tokens=False).ids

    def tok_decode(self, ids: list[int]) -> str:
        return self.tok.decode(ids, skip_special_tokens=False)

    # --- scoring ---
    def loglikelihood(self, requests, disable_tqdm: bool = True):
        return super().loglikelihood(requests, disable_tqdm=True)  # the suite's progress line instead

    def _logprobs(self, batch: list[list[int]], need: list[int]) -> list[torch.Tensor]:
        """log_softmax over the vocabulary at the last `need[i]` positions of each sequence (fp32, on
        the host): the positions that predict a continuation's tokens, and no others."""
        width = max(map(len, batch))
        tokens = torch.full((len(batch), width), self.eot_token_id, dtype=torch.long)
        which, where = [], []
        for i, (seq, n) in enumerate(zip(batch, need)):
            tokens[i, :len(seq)] = torch.tensor(seq)
            which += [i] * n
            where += range(len(seq) - n, len(seq))
        rows = (torch.tensor(which, device=self._device), torch.tensor(where, device=self._device))
        start = time.perf_counter()
        with torch.inference_mode():
            logits = self.model.forward(tokens.to(self._device), torch.arange(width, device=self._device), rows=rows)
            flat = F.log_softmax(logits.float(), dim=-1).cpu()
        self.forward_s += time.perf_counter() - start
        self.tokens_scored += sum(map(len, batch))
        return list(flat.split(need))

    def _batches(self, order: list[int], lengths: list[int]):
        batch: list[int] = []
        for i in order:
            if batch and (len(batch) + 1) * lengths[batch[0]] > self.batch_tokens:
                yield batch
                batch = []
            batch.append(i)
        if batch:
            yield batch

    def _loglikelihood_tokens(self, requests, disable_tqdm: bool = False, **kwargs) -> list[tuple[float, bool]]:
        inputs, spans = [], []
        for _, context_enc, continuation_enc in requests:
            whole = (context_enc + continuation_enc)[-(self.max_length + 1):]
            inputs.append(whole[:-1])
            spans.append(continuation_enc[-(len(whole) - 1):])  # a context keeps >= 1 token: never [-0:]
        results: list[Optional[tuple[float, bool]]] = [None] * len(requests)
        # Requests whose model input is the same (MMLU's four one-token answers after one prompt)
        # share one forward pass: a causal model's outputs depend on the input alone.
        readers: dict[tuple[int, ...], list[int]] = {}
        for i, x in enumerate(inputs):
            readers.setdefault(tuple(x), []).append(i)
        unique = list(readers)
        need = [max(len(spans[i]) for i in readers[u]) for u in unique]
        order = sorted(range(len(unique)), key=lambda u: -len(unique[u]))
        done = 0
        for batch in self._batches(order, [len(x) for x in unique]):
            for u, logprobs in zip(batch, self._logprobs([list(unique[u]) for u in batch], [need[u] for u in batch])):
                for i in readers[unique[u]]:
                    target = torch.tensor(spans[i])
                    picked = logprobs[-len(target):]
                    results[i] = (float(picked.gather(1, target[:, None]).sum()),
                                  bool((picked.argmax(-1) == target).all()))
                done += len(readers[unique[u]])
            self.progress(done, len(requests))
        return results

    def loglikelihood_rolling(self, requests, disable_tqdm: bool = False) -> list[float]:
        from lm_eval.utils import get_rolling_token_windows, make_disjoint_window
        out = []
        for (text,) in [r.args for r in requests]:
            windows = [make_disjoint_window(w) for w in get_rolling_token_windows(
                self.tok_encode(text), self.prefix_token_id, self.max_length, context_len=1)]
            scores = self._loglikelihood_tokens([(None, ctx, cont) for ctx, cont in windows])
            out.append(sum(s for s, _ in scores))
        return out

    # --- generation ---
    def generate_until(self, requests, disable_tqdm: bool = False) -> list[str]:
        out = []
        for n, (context, kwargs) in enumerate([r.args for r in requests]):
            kwargs = dict(kwargs or {})
            until = kwargs.pop("until", None) or []
            until = [until] if isinstance(until, str) else list(until)
            eos_text = self.tok_decode([self.eot_token_id])
            until = until + [eos_text] * (eos_text not in until)
            limit = int(kwargs.pop("max_gen_toks", self.max_gen_toks))
            prompt = self.tok_encode(context)[-(self.max_length - limit):]
            out.append(self._greedy(prompt, limit, until))
            self.progress(n + 1, len(requests))
        return out

    def _greedy(self, prompt: list[int], limit: int, until: list[str]) -> str:
        """Greedy tokens after `prompt` with the static KV cache, until a stop string or `limit`
        tokens; the text before the first stop string (lm-eval's convention)."""
        start = time.perf_counter()
        cache = KVCache.empty(self.model.config, 1, len(prompt) + limit, self.dtype, self._device)
        with torch.inference_mode():
            token = prefill(self.model, torch.tensor([prompt], device=self._device), cache)
            ids = [int(token)]
            text = self.tok_decode(ids)
            while len(ids) < limit and int(token) != self.eot_token_id and not any(s in text for s in until):
                token, _ = decode_eager(self.model, token, len(prompt) + len(ids) - 1, cache)
                ids.append(int(token))
                text = self.tok_decode(ids)
        self.forward_s += time.perf_counter() - start
        self.tokens_scored += len(prompt) + len(ids)
        for stop in until:
            text = text.split(stop)[0]
        return text


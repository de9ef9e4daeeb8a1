"""A compact decoder of the Llama family (Llama 3.x, Qwen2.5, Mistral), the whole decode path in
one file, in the spirit of gpt-fast: RMSNorm, RoPE (with Llama 3's frequency scaling), grouped-query
attention through `scaled_dot_product_attention`, a SwiGLU MLP, a static KV cache, prefill, a
single-token decode step and greedy sampling. Weights are a plain dict in Hugging Face's names, so
a checkpoint loads as it is and the `hf` engine runs the same tensors.

The decode step comes in two forms. `forward` on a cache slice is what eager mode runs: attention
reads exactly the positions written so far. `StaticStep` reads the token and position from device
buffers, attends over the whole static cache under a mask and advances its own position, so that
one captured graph replays every step (CUDA graphs, HPU graphs) with no host work in between.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Optional

import torch
import torch.nn.functional as F

from accelbench.models import ModelConfig

Linear = Callable[[torch.Tensor, str], torch.Tensor]  # (activations, weight name) -> activations @ W^T (+ b)


def rope_frequencies(config: ModelConfig) -> torch.Tensor:
    """Inverse frequencies (fp32, head_dim / 2), with Llama 3's scaling where the config has it:
    long wavelengths divided by `factor`, short ones kept, a smooth blend between."""
    d = config.head_dim
    inv_freq = 1.0 / (config.rope_theta ** (torch.arange(0, d, 2, dtype=torch.float64) / d))
    s = config.rope_scaling
    if s is None:
        return inv_freq.float()
    wavelen = 2 * math.pi / inv_freq
    low_wavelen = s.original_max_positions / s.low_freq_factor
    high_wavelen = s.original_max_positions / s.high_freq_factor
    scaled = torch.where(wavelen > low_wavelen, inv_freq / s.factor, inv_freq)
    smooth = (s.original_max_positions / wavelen - s.low_freq_factor) / (s.high_freq_factor - s.low_freq_factor)
    blended = (1 - smooth) * scaled / s.factor + smooth * scaled
    medium = (wavelen >= high_wavelen) & (wavelen <= low_wavelen)
    return torch.where(medium, blended, scaled).float()


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    xf = x.float()
    return weight * (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps)).to(x.dtype)


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


@dataclass
class KVCache:
    """Keys and values, one tensor per layer: [batch, kv_heads, max_seq, head_dim] each. Separate
    tensors, not views of one, so that a compiled step writes each in place (Inductor copies a
    whole base tensor to write a view of it)."""

    k: list[torch.Tensor]
    v: list[torch.Tensor]

    @classmethod
    def empty(cls, config: ModelConfig, batch: int, max_seq: int, dtype: torch.dtype,
              device: torch.device) -> "KVCache":
        shape = (batch, config.kv_heads, max_seq, config.head_dim)
        return cls(*([torch.zeros(shape, dtype=dtype, device=device) for _ in range(config.layers)] for _ in "kv"))

    @property
    def max_seq(self) -> int:
        return self.k[0].shape[2]


class Llama:
    def __init__(self, config: ModelConfig, weights: dict[str, torch.Tensor], linear: Optional[Linear] = None,
                 reduce: Optional[Callable[[torch.Tensor], torch.Tensor]] = None):
        """`config` and `weights` may be one rank's shard of a tensor-parallel model (tensor_parallel.py):
        then `reduce` sums the row-parallel projections' partial outputs over the ranks. q/k/v and
        gate/up are stacked in `weights` itself (see hf_state_dict); `linear` (default: a matmul in
        the weights' dtype) multiplies by a projection given its name, stacked ones included."""
        self.config = config
        self.w = weights
        self.linear = linear or self._linear
        self.reduce = reduce or (lambda x: x)
        # q, k, v and gate, up are multiplied as two stacked weights: fewer, larger GEMMs per layer.
        for i in range(config.layers):
            self._stack(f"model.layers.{i}.self_attn", ("q_proj", "k_proj", "v_proj"), "qkv_proj")
            self._stack(f"model.layers.{i}.mlp", ("gate_proj", "up_proj"), "gate_up_proj")
        self.inv_freq = rope_frequencies(config).to(weights["model.norm.weight"].device)
        self.head = "model.embed_tokens" if config.tie_embeddings else "lm_head"  # the output projection
        self.head_weight = f"{self.head}.weight"

    def _stack(self, prefix: str, parts: tuple[str, ...], name: str) -> None:
        """Replace `parts` by one stacked weight (and bias), in the weights dict itself, so that the
        parts are freed: a model's weights are held once."""
        for kind in ("weight", "bias"):
            names = [f"{prefix}.{p}.{kind}" for p in parts]
            if names[0] in self.w:
                self.w[f"{prefix}.{name}.{kind}"] = torch.cat([self.w.pop(n) for n in names])

    def hf_state_dict(self) -> dict[str, torch.Tensor]:
        """The weights in Hugging Face's names (stacked ones split again, as views)."""
        c, out = self.config, {}
        for name, tensor in self.w.items():
            if ".qkv_proj." in name:
                sizes = [c.heads * c.head_dim, c.kv_heads * c.head_dim, c.kv_heads * c.head_dim]
                out.update({name.replace("qkv_proj", f"{x}_proj"): part for x, part in zip("qkv", tensor.split(sizes))})
            elif ".gate_up_proj." in name:
                out.update({name.replace("gate_up_proj", x): part for x, part in zip(("gate_proj", "up_proj"), tensor.chunk(2))})
            else:
                out[name] = tensor
        return out

    def _linear(self, x: torch.Tensor, name: str) -> torch.Tensor:
        return F.linear(x, self.w[f"{name}.weight"], self.w.get(f"{name}.bias"))

    def forward(self, tokens: torch.Tensor, positions: torch.Tensor, cache: Optional[KVCache] = None,
                attend_to: Optional[int] = None, mask: Optional[torch.Tensor] = None,
                last: Optional[int] = None, rows: Optional[tuple[torch.Tensor, torch.Tensor]] = None) -> torch.Tensor:
        """Logits [batch, T, vocab] for `tokens` [batch, T] at `positions` [T] (of the `last`
        positions only, where given: a prompt's logits would dwarf the model at large batch); or
        [N, vocab] at the N (sequence, position) pairs `rows` gives (scoring needs the logits of a
        continuation's positions alone: the output projection and its vocabulary-wide softmax are a
        fifth of a small model's work and most of its memory traffic).

        Without a cache: causal attention over `tokens` alone (the reference). With one: keys and
        values are written at `positions`, and attention reads the cache up to `attend_to`
        positions (eager), or the whole cache under `mask` [T, max_seq] (the static step)."""
        c, w = self.config, self.w
        batch, t = tokens.shape
        x = F.embedding(tokens, w["model.embed_tokens.weight"])
        freqs = positions.float()[:, None] * self.inv_freq[None, :]
        emb = torch.cat((freqs, freqs), dim=-1)
        cos, sin = emb.cos().to(x.dtype), emb.sin().to(x.dtype)
        for i in range(c.layers):
            p = f"model.layers.{i}"
            h = rms_norm(x, w[f"{p}.input_layernorm.weight"], c.rms_eps)
            q, k, v = self.linear(h, f"{p}.self_attn.qkv_proj").split(
                [c.heads * c.head_dim, c.kv_heads * c.head_dim, c.kv_heads * c.head_dim], dim=-1)
            q = q.reshape(batch, t, c.heads, c.head_dim).transpose(1, 2)
            k = k.reshape(batch, t, c.kv_heads, c.head_dim).transpose(1, 2)
            v = v.reshape(batch, t, c.kv_heads, c.head_dim).transpose(1, 2)
            q, k = q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin
            if cache is None:
                attn = attention(q, k, v, causal=True)
            else:
                keys, values = cache.k[i], cache.v[i]
                keys[:, :, positions], values[:, :, positions] = k, v  # an in-place index_put_, compiled or not
                if mask is None:
                    n = attend_to if attend_to is not None else cache.max_seq
                    attn = attention(q, keys[:, :, :n], values[:, :, :n], causal=t > 1, offset=n - t)
                else:
                    attn = attention(q, keys, values, mask=mask)
            x = x + self.reduce(self.linear(attn.transpose(1, 2).reshape(batch, t, c.heads * c.head_dim),
                                            f"{p}.self_attn.o_proj"))
            h = rms_norm(x, w[f"{p}.post_attention_layernorm.weight"], c.rms_eps)
            gate, up = self.linear(h, f"{p}.mlp.gate_up_proj").chunk(2, dim=-1)
            x = x + self.reduce(self.linear(F.silu(gate) * up, f"{p}.mlp.down_proj"))
        x = x[rows] if rows is not None else x if last is None else x[:, -last:]
        x = rms_norm(x, w["model.norm.weight"], c.rms_eps)
        return self.linear(x, self.head)


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool = False, offset: int = 0,
              mask: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Grouped-query attention: each group of q heads shares one k/v head. `offset`: the query's
    first position within the keys (a prompt after cached tokens)."""
    if causal and offset:
        t, s = q.shape[2], k.shape[2]
        mask = torch.arange(s, device=q.device)[None, :] <= torch.arange(t, device=q.device)[:, None] + offset
        causal = False
    groups = q.shape[1] // k.shape[1]
    if groups > 1 and not _SDPA_GQA:  # before torch 2.5: every k/v head copied per q head of its group
        k, v = k.repeat_interleave(groups, dim=1), v.repeat_interleave(groups, dim=1)
    gqa = {"enable_gqa": True} if groups > 1 and _SDPA_GQA else {}
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=causal, **gqa)


def _sdpa_has_gqa() -> bool:
    try:
        x = torch.zeros(1, 2, 1, 4)
        F.scaled_dot_product_attention(x, x[:, :1], x[:, :1], enable_gqa=True)
        return True
    except TypeError:
        return False


_SDPA_GQA = _sdpa_has_gqa()  # reads the shared k/v heads in place, no copies


def prefill(model: Llama, prompt: torch.Tensor, cache: KVCache) -> torch.Tensor:
    """Run the prompt [batch, P] through the model, filling the cache; the first new token [batch]."""
    positions = torch.arange(prompt.shape[1], device=prompt.device)
    logits = model.forward(prompt, positions, cache, attend_to=prompt.shape[1], last=1)
    return logits[:, -1].argmax(-1)


def decode_eager(model: Llama, token: torch.Tensor, position: int, cache: KVCache) -> tuple[torch.Tensor, torch.Tensor]:
    """One step: (next token [batch], logits [batch, vocab]) for `token` [batch] at `position`."""
    positions = torch.tensor([position], device=token.device)
    logits = model.forward(token[:, None], positions, cache, attend_to=position + 1)[:, -1]
    return logits.argmax(-1), logits


class StaticStep:
    """The decode step with everything in device buffers, so that a graph of one step replays any
    step: it reads `token` and `position`, writes `logits` and the next token back into `token`,
    and advances `position`. Attention covers the whole cache under a mask of the written positions."""

    def __init__(self, model: Llama, cache: KVCache, batch: int):
        device = cache.k[0].device
        self.model, self.cache = model, cache
        self.token = torch.zeros(batch, dtype=torch.long, device=device)
        self.position = torch.zeros(1, dtype=torch.long, device=device)
        self.logits = torch.empty(batch, model.config.vocab, dtype=cache.k[0].dtype, device=device)
        self._slots = torch.arange(cache.max_seq, device=device)

    def start(self, token: torch.Tensor, position: int) -> None:
        self.token.copy_(token)
        self.position.fill_(position)

    def __call__(self) -> torch.Tensor:
        mask = (self._slots <= self.position)[None, :]
        logits = self.model.forward(self.token[:, None], self.position, self.cache, mask=mask)[:, -1]
        self.logits.copy_(logits)
        self.token.copy_(logits.argmax(-1))
        self.position.add_(1)
        return self.logits


def generate_eager(model: Llama, prompt: torch.Tensor, new_tokens: int, cache: KVCache) -> torch.Tensor:
    """Greedy generation with the static cache, eagerly: the new tokens [batch, new_tokens]."""
    out = [prefill(model, prompt, cache)]
    for i in range(new_tokens - 1):
        out.append(decode_eager(model, out[-1], prompt.shape[1] + i, cache)[0])
    return torch.stack(out, dim=1)


def generate_without_cache(model: Llama, prompt: torch.Tensor, new_tokens: int) -> torch.Tensor:
    """The reference: each token from a full forward pass over everything so far, no cache."""
    tokens = prompt
    for _ in range(new_tokens):
        logits = model.forward(tokens, torch.arange(tokens.shape[1], device=tokens.device))
        tokens = torch.cat([tokens, logits[:, -1].argmax(-1, keepdim=True)], dim=1)
    return tokens[:, prompt.shape[1]:]

"""Weights for the decoder: synthetic (seeded, no download) or a local Hugging Face checkpoint
(safetensors only: no pickle, no network), checked tensor by tensor against the architecture.

Synthetic weights keep activations at a realistic scale through every layer: projections are
drawn with std 1/sqrt(fan-in), the two projections that write into the residual stream (o_proj,
down_proj) are scaled by 1/sqrt(2 x layers) as in GPT-2's initialization, and norm weights sit
around 1. Each tensor is drawn from its own seed (derived from its name), so every engine and
every rank builds the same model.
"""
from __future__ import annotations

import json
import math
import zlib
from pathlib import Path
from typing import Callable, Optional

import torch

from accelbench.errors import UsageError
from accelbench.models import ModelConfig, RopeScaling


def expected_shapes(config: ModelConfig) -> dict[str, tuple[int, ...]]:
    c = config
    q, kv = c.heads * c.head_dim, c.kv_heads * c.head_dim
    shapes: dict[str, tuple[int, ...]] = {"model.embed_tokens.weight": (c.vocab, c.hidden), "model.norm.weight": (c.hidden,)}
    if not c.tie_embeddings:
        shapes["lm_head.weight"] = (c.vocab, c.hidden)
    for i in range(c.layers):
        p = f"model.layers.{i}"
        shapes.update({
            f"{p}.input_layernorm.weight": (c.hidden,), f"{p}.post_attention_layernorm.weight": (c.hidden,),
            f"{p}.self_attn.q_proj.weight": (q, c.hidden), f"{p}.self_attn.k_proj.weight": (kv, c.hidden),
            f"{p}.self_attn.v_proj.weight": (kv, c.hidden), f"{p}.self_attn.o_proj.weight": (c.hidden, q),
            f"{p}.mlp.gate_proj.weight": (c.intermediate, c.hidden), f"{p}.mlp.up_proj.weight": (c.intermediate, c.hidden),
            f"{p}.mlp.down_proj.weight": (c.hidden, c.intermediate)})
        if c.qkv_bias:
            shapes.update({f"{p}.self_attn.q_proj.bias": (q,), f"{p}.self_attn.k_proj.bias": (kv,),
                           f"{p}.self_attn.v_proj.bias": (kv,)})
    return shapes


def synthetic_weights(config: ModelConfig, dtype: torch.dtype, device: torch.device, seed: int = 0,
                      shard: Optional[Callable[[str, torch.Tensor], torch.Tensor]] = None,
                      generator: Optional[Callable[[int], torch.Generator]] = None) -> dict[str, torch.Tensor]:
    """Every tensor of `config`'s model; with `shard`, only the part `shard(name, tensor)` keeps of
    each (a tensor-parallel rank's), drawn whole first so that every rank's part is the same
    model's. `generator(seed)` gives the generator that draws on `device` (a backend's
    `generator`; by default one on `device` itself)."""
    generator = generator or (lambda s: torch.Generator(device=device).manual_seed(s))
    out = {}
    residual_scale = 1.0 / math.sqrt(2 * config.layers)
    for name, shape in expected_shapes(config).items():
        gen = generator(seed * 1_000_003 + zlib.crc32(name.encode()))
        if name.endswith("norm.weight"):
            tensor = 1.0 + 0.05 * torch.randn(shape, generator=gen, device=device)
        elif name.endswith(".bias"):
            tensor = 0.02 * torch.randn(shape, generator=gen, device=device)
        elif name == "model.embed_tokens.weight" and not config.tie_embeddings:
            tensor = torch.randn(shape, generator=gen, device=device)
        else:
            tensor = torch.randn(shape, generator=gen, device=device) / math.sqrt(shape[-1])
            if name.endswith(("o_proj.weight", "down_proj.weight")):
                tensor *= residual_scale
        out[name] = (shard(name, tensor) if shard else tensor).to(dtype)
        del tensor
    return out


def read_hf_config(directory: Path) -> dict:
    path = Path(directory) / "config.json"
    if not path.is_file():
        raise UsageError(f"{path}: not found (--weights takes a Hugging Face checkpoint folder)")
    return json.loads(path.read_text(encoding="utf-8"))


def _safetensors_files(directory: Path) -> list[Path]:
    try:
        import safetensors  # noqa: F401
    except ImportError:
        raise UsageError("reading checkpoints needs safetensors (pip install 'accelbench[decode]')") from None
    files = sorted(Path(directory).glob("*.safetensors"))
    if not files:
        raise UsageError(f"{directory}: no *.safetensors files (only safetensors checkpoints are read: no pickle)")
    return files


def check_checkpoint(directory: Path, config: ModelConfig) -> None:
    """Refuse, naming the first tensor, a checkpoint whose tensors do not match `config`: read from
    the files' headers alone, before anything is loaded."""
    from safetensors import safe_open
    shapes: dict[str, tuple[int, ...]] = {}
    for f in _safetensors_files(directory):
        with safe_open(str(f), framework="pt") as handle:
            shapes.update({k: tuple(handle.get_slice(k).get_shape()) for k in handle.keys()})
    expected = expected_shapes(config)
    if config.tie_embeddings:  # some tied checkpoints store the output projection anyway
        shapes.pop("lm_head.weight", None)
    problems = [f"missing tensor {n}" for n in expected if n not in shapes]
    problems += [f"unexpected tensor {n}" for n in shapes if n not in expected and not n.endswith("rotary_emb.inv_freq")]
    problems += [f"tensor {n} has shape {shape}, the config says {expected[n]}"
                 for n, shape in shapes.items() if n in expected and shape != expected[n]]
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise UsageError(f"{directory}: the checkpoint does not match its config.json: {problems[0]}{more}")


def load_checkpoint(directory: Path, config: ModelConfig, dtype: torch.dtype, device: torch.device) -> dict[str, torch.Tensor]:
    """Every tensor of the checkpoint's *.safetensors files, checked against `config` first (a
    missing, unexpected or misshapen tensor is refused by name)."""
    from safetensors.torch import load_file
    check_checkpoint(directory, config)
    expected = expected_shapes(config)
    out: dict[str, torch.Tensor] = {}
    for f in _safetensors_files(directory):
        for name, tensor in load_file(str(f), device="cpu").items():
            if name in expected:
                out[name] = tensor.to(device=device, dtype=dtype)
    return out


def checkpoint_name(directory: Path) -> str:
    """What the decode benchmark calls a checkpoint run through --weights (its cases' `model`)."""
    return f"checkpoint:{Path(directory).name}"


def checkpoint_config(directory: Path) -> ModelConfig:
    """The architecture a checkpoint's config.json describes, or a one-line refusal."""
    raw = read_hf_config(directory)
    if raw.get("model_type") not in ("llama", "qwen2", "mistral"):
        raise UsageError(f"{directory}: model_type {raw.get('model_type')!r} is not of the Llama family "
                         "(llama, qwen2, mistral)")
    if raw.get("sliding_window") and raw.get("use_sliding_window", raw.get("model_type") == "mistral"):
        raise UsageError(f"{directory}: sliding-window attention is not supported")
    try:
        return ModelConfig.from_hf(checkpoint_name(directory), raw)
    except (KeyError, ValueError) as exc:
        raise UsageError(f"{directory}: config.json: {exc}") from None


def weight_bytes(config: ModelConfig, element_bytes: float, streamed_only: bool = False) -> float:
    params = config.streamed_parameters() if streamed_only else config.parameters()
    return params * element_bytes


def hf_config_dict(config: ModelConfig) -> dict:
    """The config.json a Hugging Face model of this architecture would have (for the `hf` engine
    and for saving test checkpoints)."""
    qwen = config.qkv_bias
    out = {"architectures": ["Qwen2ForCausalLM" if qwen else "LlamaForCausalLM"], "model_type": "qwen2" if qwen else "llama",
           "hidden_size": config.hidden, "num_attention_heads": config.heads, "num_key_value_heads": config.kv_heads,
           "head_dim": config.head_dim, "intermediate_size": config.intermediate, "num_hidden_layers": config.layers,
           "vocab_size": config.vocab, "rope_theta": config.rope_theta, "rms_norm_eps": config.rms_eps,
           "tie_word_embeddings": config.tie_embeddings, "max_position_embeddings": config.max_positions,
           "hidden_act": "silu"}
    if not qwen:
        out["attention_bias"] = False
        out["mlp_bias"] = False
    s = config.rope_scaling
    if s is not None:
        out["rope_scaling"] = {"rope_type": "llama3", "factor": s.factor, "low_freq_factor": s.low_freq_factor,
                               "high_freq_factor": s.high_freq_factor, "original_max_position_embeddings": s.original_max_positions}
    return out


def tiny_config(name: str = "tiny", **overrides) -> ModelConfig:
    """A small Llama-3-shaped config for tests and CPU runs (GQA, scaled RoPE)."""
    base = dict(name=name, hidden=64, heads=4, kv_heads=2, head_dim=16, intermediate=128, layers=2, vocab=256,
                rope_scaling=RopeScaling(8.0, 1.0, 4.0, 64), max_positions=512)
    base.update(overrides)
    return ModelConfig(**base)


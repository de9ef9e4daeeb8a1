"""LLM configurations (the Llama family: Llama 3.x, Qwen2.5, Mistral), from the models' published
config.json files, and the GEMM shapes their layers perform (used by the GEMM and FP8 benchmarks
and by decode). Shapes are (M, K, N): activations M x K times weights K x N, M = tokens."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional


@dataclass(frozen=True)
class RopeScaling:
    """Llama 3's frequency-dependent RoPE scaling ("rope_type": "llama3")."""

    factor: float
    low_freq_factor: float
    high_freq_factor: float
    original_max_positions: int


@dataclass(frozen=True)
class ModelConfig:
    name: str
    hidden: int
    heads: int
    kv_heads: int
    head_dim: int
    intermediate: int
    layers: int
    vocab: int
    rope_theta: float = 500000.0
    rope_scaling: Optional[RopeScaling] = None
    rms_eps: float = 1e-5
    tie_embeddings: bool = False  # the output projection is the embedding table
    qkv_bias: bool = False  # Qwen2 adds biases to the q, k, v projections
    max_positions: int = 131072

    def parameters(self) -> int:
        """Weights, embedding table included (counted once when tied)."""
        per_layer = (self.hidden * (self.heads + 2 * self.kv_heads) * self.head_dim
                     + self.heads * self.head_dim * self.hidden + 3 * self.hidden * self.intermediate + 2 * self.hidden
                     + ((self.heads + 2 * self.kv_heads) * self.head_dim if self.qkv_bias else 0))
        head = 0 if self.tie_embeddings else self.vocab * self.hidden
        return self.layers * per_layer + self.vocab * self.hidden + head + self.hidden

    def streamed_parameters(self) -> int:
        """Weights a decode step must read: all but the embedding table, which is only gathered
        (docs/metrics.md); a tied table is read whole as the output projection."""
        return self.parameters() - (0 if self.tie_embeddings else self.vocab * self.hidden)

    def kv_bytes_per_token(self, element_bytes: int) -> int:
        return 2 * self.layers * self.kv_heads * self.head_dim * element_bytes

    @classmethod
    def from_hf(cls, name: str, config: dict[str, Any]) -> "ModelConfig":
        """From a Hugging Face config.json (LlamaForCausalLM, Qwen2ForCausalLM, MistralForCausalLM)."""
        scaling = config.get("rope_scaling") or None
        if scaling is not None and scaling.get("rope_type", scaling.get("type")) != "llama3":
            raise ValueError(f"rope_scaling type {scaling.get('rope_type', scaling.get('type'))!r} is not supported "
                             "(only llama3)")
        heads = config["num_attention_heads"]
        return cls(name=name, hidden=config["hidden_size"], heads=heads,
                   kv_heads=config.get("num_key_value_heads", heads),
                   head_dim=config.get("head_dim") or config["hidden_size"] // heads,
                   intermediate=config["intermediate_size"], layers=config["num_hidden_layers"],
                   vocab=config["vocab_size"], rope_theta=float(config.get("rope_theta", 10000.0)),
                   rope_scaling=RopeScaling(scaling["factor"], scaling["low_freq_factor"], scaling["high_freq_factor"],
                                            scaling["original_max_position_embeddings"]) if scaling else None,
                   rms_eps=config.get("rms_norm_eps", 1e-5), tie_embeddings=bool(config.get("tie_word_embeddings")),
                   qkv_bias=config.get("model_type") == "qwen2" or bool(config.get("attention_bias")),
                   max_positions=config.get("max_position_embeddings", 131072))

    def projections(self, tensor_parallel: int = 1) -> dict[str, tuple[int, int]]:
        """(K, N) per projection of one decoder layer, sharded Megatron-style over `tensor_parallel`:
        column-parallel QKV and gate/up split N, row-parallel O and down split K."""
        tp = tensor_parallel
        qkv = (self.heads + 2 * self.kv_heads) * self.head_dim
        return {
            "qkv": (self.hidden, qkv // tp),
            "o": (self.heads * self.head_dim // tp, self.hidden),
            "gate_up": (self.hidden, 2 * self.intermediate // tp),
            "down": (self.intermediate // tp, self.hidden),
        }


# From the models' published config.json files on the Hugging Face hub (meta-llama/Llama-3.2-1B,
# -3.2-3B, -3.1-8B, -3.1-70B; Qwen/Qwen2.5-7B; mistralai/Mistral-7B-v0.3).
_LLAMA31_ROPE = RopeScaling(factor=8.0, low_freq_factor=1.0, high_freq_factor=4.0, original_max_positions=8192)
_LLAMA32_ROPE = RopeScaling(factor=32.0, low_freq_factor=1.0, high_freq_factor=4.0, original_max_positions=8192)
LLAMA_3_2_1B = ModelConfig("llama3.2-1b", hidden=2048, heads=32, kv_heads=8, head_dim=64, intermediate=8192,
                           layers=16, vocab=128256, rope_scaling=_LLAMA32_ROPE, tie_embeddings=True)
LLAMA_3_2_3B = ModelConfig("llama3.2-3b", hidden=3072, heads=24, kv_heads=8, head_dim=128, intermediate=8192,
                           layers=28, vocab=128256, rope_scaling=_LLAMA32_ROPE, tie_embeddings=True)
LLAMA_3_1_8B = ModelConfig("llama3.1-8b", hidden=4096, heads=32, kv_heads=8, head_dim=128,
                           intermediate=14336, layers=32, vocab=128256, rope_scaling=_LLAMA31_ROPE)
LLAMA_3_1_70B = ModelConfig("llama3.1-70b", hidden=8192, heads=64, kv_heads=8, head_dim=128,
                            intermediate=28672, layers=80, vocab=128256, rope_scaling=_LLAMA31_ROPE)
QWEN_2_5_7B = ModelConfig("qwen2.5-7b", hidden=3584, heads=28, kv_heads=4, head_dim=128, intermediate=18944,
                          layers=28, vocab=152064, rope_theta=1e6, rms_eps=1e-6, qkv_bias=True, max_positions=32768)
MISTRAL_7B = ModelConfig("mistral-7b", hidden=4096, heads=32, kv_heads=8, head_dim=128, intermediate=14336,
                         layers=32, vocab=32768, rope_theta=1e6, max_positions=32768)
MODELS = {m.name: m for m in (LLAMA_3_2_1B, LLAMA_3_2_3B, LLAMA_3_1_8B, LLAMA_3_1_70B, QWEN_2_5_7B, MISTRAL_7B)}
# The models whose projections the GEMM benchmark sweeps.
GEMM_MODELS = (LLAMA_3_1_8B, LLAMA_3_1_70B)

# The four Llama-70B shapes (M, K, N) of published Gaudi/H100 FP8 studies: 16384 tokens
# through the TP=8 shards of QKV, O, gate/up and down.
PUBLISHED_70B_SHAPES = [(16384, 8192, 1280), (16384, 1024, 8192), (16384, 8192, 7168), (16384, 3584, 8192)]

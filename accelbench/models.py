"""LLM configurations, and the GEMM shapes their layers perform (used by GEMM and FP8 benchmarks,
and later by decode). Shapes are (M, K, N): activations M x K times weights K x N, M = tokens."""
from __future__ import annotations

from dataclasses import dataclass


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


# From the models' published config.json files (meta-llama/Llama-3.1-8B and -70B).
LLAMA_3_1_8B = ModelConfig("llama3.1-8b", hidden=4096, heads=32, kv_heads=8, head_dim=128,
                           intermediate=14336, layers=32, vocab=128256)
LLAMA_3_1_70B = ModelConfig("llama3.1-70b", hidden=8192, heads=64, kv_heads=8, head_dim=128,
                            intermediate=28672, layers=80, vocab=128256)
MODELS = {m.name: m for m in (LLAMA_3_1_8B, LLAMA_3_1_70B)}

# The four Llama-70B shapes (M, K, N) of published Gaudi/H100 FP8 studies: 16384 tokens
# through the TP=8 shards of QKV, O, gate/up and down.
PUBLISHED_70B_SHAPES = [(16384, 8192, 1280), (16384, 1024, 8192), (16384, 8192, 7168), (16384, 3584, 8192)]

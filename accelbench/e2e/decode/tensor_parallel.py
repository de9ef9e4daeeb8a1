"""Tensor parallelism for the decoder, Megatron style, over the ranks of the multi-rank launcher
(accelbench/distributed.py): q, k, v, gate and up are column-parallel (each rank holds a slice of
the heads and of the MLP's width), o and down are row-parallel (each rank multiplies its slice and
an all-reduce sums the partial outputs), the embedding table, the norms and the output projection
are replicated. Two all-reduces per layer per step; KV heads are split too, so the ranks must
divide the KV heads."""
from __future__ import annotations

import dataclasses
from typing import Optional

import torch

from accelbench.models import ModelConfig

COLUMN = ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "mlp.gate_proj", "mlp.up_proj")
ROW = ("self_attn.o_proj", "mlp.down_proj")


def unsupported(config: ModelConfig, ranks: int) -> Optional[str]:
    if config.kv_heads % ranks or config.heads % ranks or config.intermediate % ranks:
        return (f"{ranks} ranks do not divide {config.name}'s {config.kv_heads} KV heads, {config.heads} heads "
                f"and {config.intermediate}-wide MLP")
    return None


def shard_config(config: ModelConfig, ranks: int) -> ModelConfig:
    """What one rank's shard of the model looks like to the decoder."""
    return dataclasses.replace(config, heads=config.heads // ranks, kv_heads=config.kv_heads // ranks,
                               intermediate=config.intermediate // ranks)


def shard_of(rank: int, ranks: int):
    """The slice of each named tensor that rank `rank` holds."""
    def shard(name: str, tensor: torch.Tensor) -> torch.Tensor:
        if any(f".{p}." in name for p in COLUMN):  # weight [out, in] and bias [out]: split the outputs
            return tensor.chunk(ranks, dim=0)[rank].clone()
        if any(f".{p}." in name for p in ROW):  # weight [out, in]: split the inputs
            return tensor.chunk(ranks, dim=1)[rank].clone()
        return tensor
    return shard


def all_reduce_sum(group=None):
    import torch.distributed as dist

    def reduce(x: torch.Tensor) -> torch.Tensor:
        dist.all_reduce(x, group=group)
        return x
    return reduce


def parameters_per_rank(config: ModelConfig, ranks: int) -> int:
    """Weights one rank holds: its shard of every layer, and the replicated rest."""
    replicated = config.vocab * config.hidden * (1 if config.tie_embeddings else 2) + config.hidden \
        + config.layers * 2 * config.hidden
    return (config.parameters() - replicated) // ranks + replicated

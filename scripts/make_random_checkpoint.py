"""Write a Hugging Face checkpoint folder of a model shape from accelbench.models with random weights,
for serving benchmarks where only the shape matters (throughput, latency, energy), not the answers:

    python scripts/make_random_checkpoint.py OUT --shape llama3.1-8b --tokenizer DIR [--device cuda]

OUT gets config.json (LlamaForCausalLM), bf16 safetensors shards with their index, and the tokenizer
files of DIR (a checkpoint folder with tokenizer.json, e.g. the SmolLM2 fixture). The vocabulary is
the tokenizer's: a random model samples any id of its output layer, and each must decode, so the
embedding and output layers have the tokenizer's size, not the shape's (Llama-3.1-8B's 128,256
rows become 49,152 with SmolLM2's tokenizer: 0.65 G fewer parameters, stated in config.json).
Weights are normal with standard deviation 0.02 (norms: ones), seeded; the answers are noise.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file

from accelbench.models import MODELS

SHARD_BYTES = 2 * 2**30
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")


def tensors(config, vocab: int, device: str):
    """(name, shape) of every weight of a Llama model, in the order Hugging Face lists them."""
    h, kv = config.hidden, config.kv_heads * config.head_dim
    yield "model.embed_tokens.weight", (vocab, h)
    for i in range(config.layers):
        p = f"model.layers.{i}."
        yield p + "self_attn.q_proj.weight", (config.heads * config.head_dim, h)
        yield p + "self_attn.k_proj.weight", (kv, h)
        yield p + "self_attn.v_proj.weight", (kv, h)
        yield p + "self_attn.o_proj.weight", (h, config.heads * config.head_dim)
        yield p + "mlp.gate_proj.weight", (config.intermediate, h)
        yield p + "mlp.up_proj.weight", (config.intermediate, h)
        yield p + "mlp.down_proj.weight", (h, config.intermediate)
        yield p + "input_layernorm.weight", (h,)
        yield p + "post_attention_layernorm.weight", (h,)
    yield "model.norm.weight", (h,)
    if not config.tie_embeddings:
        yield "lm_head.weight", (vocab, h)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--shape", required=True, choices=sorted(MODELS))
    parser.add_argument("--tokenizer", required=True, type=Path, help="a folder with tokenizer.json")
    parser.add_argument("--layers", type=int, default=None, help="fewer layers than the shape (tests)")
    parser.add_argument("--device", default="cpu", help="where the random numbers are drawn (cuda is faster)")
    args = parser.parse_args(argv)
    if not (args.tokenizer / "tokenizer.json").is_file():
        print(f"make_random_checkpoint: no tokenizer.json in {args.tokenizer}", file=sys.stderr)
        return 2
    config = MODELS[args.shape]
    layers = args.layers or config.layers
    config = type(config)(**{**config.__dict__, "layers": layers})
    tokenizer = json.loads((args.tokenizer / "tokenizer.json").read_text())
    ids = list(tokenizer["model"]["vocab"].values()) + [t["id"] for t in tokenizer.get("added_tokens", [])]
    vocab_size = max(ids) + 1
    args.out.mkdir(parents=True, exist_ok=True)
    generator = torch.Generator(device=args.device).manual_seed(0)
    shard: dict[str, torch.Tensor] = {}
    shards: list[dict[str, torch.Tensor]] = []
    size = 0
    for name, shape in tensors(config, vocab_size, args.device):
        if len(shape) == 1:
            weight = torch.ones(shape, dtype=torch.bfloat16)
        else:
            weight = (torch.randn(shape, generator=generator, device=args.device, dtype=torch.float32) * 0.02)
            weight = weight.to(torch.bfloat16).cpu()
        nbytes = weight.numel() * 2
        if shard and size + nbytes > SHARD_BYTES:
            shards.append(shard)
            shard, size = {}, 0
        shard[name], size = weight, size + nbytes
    shards.append(shard)
    index: dict[str, str] = {}
    total = 0
    for k, part in enumerate(shards, 1):
        file = f"model-{k:05d}-of-{len(shards):05d}.safetensors"
        save_file(part, str(args.out / file), metadata={"format": "pt"})
        index.update({name: file for name in part})
        total += sum(t.numel() * 2 for t in part.values())
    (args.out / "model.safetensors.index.json").write_text(
        json.dumps({"metadata": {"total_size": total}, "weight_map": index}, indent=1))
    hf = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_act": "silu",
          "hidden_size": config.hidden, "intermediate_size": config.intermediate, "num_hidden_layers": layers,
          "num_attention_heads": config.heads, "num_key_value_heads": config.kv_heads, "head_dim": config.head_dim,
          "rms_norm_eps": config.rms_eps, "rope_theta": config.rope_theta, "max_position_embeddings": 131072,
          "vocab_size": vocab_size, "tie_word_embeddings": config.tie_embeddings, "attention_bias": False,
          "mlp_bias": False, "torch_dtype": "bfloat16",
          "accelbench_random": {"shape": args.shape, "layers": layers, "std": 0.02, "seed": 0,
                                "note": f"random weights in the shape of {args.shape}, vocabulary of the tokenizer "
                                        f"({vocab_size} rows instead of {MODELS[args.shape].vocab}): answers are noise"}}
    scaling = config.rope_scaling
    if scaling is not None:
        hf["rope_scaling"] = {"rope_type": "llama3", "factor": scaling.factor, "low_freq_factor": scaling.low_freq_factor,
                              "high_freq_factor": scaling.high_freq_factor,
                              "original_max_position_embeddings": scaling.original_max_positions}
    (args.out / "config.json").write_text(json.dumps(hf, indent=1))
    for name in TOKENIZER_FILES:
        if (args.tokenizer / name).is_file():
            shutil.copy(args.tokenizer / name, args.out / name)
    print(f"wrote {args.out}: {args.shape} shape, {layers} layers, {total / 2**30:.1f} GiB in {len(shards)} shard(s)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

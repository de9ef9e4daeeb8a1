"""GGUF (llama.cpp's file format) -> a Hugging Face checkpoint folder: config.json, one
model.safetensors and tokenizer.json, for Llama-architecture files.

- Tensors are dequantized by the `gguf` package's own reference code (Q4_0/Q4_1/Q8_0/K-quants/
  F16/...), written in fp16 (or fp32). llama.cpp's converter permutes the rows of q_proj and
  k_proj (it interleaves the two rotary halves of each head); that permutation is undone here, or
  RoPE would rotate the wrong pairs.
- The tokenizer is rebuilt from the file's vocabulary and merges as a byte-level BPE, with the
  pre-tokenization rules the file declares (`tokenizer.ggml.pre`), and checked: every text given
  to `check_tokenizer` must decode back to itself exactly.
- The result says what it came from: config.json keeps `gguf_source` (file, sha256, the tensor
  types), so a report can say the weights are 4-bit-derived.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import numpy as np

from accelbench.errors import UsageError

# llama.cpp's tensor names -> Hugging Face's (Llama family); {i} is the layer.
TENSOR_NAMES = {
    "token_embd.weight": "model.embed_tokens.weight",
    "output_norm.weight": "model.norm.weight",
    "output.weight": "lm_head.weight",
    "blk.{i}.attn_norm.weight": "model.layers.{i}.input_layernorm.weight",
    "blk.{i}.ffn_norm.weight": "model.layers.{i}.post_attention_layernorm.weight",
    "blk.{i}.attn_q.weight": "model.layers.{i}.self_attn.q_proj.weight",
    "blk.{i}.attn_k.weight": "model.layers.{i}.self_attn.k_proj.weight",
    "blk.{i}.attn_v.weight": "model.layers.{i}.self_attn.v_proj.weight",
    "blk.{i}.attn_output.weight": "model.layers.{i}.self_attn.o_proj.weight",
    "blk.{i}.ffn_gate.weight": "model.layers.{i}.mlp.gate_proj.weight",
    "blk.{i}.ffn_up.weight": "model.layers.{i}.mlp.up_proj.weight",
    "blk.{i}.ffn_down.weight": "model.layers.{i}.mlp.down_proj.weight",
}

# Pre-tokenization by `tokenizer.ggml.pre` (llama.cpp's llama-vocab.cpp lists the regexes): the
# GPT-2 byte-level split, with digits split one by one first for SmolLM.
GPT2_PRE = ("default", "gpt2")
DIGITS_THEN_GPT2_PRE = ("smollm",)


@dataclass(frozen=True)
class Converted:
    folder: Path
    tensor_types: dict[str, int]  # GGUF type name -> how many tensors had it
    sha256: str
    parameters: int


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _reader(path: Path):
    try:
        from gguf import GGUFReader
    except ImportError:
        raise UsageError("converting GGUF files needs the gguf package (pip install 'accelbench[accuracy]')") from None
    if not Path(path).is_file():
        raise UsageError(f"{path}: not found")
    try:
        return GGUFReader(str(path))
    except Exception as exc:  # a truncated or foreign file: one line, not the parser's traceback
        raise UsageError(f"{path}: not a readable GGUF file ({type(exc).__name__}: {exc})") from None


def _field(reader, key: str, default=None):
    field = reader.fields.get(key)
    return default if field is None else field.contents()


def unpermute_rope_rows(w: np.ndarray, heads: int) -> np.ndarray:
    """Undo llama.cpp's q/k permutation: it stores each head's rows as interleaved pairs
    (x0, x_half, x1, x_half+1, ...); Hugging Face's RoPE wants the two halves apart."""
    rows = w.shape[0]
    return w.reshape(heads, rows // heads // 2, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def hf_config(reader) -> dict:
    arch = _field(reader, "general.architecture")
    if arch != "llama":
        raise UsageError(f"GGUF architecture {arch!r}: only llama is converted")
    p = "llama."
    heads = int(_field(reader, p + "attention.head_count"))
    hidden = int(_field(reader, p + "embedding_length"))
    names = {t.name for t in reader.tensors}
    config = {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_act": "silu",
        "hidden_size": hidden, "intermediate_size": int(_field(reader, p + "feed_forward_length")),
        "num_hidden_layers": int(_field(reader, p + "block_count")), "num_attention_heads": heads,
        "num_key_value_heads": int(_field(reader, p + "attention.head_count_kv", heads)),
        "head_dim": int(_field(reader, p + "rope.dimension_count", hidden // heads)),
        "rms_norm_eps": float(_field(reader, p + "attention.layer_norm_rms_epsilon")),
        "rope_theta": float(_field(reader, p + "rope.freq_base", 10000.0)),
        "max_position_embeddings": int(_field(reader, p + "context_length")),
        "vocab_size": len(reader.fields["tokenizer.ggml.tokens"].data),
        "tie_word_embeddings": "output.weight" not in names,
        "attention_bias": False, "mlp_bias": False,
        "bos_token_id": int(_field(reader, "tokenizer.ggml.bos_token_id", 1)),
        "eos_token_id": int(_field(reader, "tokenizer.ggml.eos_token_id", 2)),
    }
    if _field(reader, p + "rope.scaling.type") not in (None, "none"):
        raise UsageError("GGUF files with RoPE scaling are not converted")
    return config


def _hf_name(name: str) -> str:
    parts = name.split(".")
    if parts[0] == "blk":
        key = "blk.{i}." + ".".join(parts[2:])
        if key in TENSOR_NAMES:
            return TENSOR_NAMES[key].format(i=parts[1])
    elif name in TENSOR_NAMES:
        return TENSOR_NAMES[name]
    raise UsageError(f"GGUF tensor {name}: not a Llama tensor this converter knows")


def tensors(reader, config: dict, dtype=np.float16) -> Iterable[tuple[str, np.ndarray, str]]:
    """(Hugging Face name, dequantized array, GGUF type name) per tensor."""
    from gguf import dequantize
    for t in reader.tensors:
        if t.name.startswith("rope_freqs"):
            continue
        name = _hf_name(t.name)
        w = np.asarray(dequantize(t.data, t.tensor_type), dtype=np.float32)
        w = w.reshape([int(n) for n in reversed(t.shape)])  # GGUF lists dims fastest first
        if name.endswith("q_proj.weight"):
            w = unpermute_rope_rows(w, config["num_attention_heads"])
        elif name.endswith("k_proj.weight"):
            w = unpermute_rope_rows(w, config["num_key_value_heads"])
        yield name, w.astype(dtype), t.tensor_type.name


def build_tokenizer(reader):
    """A `tokenizers.Tokenizer` from the file's byte-level BPE vocabulary and merges."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers
    model = _field(reader, "tokenizer.ggml.model")
    if model != "gpt2":
        raise UsageError(f"GGUF tokenizer model {model!r}: only byte-level BPE ('gpt2') is converted")
    pre = _field(reader, "tokenizer.ggml.pre", "default")
    tokens = _field(reader, "tokenizer.ggml.tokens")
    merges = [tuple(m.split(" ", 1)) for m in _field(reader, "tokenizer.ggml.merges")]
    vocab = {tok: i for i, tok in enumerate(tokens)}
    tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=merges, fuse_unk=False, byte_fallback=False))
    byte_level = pre_tokenizers.ByteLevel(add_prefix_space=bool(_field(reader, "tokenizer.ggml.add_space_prefix", False)),
                                          use_regex=True)
    if pre in DIGITS_THEN_GPT2_PRE:
        tokenizer.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True), byte_level])
    elif pre in GPT2_PRE:
        tokenizer.pre_tokenizer = byte_level
    else:
        raise UsageError(f"GGUF pre-tokenizer {pre!r}: its rules are not known here (known: "
                         f"{', '.join(GPT2_PRE + DIGITS_THEN_GPT2_PRE)})")
    tokenizer.decoder = decoders.ByteLevel()
    types = _field(reader, "tokenizer.ggml.token_type", [])
    control = [tokens[i] for i, kind in enumerate(types) if kind == 3]  # llama.cpp: 3 = control
    tokenizer.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in control])
    return tokenizer


def check_tokenizer(tokenizer, texts: Iterable[str]) -> int:
    """Every text must decode back to itself exactly; returns how many were checked."""
    n = 0
    for text in texts:
        ids = tokenizer.encode(text, add_special_tokens=False).ids
        back = tokenizer.decode(ids, skip_special_tokens=False)
        if back != text:
            at = next((i for i, (a, b) in enumerate(zip(text, back)) if a != b), min(len(text), len(back)))
            raise UsageError(f"the converted tokenizer does not round-trip a text: first difference at character "
                             f"{at} ({text[max(0, at - 20):at + 20]!r} became {back[max(0, at - 20):at + 20]!r})")
        n += 1
    return n


def convert(gguf_path: Path, out: Path, dtype: str = "float16", check_texts: Iterable[str] = ()) -> Converted:
    """Write config.json, model.safetensors, tokenizer.json (+ tokenizer_config.json) into `out`."""
    import torch
    from safetensors.torch import save_file
    np_dtype = {"float16": np.float16, "float32": np.float32}.get(dtype)
    if np_dtype is None:
        raise UsageError(f"--dtype {dtype}: choose float16 or float32")
    reader = _reader(gguf_path)
    config = hf_config(reader)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    state, types = {}, {}
    for name, array, kind in tensors(reader, config, np_dtype):
        state[name] = torch.from_numpy(np.ascontiguousarray(array))
        types[kind] = types.get(kind, 0) + 1
    tokenizer = build_tokenizer(reader)
    check_tokenizer(tokenizer, [
        "Hello world! 12345 apples cost $3.50, don't they?\n\tIndented\n\n  two spaces", *check_texts])
    digest = sha256_of(Path(gguf_path))
    config["torch_dtype"] = dtype
    config["gguf_source"] = {"file": Path(gguf_path).name, "sha256": digest, "tensor_types": types,
                             "name": _field(reader, "general.name"),
                             "note": "weights dequantized from the GGUF file's quantized tensors"}
    save_file(state, str(out / "model.safetensors"), metadata={"format": "pt"})
    (out / "config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    tokenizer.save(str(out / "tokenizer.json"))
    tokens = _field(reader, "tokenizer.ggml.tokens")
    special = {"bos_token": tokens[config["bos_token_id"]], "eos_token": tokens[config["eos_token_id"]],
               "tokenizer_class": "PreTrainedTokenizerFast", "add_bos_token": bool(_field(reader, "tokenizer.ggml.add_bos_token", False)),
               "chat_template": _field(reader, "tokenizer.chat_template")}
    (out / "tokenizer_config.json").write_text(json.dumps(special, indent=2) + "\n", encoding="utf-8")
    return Converted(out, types, digest, sum(t.numel() for t in state.values()))


def quantized_source(config: dict) -> str | None:
    """'4-bit-derived (Q4_1 …)' where a checkpoint came from quantized GGUF tensors, else None:
    the label every figure of such weights carries."""
    source = config.get("gguf_source")
    if not source:
        return None
    low = sorted(k for k in source.get("tensor_types", {}) if k.startswith(("Q", "IQ")))
    if not low:
        return None
    bits = min(int(k[2] if k.startswith("IQ") else k[1]) for k in low)
    return f"{bits}-bit-derived (GGUF {', '.join(low)}: {source.get('file')})"

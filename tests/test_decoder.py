"""The compact decoder: the static cache changes nothing, checkpoints load or are refused by name,
and Hugging Face transformers generates the same greedy tokens from the same weights."""

import pytest
import torch

from accelbench.e2e.decode.model import (KVCache, Llama, StaticStep, decode_eager, generate_eager, generate_without_cache,
                                  prefill, rope_frequencies)
from accelbench.e2e.decode.weights import expected_shapes, hf_config_dict, load_checkpoint, synthetic_weights, tiny_config
from accelbench.errors import UsageError
from conftest import save_checkpoint
from accelbench.models import MODELS, ModelConfig

CPU = torch.device("cpu")


def _model(config, dtype=torch.float32, seed=0):
    return Llama(config, synthetic_weights(config, dtype, CPU, seed))


@pytest.mark.parametrize("overrides", [{}, {"qkv_bias": True, "rope_scaling": None, "rope_theta": 1e6},
                                       {"tie_embeddings": True}])
def test_static_cache_generates_what_a_full_forward_pass_does(overrides):
    config = tiny_config(**overrides)
    model = _model(config)
    prompt = torch.randint(0, config.vocab, (3, 11), generator=torch.Generator().manual_seed(1))
    reference = generate_without_cache(model, prompt, 12)
    cache = KVCache.empty(config, 3, 11 + 12, torch.float32, CPU)
    assert torch.equal(generate_eager(model, prompt, 12, cache), reference)
    # The graph-ready step (masked full cache, position in a device buffer) generates the same.
    cache = KVCache.empty(config, 3, 11 + 12, torch.float32, CPU)
    step = StaticStep(model, cache, 3)
    first = prefill(model, prompt, cache)
    step.start(first, 11)
    tokens = [first] + [step().argmax(-1) for _ in range(11)]
    assert torch.equal(torch.stack(tokens, dim=1), reference)
    assert int(step.position) == 22


def test_eager_step_logits_match_the_reference_forward():
    config = tiny_config()
    model = _model(config)
    prompt = torch.randint(0, config.vocab, (2, 7), generator=torch.Generator().manual_seed(2))
    cache = KVCache.empty(config, 2, 8, torch.float32, CPU)
    token = prefill(model, prompt, cache)
    _, logits = decode_eager(model, token, 7, cache)
    full = model.forward(torch.cat([prompt, token[:, None]], 1), torch.arange(8))[:, -1]
    torch.testing.assert_close(logits, full, rtol=1e-5, atol=1e-5)


def test_published_configs_have_their_published_sizes():
    billions = {n: round(m.parameters() / 1e9, 2) for n, m in MODELS.items()}
    assert billions == {"llama3.2-1b": 1.24, "llama3.2-3b": 3.21, "llama3.1-8b": 8.03, "llama3.1-70b": 70.55,
                        "qwen2.5-7b": 7.62, "mistral-7b": 7.25}
    assert sum(torch.Size(s).numel() for s in expected_shapes(MODELS["llama3.1-8b"]).values()) == \
        MODELS["llama3.1-8b"].parameters()


def test_config_round_trips_through_hf_config_json():
    for config in MODELS.values():
        assert ModelConfig.from_hf(config.name, hf_config_dict(config)) == config


def test_a_saved_checkpoint_loads_and_a_mismatched_one_is_refused_by_name(tmp_path):
    pytest.importorskip("safetensors")
    config = tiny_config()
    weights = synthetic_weights(config, torch.float32, CPU, seed=3)
    save_checkpoint(tmp_path / "ok", config, weights)
    loaded = load_checkpoint(tmp_path / "ok", config, torch.float32, CPU)
    assert loaded.keys() == weights.keys() and all(torch.equal(loaded[k], weights[k]) for k in weights)

    bad = dict(weights)
    bad["model.layers.1.mlp.up_proj.weight"] = torch.zeros(64, 64)
    save_checkpoint(tmp_path / "shape", config, bad)
    with pytest.raises(UsageError, match=r"model\.layers\.1\.mlp\.up_proj\.weight has shape \(64, 64\), the config says \(128, 64\)"):
        load_checkpoint(tmp_path / "shape", config, torch.float32, CPU)
    missing = {k: v for k, v in weights.items() if k != "model.norm.weight"}
    save_checkpoint(tmp_path / "missing", config, missing)
    with pytest.raises(UsageError, match="missing tensor model.norm.weight"):
        load_checkpoint(tmp_path / "missing", config, torch.float32, CPU)
    (tmp_path / "pickle").mkdir()
    torch.save(weights, tmp_path / "pickle" / "pytorch_model.bin")
    with pytest.raises(UsageError, match="no pickle"):
        load_checkpoint(tmp_path / "pickle", config, torch.float32, CPU)


@pytest.mark.parametrize("overrides", [{}, {"qkv_bias": True, "rope_scaling": None, "rope_theta": 1e6}])
def test_hf_generate_gives_our_greedy_tokens_from_the_same_weights(overrides):
    transformers = pytest.importorskip("transformers")
    config = tiny_config(**overrides)
    weights = synthetic_weights(config, torch.float32, CPU, seed=4)
    hf_cfg = hf_config_dict(config)
    cls = transformers.Qwen2ForCausalLM if config.qkv_bias else transformers.LlamaForCausalLM
    cfg_cls = transformers.Qwen2Config if config.qkv_bias else transformers.LlamaConfig
    hf = cls(cfg_cls(**{k: v for k, v in hf_cfg.items() if k != "architectures"})).eval()
    missing, unexpected = hf.load_state_dict(weights, strict=False)
    assert not unexpected and all("rotary" in m or (config.tie_embeddings and m == "lm_head.weight") for m in missing)
    prompt = torch.randint(0, config.vocab, (2, 9), generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        out = hf.generate(prompt, max_new_tokens=10, min_new_tokens=10, do_sample=False, pad_token_id=0,
                          eos_token_id=None)
        ours = generate_eager(Llama(config, weights), prompt, 10, KVCache.empty(config, 2, 19, torch.float32, CPU))
    assert torch.equal(out[:, 9:], ours)


def test_llama3_rope_scaling_matches_transformers():
    transformers = pytest.importorskip("transformers")
    from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS
    config = MODELS["llama3.1-8b"]
    hf_cfg = transformers.LlamaConfig(**{k: v for k, v in hf_config_dict(config).items() if k != "architectures"})
    inv_freq, _ = ROPE_INIT_FUNCTIONS["llama3"](hf_cfg, "cpu")
    torch.testing.assert_close(rope_frequencies(config), inv_freq.float(), rtol=1e-6, atol=0)

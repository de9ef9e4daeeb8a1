"""Prompts for a serving level: random tokens of the model's own vocabulary, so that no two
requests share a prefix and a prefix cache cannot inflate the figures (identical or seeded-alike
prompts are the most common way serving benchmarks overstate throughput).

Request i's first token is the i-th of a fixed permutation of the vocabulary (distinct for every
request of a run), the rest drawn at random; the text is what the tokenizer decodes, and the
server's `usage.prompt_tokens` says how many tokens it became (a decoded text can re-encode a
token or two differently: the actual lengths are recorded, never assumed)."""
from __future__ import annotations

import random
from pathlib import Path


class RandomPrompts:
    def __init__(self, tokenizer_json: Path, tokens: int, seed: int = 0) -> None:
        from tokenizers import Tokenizer
        self.tokenizer = Tokenizer.from_file(str(tokenizer_json))
        special = {t.content for t in self.tokenizer.get_added_tokens_decoder().values()}
        vocab = self.tokenizer.get_vocab()
        self.ids = sorted(i for token, i in vocab.items() if token not in special)
        self.tokens, self.seed = tokens, seed
        self.firsts = list(self.ids)
        random.Random(seed).shuffle(self.firsts)

    def __call__(self, index: int) -> str:
        if index >= len(self.firsts):
            raise ValueError(f"{index + 1} requests: more than the vocabulary's {len(self.firsts)} distinct first tokens")
        rng = random.Random(f"{self.seed}/{index}")
        ids = [self.firsts[index]] + [rng.choice(self.ids) for _ in range(self.tokens - 1)]
        return self.tokenizer.decode(ids, skip_special_tokens=True)

"""What a decode case checks and what its quality costs: the logits against an eager reference,
FP8 against the unquantized model (KL, top-1), perplexity of a local text."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Optional

import torch

from accelbench.accuracy import ErrorMeter
from accelbench.e2e.decode.fp8_linear import kl_and_agreement
from accelbench.e2e.decode.model import Llama
from accelbench.errors import UsageError
from accelbench.records import Accuracy, Metric


CHECK_STEPS = 4  # logits checked against the eager reference: the first token and three steps
# Relative Frobenius error of those logits against a forward pass without cache in the same dtype
# (different kernels and reduction orders only).
LOGIT_TOLERANCE = {"fp32": 1e-4, "bf16": 4e-2, "fp8": 1e-1}


class Fp8Cost:
    """What FP8 costs in accuracy: the FP8 model against the model in its own dtype on the same
    weights and the same tokens (the prompt and the FP8 model's generation, teacher forcing):
    mean KL divergence of next-token distributions, and top-1 agreement."""

    def __init__(self) -> None:
        self.kl: Optional[float] = None
        self.agreement: Optional[float] = None

    def measure(self, reference: Llama, model: Llama, prompt: torch.Tensor, tokens: torch.Tensor) -> None:
        sequence = torch.cat([prompt, tokens[:, :-1]], dim=1)
        positions = torch.arange(sequence.shape[1], device=sequence.device)
        kls, agrees = [], []
        with torch.no_grad():
            for row in range(sequence.shape[0]):  # one sequence at a time: logits of every position are large
                seq = sequence[row:row + 1]
                kl, agree = kl_and_agreement(reference.forward(seq, positions, last=tokens.shape[1]),
                                             model.forward(seq, positions, last=tokens.shape[1]))
                kls.append(kl)
                agrees.append(agree)
        self.kl, self.agreement = sum(kls) / len(kls), sum(agrees) / len(agrees)

    def metrics(self) -> list[Metric]:
        if self.kl is None:
            return []
        return [Metric("kl_vs_unquantized", self.kl, "nats", "mean KL(unquantized || FP8) of next-token distributions"),
                Metric("top1_vs_unquantized", 100.0 * self.agreement, "%", "same greedy token as the unquantized model")]


class TextScore:
    """Perplexity of a local text under the case's model (and, for FP8, under the unquantized one)."""

    def __init__(self, tokens: Optional[list[int]], name: str):
        self.tokens, self.name = tokens, name
        self.found: list[Metric] = []

    def measure(self, model: Llama, reference: Optional[Llama], device: torch.device) -> None:
        if not self.tokens:
            return
        tokens = torch.tensor([self.tokens], device=device)
        note = f"{len(self.tokens)} tokens of {self.name}"
        self.found = [Metric("perplexity", perplexity(model, tokens), "", note)]
        if reference is not None:
            self.found.append(Metric("perplexity_unquantized", perplexity(reference, tokens), "", note))


MAX_TEXT_TOKENS = 1024


def text_tokens(checkpoint: Path, text_file: Path) -> list[int]:
    """The text's first MAX_TEXT_TOKENS tokens, by the checkpoint's own tokenizer (tokenizer.json,
    read locally)."""
    from tokenizers import Tokenizer
    path = checkpoint / "tokenizer.json"
    if not path.is_file():
        raise UsageError(f"{path}: not found: perplexity needs the checkpoint's tokenizer.json")
    ids = Tokenizer.from_file(str(path)).encode(text_file.read_text(encoding="utf-8")).ids[:MAX_TEXT_TOKENS]
    if len(ids) < 2:
        raise UsageError(f"{text_file}: fewer than 2 tokens of text")
    return ids


def perplexity(model: Llama, tokens: torch.Tensor) -> float:
    """exp(mean negative log-likelihood of each next token) over `tokens` [1, n], teacher forcing."""
    with torch.no_grad():
        logits = model.forward(tokens[:, :-1], torch.arange(tokens.shape[1] - 1, device=tokens.device))
        nll = torch.nn.functional.cross_entropy(logits[0].float(), tokens[0, 1:])
    return math.exp(float(nll))



def check_logits(model: Llama, prompt: torch.Tensor, tokens: torch.Tensor, logits: torch.Tensor,
                 dtype: str, reference_device: torch.device) -> Accuracy:
    """The first CHECK_STEPS logits of a generation against a forward pass without cache over the
    prompt and the generated tokens (teacher forcing), in the model's dtype; compared in fp64 on
    `reference_device` (the host where the device has no fp64)."""
    k = logits.shape[1]
    sequence = torch.cat([prompt, tokens[:, :k - 1]], dim=1)
    with torch.no_grad():
        reference = model.forward(sequence, torch.arange(sequence.shape[1], device=sequence.device), last=k)
    meter = ErrorMeter()
    meter.add(logits, reference.to(reference_device, torch.float64))
    agree = float((logits.argmax(-1) == reference.argmax(-1)).float().mean())
    return meter.result(LOGIT_TOLERANCE[dtype], f"{dtype} forward pass without cache over the prompt and the "
                        f"generated tokens, first {k} logits (top-1 agreement {agree:.3f})")



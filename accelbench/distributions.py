"""Named input distributions for numerical-accuracy cases (design.md §4, FP8)."""
from __future__ import annotations

import torch

DISTRIBUTIONS = ("normal", "heavy", "outliers")
STUDENT_T_DF = 3
OUTLIER_CHANNEL_FRACTION = 0.01  # of the K columns (channels) of an activation
OUTLIER_GAIN = 30.0


def draw(name: str, shape: tuple[int, int], generator: torch.Generator, device: torch.device) -> torch.Tensor:
    """normal: N(0,1). heavy: Student-t with 3 degrees of freedom (finite variance, heavy tails).
    outliers: N(0,1) with 1% of the channels (columns) scaled 30x, like the activations of LLMs
    with outlier features."""
    z = torch.randn(shape, generator=generator, device=device)
    if name == "normal":
        return z
    if name == "heavy":
        chi2 = torch.randn((STUDENT_T_DF, *shape), generator=generator, device=device).pow(2).sum(0)
        return z / torch.sqrt(chi2 / STUDENT_T_DF)
    if name == "outliers":
        cols = shape[1]
        picked = torch.randperm(cols, generator=generator, device=device)[: max(1, int(cols * OUTLIER_CHANNEL_FRACTION))]
        z[:, picked] *= OUTLIER_GAIN
        return z
    raise ValueError(f"unknown distribution {name!r}; choose from {DISTRIBUTIONS}")

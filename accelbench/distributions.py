"""Named input distributions: for numerical-accuracy cases (docs/metrics.md, FP8), and the input values
of the GEMM group that shows how data moves a power-capped figure (`VALUE_KINDS`)."""
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
        # Drawn where the generator lives (on Gaudi a CPU generator serves the device), then moved.
        picked = torch.randperm(cols, generator=generator, device=generator.device)[
            : max(1, int(cols * OUTLIER_CHANNEL_FRACTION))].to(device)
        z[:, picked] *= OUTLIER_GAIN
        return z
    raise ValueError(f"unknown distribution {name!r}; choose from {DISTRIBUTIONS}")


# GEMM operand values, from the least to the most switching activity. Every other GEMM case uses
# "normal" (and says so in its parameters).
VALUE_KINDS = ("zeros", "uniform-small", "normal", "full-range")
FULL_RANGE_BINADES = 24  # full-range magnitudes are 2^u, u uniform in [-24, 24]


def draw_values(kind: str, shape: tuple[int, int], generator: torch.Generator, device: torch.device) -> torch.Tensor:
    """zeros; uniform-small: U(-1, 1) x 1e-3; normal: N(0, 1); full-range: a random sign times 2^u with u
    uniform over 48 binades, so that exponent and mantissa bits all toggle (fp32 draw, rounded by the
    caller to the case's dtype, within bf16/fp32 range and far from fp16's, which overflows)."""
    if kind == "zeros":
        return torch.zeros(shape, device=device)
    if kind == "uniform-small":
        return (torch.rand(shape, generator=generator, device=device) * 2 - 1) * 1e-3
    if kind == "normal":
        return torch.randn(shape, generator=generator, device=device)
    if kind == "full-range":
        u = (torch.rand(shape, generator=generator, device=device) * 2 - 1) * FULL_RANGE_BINADES
        sign = torch.randint(0, 2, shape, generator=generator, device=device) * 2 - 1
        return sign * torch.exp2(u)
    raise ValueError(f"unknown input values {kind!r}; choose from {VALUE_KINDS}")

"""Dynamic frequency-based sampling (DFS, docs/algorithm.md §DFS sampling) as pure functions of the visit counters.

`v[i]` counts how often start index i began a world-model window, `b[i]` how often it began an
imagination window. Rarely trained starts are preferred for the world model; imagination prefers
starts the world model has seen at least as often as imagination has (scaled by `ratio`).
All functions return float64 probabilities over the valid starts, in the order of the counters.
"""

from __future__ import annotations

import math
from numbers import Real

import torch
from torch import Tensor


def _check_counts(name: str, counts: Tensor) -> None:
    if not isinstance(counts, Tensor) or counts.ndim != 1 or counts.numel() == 0:
        raise ValueError(f"{name} must be a non-empty 1-D tensor of visit counts, got {counts!r}")


def _check_positive(name: str, value: float) -> None:
    if not isinstance(value, Real) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")


def _softmax(logits: Tensor, settings: str, counts: Tensor) -> Tensor:
    """softmax over (N,) float64 logits; ValueError when the result is not finite (the logits overflowed)."""
    probs = torch.softmax(logits, dim=0)
    if not torch.isfinite(probs).all():
        raise ValueError(
            f"{settings} makes the DFS sampling probabilities non-finite: the scores over the temperature "
            f"overflow float64 (visit counts up to {float(counts.max()):g}); use a larger temperature"
        )
    return probs


def world_model_sampling_probs(v: Tensor, tau: float) -> Tensor:
    """p = softmax(−v / τ): the fewer world-model visits, the likelier a start. (N,) -> (N,) float64."""
    _check_counts("v", v)
    _check_positive("tau", tau)
    return _softmax(-v.double() / tau, f"tau={tau!r}", v)


def imagination_sampling_probs(v: Tensor, b: Tensor, ratio: float, alpha: float, beta: float, tau: float) -> Tensor:
    """q = softmax(score / τ), score = v − α·b' − β·max(0, v − b'), b' = b / ratio. (N,), (N,) -> (N,) float64.

    `ratio` = imagination batch / world-model batch (1024 / 16 = 64) puts both counters on
    the same scale; with α = β = 1 the score is min(0, v − b'): starts imagined more often than the
    world model has trained on them are avoided, all others are equally likely.
    """
    _check_counts("v", v)
    _check_counts("b", b)
    if v.shape != b.shape:
        raise ValueError(f"v and b must have the same shape, got {tuple(v.shape)} and {tuple(b.shape)}")
    _check_positive("ratio", ratio)
    _check_positive("tau", tau)
    for name, value in (("alpha", alpha), ("beta", beta)):
        if not isinstance(value, Real) or not math.isfinite(value):
            raise ValueError(f"{name} must be a finite number, got {value!r}")
    v, b_scaled = v.double(), b.double() / ratio
    score = v - alpha * b_scaled - beta * torch.clamp(v - b_scaled, min=0.0)
    settings = f"tau={tau!r} (ratio={ratio!r}, alpha={alpha!r}, beta={beta!r})"
    return _softmax(score / tau, settings, torch.maximum(v, b_scaled))


def uniform_sampling_probs(n: int) -> Tensor:
    """Every one of `n` starts equally likely (the ablation of docs/algorithm.md §DFS sampling). -> (n,) float64."""
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be an int >= 1, got {n!r}")
    return torch.full((n,), 1.0 / n, dtype=torch.float64)


def draw_starts(probs: Tensor, n: int, generator: torch.Generator | None) -> Tensor:
    """Draw `n` distinct indices with probabilities `probs` (without replacement). (N,) -> (n,) int64."""
    if n > probs.numel():
        raise ValueError(f"cannot draw {n} distinct starts from {probs.numel()}")
    return torch.multinomial(probs, n, replacement=False, generator=generator)

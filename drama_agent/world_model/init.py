"""Truncated-normal weight initialisation of the world model.

See docs/algorithm.md §World model, the authors' `weight_init`.
"""

from __future__ import annotations

import math

from torch import nn

TRUNC_NORMAL_STD = 0.87962566103423978
"""Standard deviation of a unit normal truncated at ±2; dividing by it makes the cut weights' std exact."""


def fans(layer: nn.Module) -> tuple[int, int]:
    """(fan_in, fan_out) of a Linear, Conv2d or ConvTranspose2d; convolution fans include the kernel area."""
    if isinstance(layer, nn.Linear):
        return layer.in_features, layer.out_features
    if isinstance(layer, (nn.Conv2d, nn.ConvTranspose2d)):
        area = math.prod(layer.kernel_size)
        return area * layer.in_channels, area * layer.out_channels
    raise TypeError(f"no fans for {type(layer).__name__}")


def init_std(fan_in: int, fan_out: int) -> float:
    """σ of the truncated normal: sqrt(1 / fan_avg) / 0.8796, so that the weights' actual std is sqrt(1 / fan_avg)."""
    return math.sqrt(2.0 / (fan_in + fan_out)) / TRUNC_NORMAL_STD


def trunc_normal_init_(module: nn.Module) -> None:
    """Initialise every Linear / Conv2d / ConvTranspose2d inside `module`: weights ~ N(0, σ²) cut at ±2σ, bias 0.

    Normalisation layers keep their defaults (scale 1, shift 0).
    """
    for layer in module.modules():
        if not isinstance(layer, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)):
            continue
        std = init_std(*fans(layer))
        nn.init.trunc_normal_(layer.weight, mean=0.0, std=std, a=-2.0 * std, b=2.0 * std)
        if layer.bias is not None:
            nn.init.zeros_(layer.bias)

"""Convolutional encoder and decoder of the world model (docs/algorithm.md §World model)."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


def conv_output_size(size: int, kernel: int, stride: int) -> int:
    """Side of a 'same'-padded (pad = kernel // 2) convolution's output."""
    pad = kernel // 2
    return (size + 2 * pad - kernel) // stride + 1


class Encoder(nn.Module):
    """Frames (N, 3, S, S) float in [0, 1] -> features (N, c_last · s · s).

    Per layer: Conv2d(kernel, pad kernel // 2, bias) → BatchNorm2d → SiLU, with the given channels and strides;
    s = S / prod(strides).
    """

    def __init__(self, frame_size: int, channels: tuple[int, ...], strides: tuple[int, ...], kernel: int) -> None:
        super().__init__()
        if len(channels) != len(strides):
            raise ValueError(f"encoder_channels {channels} and encoder_strides {strides} differ in length")
        if frame_size % math.prod(strides) != 0:
            raise ValueError(
                f"frame size {frame_size} is not divisible by the encoder's total stride {math.prod(strides)}"
            )
        layers: list[nn.Module] = []
        c_in, size = 3, frame_size
        for c_out, stride in zip(channels, strides, strict=True):
            layers += [nn.Conv2d(c_in, c_out, kernel, stride, padding=kernel // 2), nn.BatchNorm2d(c_out), nn.SiLU()]
            c_in, size = c_out, conv_output_size(size, kernel, stride)
        self.net = nn.Sequential(*layers)
        self.feature_shape = (c_in, size, size)
        """(c_last, s, s) before flattening."""
        self.out_dim = c_in * size * size

    def forward(self, frames: Tensor) -> Tensor:
        return self.net(frames).flatten(1)  # (N, C, s, s) -> (N, C·s·s)


class Decoder(nn.Module):
    """Latents (N, Z) -> frames (N, 3, S, S) in (0, 1).

    Linear(Z → c·s·s) → reshape (c, s, s) → BatchNorm2d → SiLU → per entry of `channels`:
    [ConvTranspose2d(kernel, stride 2, pad kernel // 2, output_pad 1) → BatchNorm2d → SiLU] →
    ConvTranspose2d(→ 3, kernel, stride 1, pad kernel // 2) → sigmoid. Output side S = s · 2^len(channels).
    """

    def __init__(
        self, latent_dim: int, feature_shape: tuple[int, int, int], channels: tuple[int, ...], kernel: int
    ) -> None:
        super().__init__()
        c_in, size, _ = feature_shape
        self.feature_shape = feature_shape
        self.stem = nn.Linear(latent_dim, math.prod(feature_shape))
        layers: list[nn.Module] = [nn.BatchNorm2d(c_in), nn.SiLU()]
        for c_out in channels:
            layers += [
                nn.ConvTranspose2d(c_in, c_out, kernel, stride=2, padding=kernel // 2, output_padding=1),
                nn.BatchNorm2d(c_out),
                nn.SiLU(),
            ]
            c_in = c_out
        layers.append(nn.ConvTranspose2d(c_in, 3, kernel, stride=1, padding=kernel // 2))
        self.net = nn.Sequential(*layers)
        self.frame_size = size * 2 ** len(channels)

    def forward(self, z: Tensor) -> Tensor:
        x = self.stem(z).unflatten(-1, self.feature_shape)  # (N, Z) -> (N, c, s, s)
        return torch.sigmoid(self.net(x))  # (N, 3, S, S)

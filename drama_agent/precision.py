"""The floating-point precision of training and acting: `train.precision` = "auto" | "fp32" | "bf16".

bf16 means autocast: matrix products and convolutions run in bfloat16 while the parameters, the optimiser
state, the SSD scan accumulation, the residual stream, normaliser statistics and the two-hot log-softmax stay
in float32 (each of those modules casts back). "auto" picks bf16 where the hardware computes it natively
(CUDA devices that support it; CPUs with AMX-BF16 or AVX512-BF16) and fp32 elsewhere, where bf16 would be
emulated and slower.
"""

from __future__ import annotations

import copy
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor, nn

from drama_agent.cpu import cpu_has_native_bf16

PrecisionSetting = Literal["auto", "fp32", "bf16"]


@dataclass(frozen=True)
class Precision:
    """The resolved precision of one device and why it was chosen."""

    bf16: bool
    device_type: str
    reason: str

    @property
    def name(self) -> str:
        return "bf16" if self.bf16 else "fp32"

    def autocast(self) -> AbstractContextManager:
        """bf16 autocast on the device when `bf16`, else a context that changes nothing."""
        return torch.autocast(self.device_type, dtype=torch.bfloat16, enabled=self.bf16)


def native_bf16(device: torch.device) -> bool:
    """True if `device` computes bf16 matrix products natively."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported(including_emulation=False)
    return device.type == "cpu" and cpu_has_native_bf16()


def resolve_precision(setting: PrecisionSetting, device: torch.device | str) -> Precision:
    """The precision `setting` means on `device`, with a reason the command-line tools print."""
    device = torch.device(device)
    if setting == "fp32":
        return Precision(False, device.type, "train.precision is fp32")
    if setting == "bf16":
        return Precision(True, device.type, "train.precision is bf16")
    if setting != "auto":
        raise ValueError(f"train.precision must be 'auto', 'fp32' or 'bf16', got {setting!r}")
    if native_bf16(device):
        what = "this GPU" if device.type == "cuda" else "this CPU (AMX-BF16 or AVX512-BF16)"
        return Precision(True, device.type, f"auto: {what} computes bf16 natively")
    return Precision(False, device.type, f"auto: no native bf16 on this {device.type.upper()}, bf16 would be slower")


AUTOCAST_LAYERS = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.ConvTranspose2d)
"""Layers whose weights and biases bf16 autocast rounds to bfloat16 at every call."""


def with_bf16_layers(module: nn.Module) -> nn.Module:
    """A frozen copy of `module` for inference under bf16 autocast, its `AUTOCAST_LAYERS` stored in bfloat16.

    Autocast rounds those weights to bfloat16 at every call; the copy holds the same rounded values once, so under
    autocast it computes bit for bit what `module` does, without the casts (about a fifth of a fixed agent's
    acting step on CPU, where the batches are a few rows). Everything else (norms, SSM parameters, statistics)
    is copied as it is.
    """
    copied = copy.deepcopy(module).requires_grad_(False)
    for layer in copied.modules():
        if isinstance(layer, AUTOCAST_LAYERS):
            layer.to(torch.bfloat16)
    return copied


class RMSNorm(nn.RMSNorm):
    """`nn.RMSNorm` over the last dimension that also takes a bfloat16 input (a Linear's output under autocast)
    with its float32 weight, computing what torch's unfused kernel computes for that pair: the statistics and the
    weight's product in float32, the result rounded to the input's dtype. torch takes that kernel with a warning
    on every call; this says what it computes and takes it quietly. Inputs of the weight's dtype take the fused
    kernel as before."""

    def __init__(self, dim: int, eps: float) -> None:
        super().__init__(dim, eps=eps)

    def forward(self, x: Tensor) -> Tensor:
        if x.dtype == self.weight.dtype:
            return super().forward(x)
        wide = x.float()
        scale = torch.rsqrt(wide.pow(2).mean(-1, keepdim=True).add_(self.eps))
        return wide.mul(scale).mul(self.weight).type_as(x)

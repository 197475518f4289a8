"""Symlog transforms and the symlog two-hot distribution shared by the reward head and the critic."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def symlog(x: Tensor) -> Tensor:
    return torch.sign(x) * torch.log1p(torch.abs(x))


def symexp(x: Tensor) -> Tensor:
    return torch.sign(x) * torch.expm1(torch.abs(x))


class SymlogTwoHot(nn.Module):
    """Two-hot targets over `bins` equally spaced points of symlog space.

    `loss(logits, target)` is the cross-entropy to the two-hot encoding of symlog(target);
    `mean(logits)` decodes as symexp(softmax(logits) · bins). The bins are a buffer, not a parameter.
    """

    def __init__(self, bins: int = 255, low: float = -20.0, high: float = 20.0) -> None:
        super().__init__()
        self.register_buffer("bins", torch.linspace(low, high, bins), persistent=False)

    def encode(self, target: Tensor) -> Tensor:
        """(...,) real values -> (..., bins) two-hot weights (rows sum to 1)."""
        bins = self.bins.to(target.dtype)
        x = symlog(target).clamp(bins[0], bins[-1])
        upper = torch.searchsorted(bins, x.contiguous(), right=True).clamp(1, len(bins) - 1)
        lower = upper - 1
        w_upper = (x - bins[lower]) / (bins[upper] - bins[lower])
        out = torch.zeros(*target.shape, len(bins), dtype=target.dtype, device=target.device)
        out.scatter_(-1, lower.unsqueeze(-1), (1 - w_upper).unsqueeze(-1))
        out.scatter_add_(-1, upper.unsqueeze(-1), w_upper.unsqueeze(-1))
        return out

    def mean(self, logits: Tensor) -> Tensor:
        """(..., bins) logits -> (...,) decoded value."""
        probs = logits.float().softmax(-1)
        return symexp((probs * self.bins).sum(-1))

    def loss(self, logits: Tensor, target: Tensor) -> Tensor:
        """Per-element cross-entropy (...,) between the logits and the two-hot target."""
        return -(self.encode(target.float()) * F.log_softmax(logits.float(), -1)).sum(-1)

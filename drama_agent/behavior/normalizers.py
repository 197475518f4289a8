"""Normalisers of the behaviour policy: the actor's input statistics and the return scale.

See docs/algorithm.md §Behaviour policy.

Both keep their statistics in buffers, so they are part of the owning module's `state_dict`
(docs/algorithm.md §Departures 4: the official code never saved the actor's statistics; here they are saved).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

INITIAL_COUNT = 1e-4
"""Pseudo-count of the prior (mean 0, variance 1) the running statistics start from."""


class RunningMeanStd(nn.Module):
    """Running per-feature mean and (biased) variance, then `clamp((x - mean) / sqrt(var + eps), ±clip)`.

    Statistics are merged batch by batch with the parallel (Chan et al.) update, starting from a prior
    of mean 0, variance 1 and weight `INITIAL_COUNT`. In training mode every call first merges the
    batch into the statistics and then normalises with the updated ones (the official order); eval mode
    freezes them. The trainer decides where the training loop updates them
    (`ActorCriticConfig.obs_norm_update`).
    """

    mean: Tensor
    var: Tensor
    count: Tensor

    def __init__(self, dim: int, clip: float = 10.0, eps: float = 1e-8) -> None:
        super().__init__()
        self.clip = clip
        self.eps = eps
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("var", torch.ones(dim))
        self.register_buffer("count", torch.tensor(INITIAL_COUNT, dtype=torch.float64))

    @torch.no_grad()
    def update(self, x: Tensor) -> None:
        """Merge a batch (..., dim) into the statistics."""
        flat = x.reshape(-1, x.shape[-1]).to(self.mean.dtype)  # (N, dim)
        batch_count = flat.shape[0]
        batch_mean = flat.mean(0)
        batch_var = flat.var(0, unbiased=False)
        total = self.count + batch_count
        old_weight = self.count / total  # float64 scalars: the count grows past float32's integer range
        batch_weight = batch_count / total
        delta = batch_mean - self.mean
        self.mean.add_(delta * batch_weight.to(delta.dtype))
        # var = M2 / total with M2 = var·count + batch_var·batch_count + delta²·count·batch_count / total
        self.var.copy_(
            self.var * old_weight.to(delta.dtype)
            + batch_var * batch_weight.to(delta.dtype)
            + delta.square() * (old_weight * batch_weight).to(delta.dtype)
        )
        self.count.copy_(total)

    def normalize(self, x: Tensor) -> Tensor:
        """(..., dim) -> (..., dim) with the current statistics, no update."""
        scaled = (x - self.mean) / torch.sqrt(self.var + self.eps)
        return scaled.clamp(-self.clip, self.clip)

    def forward(self, x: Tensor) -> Tensor:
        if self.training:
            self.update(x)
        return self.normalize(x)


def percentile(x: Tensor, q: float) -> Tensor:
    """The k-th smallest element of `x` (flattened) with k = int(q·N), at least 1 (the authors' rule)."""
    flat = x.detach().flatten()
    k = min(max(int(q * flat.numel()), 1), flat.numel())
    return flat.float().kthvalue(k).values


class ReturnNormalizer(nn.Module):
    """Return scale S = EMA(P_high(G)) − EMA(P_low(G)); `update` returns the divisor max(1, S).

    Both EMAs start at 0 without bias correction: ema ← decay·ema + (1 − decay)·percentile.
    """

    low: Tensor
    high: Tensor

    def __init__(self, decay: float = 0.99, low_q: float = 0.05, high_q: float = 0.95) -> None:
        super().__init__()
        self.decay = decay
        self.low_q = low_q
        self.high_q = high_q
        self.register_buffer("low", torch.zeros(()))
        self.register_buffer("high", torch.zeros(()))

    @property
    def scale(self) -> Tensor:
        return self.high - self.low

    @torch.no_grad()
    def update(self, returns: Tensor) -> Tensor:
        """Fold the percentiles of `returns` (any shape) into the EMAs; return max(1, S) (a 0-d tensor)."""
        self.low.mul_(self.decay).add_(percentile(returns, self.low_q) * (1 - self.decay))
        self.high.mul_(self.decay).add_(percentile(returns, self.high_q) * (1 - self.decay))
        return self.scale.clamp_min(1.0)

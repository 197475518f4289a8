"""Heads of the world model: categorical (posterior / prior) and MLP (reward / termination).

See docs/algorithm.md §World model.
"""

from __future__ import annotations

from torch import Tensor, nn

from drama_agent.precision import RMSNorm
from drama_agent.world_model.latent import unimix_logits


class CategoricalHead(nn.Module):
    """Linear(in → K·C) -> unimix log-probabilities (..., K, C) (see `latent` for the convention)."""

    def __init__(self, in_dim: int, stoch: int, classes: int, unimix: float) -> None:
        super().__init__()
        self.linear = nn.Linear(in_dim, stoch * classes)
        self.shape = (stoch, classes)
        self.unimix = unimix

    def forward(self, x: Tensor) -> Tensor:
        raw = self.linear(x).unflatten(-1, self.shape)  # (..., in) -> (..., K, C)
        return unimix_logits(raw, self.unimix)


class MLPHead(nn.Module):
    """Linear(in → hidden) → RMSNorm → SiLU → Linear(hidden → out): (..., in) -> (..., out)."""

    def __init__(self, in_dim: int, hidden: int, out_dim: int, norm_eps: float) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(in_dim, hidden), RMSNorm(hidden, eps=norm_eps), nn.SiLU(), nn.Linear(hidden, out_dim)
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)

"""λ-returns over an imagined rollout (docs/algorithm.md §Behaviour policy and §Departures), as pure functions."""

from __future__ import annotations

import torch
from torch import Tensor


def lambda_returns(
    rewards: Tensor,
    values: Tensor,
    continues: Tensor,
    gamma: float,
    lambda_: float,
    bootstrap_from_current: bool,
) -> Tensor:
    """λ-returns G_0..G_{H-1} of a rollout of H steps.

    rewards (B, H): r_k, the reward of the transition out of s_k.
    values (B, H+1): V(s_0)..V(s_H).
    continues (B, H): c_k = 1 − hard termination of that transition (0 cuts the bootstrap).
    Returns (B, H). In both variants G_H = V(s_H) and

    * bootstrap_from_current=False (DreamerV3): G_k = r_k + γ c_k ((1 − λ) V(s_{k+1}) + λ G_{k+1});
    * bootstrap_from_current=True (the authors' code, docs/algorithm.md §Departures 2):
      G_k = r_k + γ c_k ((1 − λ) V(s_k) + λ G_{k+1}).
    """
    horizon = rewards.shape[1]
    if values.shape[1] != horizon + 1 or continues.shape != rewards.shape:
        raise ValueError(
            f"expected rewards/continues (B, H) and values (B, H+1); got {tuple(rewards.shape)}, "
            f"{tuple(continues.shape)}, {tuple(values.shape)}"
        )
    bootstrap = values[:, :-1] if bootstrap_from_current else values[:, 1:]  # (B, H)
    discount = gamma * continues
    ret = values[:, -1]  # (B,)
    out = []
    for k in reversed(range(horizon)):
        ret = rewards[:, k] + discount[:, k] * ((1 - lambda_) * bootstrap[:, k] + lambda_ * ret)
        out.append(ret)
    return torch.stack(out[::-1], dim=1)  # (B, H)

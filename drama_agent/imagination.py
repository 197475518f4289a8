"""Imagined rollouts in the world model (docs/algorithm.md §Imagination).

Alignment used throughout: context observations o_1..o_L with actions a_1..a_L, a_t taken at o_t.
The sequence model over the context gives d_L; ẑ_0 ~ prior(d_L) is the dream of o_{L+1}. At imagined
step k the action a_k is taken at ẑ_k, d_{k+1} = step(ẑ_k, a_k), ẑ_{k+1} ~ prior(d_{k+1}). The reward
and termination of that transition are read from d_{k+1}, or from d_k with the authors' convention
(`ActorCriticConfig.reward_before_action`, docs/algorithm.md §Departures 1). Each imagined step costs one
`step` call, independent of the context length. `drama_agent.dream` reads what a dream shows from these states.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from drama_agent.sequence.model import State
from drama_agent.world_model import WorldModel

Policy = Callable[[Tensor], Tensor]
"""features (B, F) -> actions (B,) int64."""


@dataclass
class Rollout:
    """One batch of imagined trajectories; index k runs over the imagined states s_0..s_H."""

    latents: Tensor  # (B, H+1, Z) ẑ_0..ẑ_H
    hidden: Tensor  # (B, H+1, D) d_0..d_H (d_0 is the last context output)
    actions: Tensor  # (B, H) a_0..a_{H-1}

    @property
    def features(self) -> Tensor:
        """(B, H+1, Z + D) policy inputs [ẑ ; d]."""
        return torch.cat([self.latents, self.hidden], dim=-1)

    def rewards_and_continues(self, world_model: WorldModel, reward_before_action: bool) -> tuple[Tensor, Tensor]:
        """(B, H) rewards of each imagined transition and continue flags (0 where the termination logit > 0)."""
        hidden = self.hidden[:, :-1] if reward_before_action else self.hidden[:, 1:]  # (B, H, D)
        rewards = world_model.predict_reward(hidden)
        continues = (world_model.predict_termination_logit(hidden) <= 0).float()
        return rewards, continues


def start_state(
    world_model: WorldModel, obs: Tensor, actions: Tensor, generator: torch.Generator | None = None
) -> tuple[Tensor, Tensor, State]:
    """Encode real context windows and run the sequence model over them in parallel.

    obs uint8 (B, L, S, S, 3), actions int64 (B, L) -> ẑ_0 (B, Z) ~ prior(d_L), d_L (B, D), state after d_L.
    """
    z = world_model.sample(world_model.encode(obs), generator)  # (B, L, Z)
    d, state = world_model.sequence_model(z, actions)  # (B, L, D)
    last = d[:, -1]  # (B, D)
    return world_model.sample(world_model.prior(last), generator), last, state


def imagine_rollout(
    world_model: WorldModel,
    obs: Tensor,
    actions: Tensor,
    horizon: int,
    policy: Policy | None = None,
    planned_actions: Tensor | None = None,
    generator: torch.Generator | None = None,
) -> Rollout:
    """Dream `horizon` steps beyond real context windows (obs (B, L, S, S, 3), actions (B, L)).

    Actions come from `policy` (closed loop) or from `planned_actions` (B, horizon) (open loop); exactly one
    must be given. The caller chooses grad mode and BatchNorm mode (`eval()` for imagination).
    """
    if (policy is None) == (planned_actions is None):
        raise ValueError("give exactly one of `policy` and `planned_actions`")
    if planned_actions is not None and planned_actions.shape != (obs.shape[0], horizon):
        expected = (obs.shape[0], horizon)
        raise ValueError(f"planned_actions must have shape {expected}, got {tuple(planned_actions.shape)}")
    z_k, d_k, state = start_state(world_model, obs, actions, generator)
    latents, hidden, taken = [z_k], [d_k], []
    for k in range(horizon):
        a_k = policy(torch.cat([z_k, d_k], dim=-1)) if planned_actions is None else planned_actions[:, k]
        d_k, state = world_model.sequence_model.step(z_k, a_k, state)  # (B, D)
        z_k = world_model.sample(world_model.prior(d_k), generator)  # (B, Z)
        latents.append(z_k)
        hidden.append(d_k)
        taken.append(a_k)
    return Rollout(
        latents=torch.stack(latents, 1),
        hidden=torch.stack(hidden, 1),
        actions=torch.stack(taken, 1) if taken else actions.new_zeros(obs.shape[0], 0),
    )

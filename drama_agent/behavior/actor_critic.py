"""Actor, critic and slow critic of the behaviour policy (docs/algorithm.md §Behaviour policy).

Both networks read the feature [ẑ_t ; d_t] (K·C + D wide). The actor normalises it with running
statistics first; the critic predicts a 255-bin symlog two-hot value distribution. The slow critic
is an EMA copy of the critic that is never trained by gradients.
"""

from __future__ import annotations

import copy
import math

import torch
from torch import Tensor, nn

from drama_agent.behavior.normalizers import ReturnNormalizer, RunningMeanStd
from drama_agent.config import ActorCriticConfig, DramaConfig
from drama_agent.distributions import SymlogTwoHot
from drama_agent.precision import RMSNorm

HIDDEN_GAIN = math.sqrt(2.0)
"""Orthogonal-init gain of the hidden linear layers."""
OUTPUT_GAIN = 0.001
"""Orthogonal-init gain of the output layers (near-uniform policy and near-zero value at the start)."""


def _linear(in_dim: int, out_dim: int, gain: float) -> nn.Linear:
    layer = nn.Linear(in_dim, out_dim)
    nn.init.orthogonal_(layer.weight, gain)
    nn.init.zeros_(layer.bias)
    return layer


def mlp(in_dim: int, hidden: int, layers: int, out_dim: int, norm_eps: float) -> nn.Sequential:
    """layers × [Linear → RMSNorm → SiLU] of width `hidden`, then Linear(hidden → out_dim)."""
    blocks: list[nn.Module] = []
    for i in range(layers):
        width_in = in_dim if i == 0 else hidden
        blocks += [_linear(width_in, hidden, HIDDEN_GAIN), RMSNorm(hidden, eps=norm_eps), nn.SiLU()]
    blocks.append(_linear(hidden, out_dim, OUTPUT_GAIN))
    return nn.Sequential(*blocks)


class Actor(nn.Module):
    """Feature (..., F) -> action logits (..., A). In training mode each call updates the input statistics."""

    def __init__(self, cfg: ActorCriticConfig, feature_dim: int, num_actions: int) -> None:
        super().__init__()
        self.num_actions = num_actions
        self.normalizer = RunningMeanStd(feature_dim, clip=cfg.obs_norm_clip, eps=cfg.obs_norm_eps)
        self.net = mlp(feature_dim, cfg.actor_hidden, cfg.actor_layers, num_actions, cfg.norm_eps)

    def forward(self, features: Tensor) -> Tensor:
        return self.net(self.normalizer(features))  # (..., A)

    @torch.no_grad()
    def act(self, features: Tensor, deterministic: bool = False, generator: torch.Generator | None = None) -> Tensor:
        """(..., F) -> (...,) int64 actions: sampled (with `generator` if given) or the most likely one."""
        logits = self(features)  # (..., A)
        if deterministic:
            return logits.argmax(-1)
        probs = logits.float().softmax(-1).reshape(-1, self.num_actions)  # (N, A)
        actions = torch.multinomial(probs, 1, generator=generator)  # (N, 1)
        return actions.reshape(logits.shape[:-1])


class Critic(nn.Module):
    """Feature (..., F) -> value logits (..., bins); `value` decodes them to (...,) returns."""

    def __init__(self, cfg: ActorCriticConfig, feature_dim: int) -> None:
        super().__init__()
        self.net = mlp(feature_dim, cfg.critic_hidden, cfg.critic_layers, cfg.value_bins, cfg.norm_eps)
        self.two_hot = SymlogTwoHot(cfg.value_bins, cfg.value_bin_low, cfg.value_bin_high)

    def forward(self, features: Tensor) -> Tensor:
        return self.net(features)  # (..., bins)

    def value(self, features: Tensor) -> Tensor:
        return self.two_hot.mean(self(features))  # (...,)


class ActorCritic(nn.Module):
    """Actor, critic, slow critic and return normaliser: one `state_dict` holds all of their state.

    Train `trainable_parameters()` (actor and critic); call `update_slow_critic()` after each update.
    """

    def __init__(self, cfg: ActorCriticConfig, feature_dim: int, num_actions: int) -> None:
        super().__init__()
        self.cfg = cfg
        self.feature_dim = feature_dim
        self.num_actions = num_actions
        self.actor = Actor(cfg, feature_dim, num_actions)
        self.critic = Critic(cfg, feature_dim)
        self.slow_critic = copy.deepcopy(self.critic).requires_grad_(False)
        self.return_norm = ReturnNormalizer(cfg.return_norm_decay, cfg.return_norm_low, cfg.return_norm_high)

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [*self.actor.parameters(), *self.critic.parameters()]

    @torch.no_grad()
    def update_slow_critic(self) -> None:
        """slow ← decay·slow + (1 − decay)·critic, parameter by parameter."""
        decay = self.cfg.slow_critic_decay
        slow = list(self.slow_critic.parameters())
        torch._foreach_mul_(slow, decay)
        torch._foreach_add_(slow, list(self.critic.parameters()), alpha=1 - decay)


def build_actor_critic(cfg: DramaConfig, num_actions: int) -> ActorCritic:
    """The behaviour policy for features [ẑ (K·C) ; d (D)] of the configured world model."""
    feature_dim = cfg.world_model.latent_dim + cfg.sequence.d_model
    return ActorCritic(cfg.actor_critic, feature_dim, num_actions)

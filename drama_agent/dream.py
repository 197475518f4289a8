"""The dream: what the world model shows of an imagined state, for a whole rollout or one action at a time.

`read_state` is the one place that turns an imagined state (ẑ_k, d_k) into what a dream shows: the frame
decoded from ẑ_k, the policy's action probabilities and the critic's value at [ẑ_k ; d_k], and the reward and
termination predicted from d_k for the transition that led to the state. `imagine` (behind
`DramaAgent.imagine`) and `DreamEnv` (behind the viewer) both use it, state by state on the same shapes, so
with the same generator seed they show the same numbers.

Alignment (docs/algorithm.md §Imagination): context o_1..o_L with a_t taken at o_t; ẑ_0 is the dream of
o_{L+1}; action a_k is taken at ẑ_k. The reward and termination shown for a_k are read from d_{k+1}, after
the action: the prediction of that transition itself. Training reads them from d_k instead when
`ActorCriticConfig.reward_before_action` is True (the authors' convention, docs/algorithm.md §Departures 1);
the dream keeps the after-action reading so that what it shows for a transition does not depend on that flag.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor

from drama_agent.behavior import ActorCritic
from drama_agent.checks import check_frames, eval_mode
from drama_agent.imagination import imagine_rollout, start_state
from drama_agent.sequence.model import State
from drama_agent.world_model import WorldModel


@dataclass
class Imagination:
    """A dream beyond real context; index k = imagined step. Frames are uint8 (B, H, S, S, 3) or None."""

    frames: np.ndarray | None  # the dreamed observation at which actions[:, k] is taken
    rewards: np.ndarray  # (B, H) predicted reward of taking actions[:, k] there
    terminations: np.ndarray  # (B, H) bool, predicted termination of that transition (logit > 0)
    termination_probs: np.ndarray  # (B, H)
    actions: np.ndarray  # (B, H) int64
    action_probs: np.ndarray  # (B, H, A) the policy's probabilities at each dreamed state
    values: np.ndarray  # (B, H) the critic's value of each dreamed state


@dataclass
class DreamState:
    """What a dream shows of one imagined state, for a batch of B dreams."""

    frame: Tensor | None  # (B, S, S, 3) uint8 decoding of ẑ_k, None when not decoded
    reward: Tensor  # (B,) predicted reward of the transition that led here (read from d_k)
    termination_logit: Tensor  # (B,) of that transition
    value: Tensor  # (B,) the critic's value of the state
    action_probs: Tensor  # (B, A) the policy's probabilities at the state


def read_state(
    world_model: WorldModel, actor_critic: ActorCritic, z: Tensor, d: Tensor, decode: bool = True
) -> DreamState:
    """z (B, Z), d (B, D) -> what the dream shows of that state. Models in eval mode, no grad."""
    features = torch.cat([z, d], dim=-1)  # (B, Z + D)
    frame = world_model.to_uint8(world_model.decode(z[:, None]))[:, 0] if decode else None  # (B, S, S, 3)
    return DreamState(
        frame=frame,
        reward=world_model.predict_reward(d),
        termination_logit=world_model.predict_termination_logit(d),
        value=actor_critic.critic.value(features),
        action_probs=actor_critic.actor(features).softmax(-1),
    )


@torch.no_grad()
def imagine(
    world_model: WorldModel,
    actor_critic: ActorCritic,
    obs: Tensor,
    actions: Tensor,
    horizon: int,
    planned_actions: Tensor | None = None,
    generator: torch.Generator | None = None,
    decode: bool = True,
) -> Imagination:
    """Dream `horizon` steps after context obs uint8 (B, L, S, S, 3), actions (B, L); `planned_actions`
    (B, horizon) drive it open loop, None lets the policy choose. Puts the models in eval mode."""
    eval_mode(world_model, actor_critic)
    actor = actor_critic.actor
    rollout = imagine_rollout(
        world_model,
        obs,
        actions,
        horizon,
        policy=None if planned_actions is not None else (lambda f: actor.act(f, generator=generator)),
        planned_actions=planned_actions,
        generator=generator,
    )
    states = [
        read_state(world_model, actor_critic, rollout.latents[:, k], rollout.hidden[:, k], decode and k < horizon)
        for k in range(horizon + 1)
    ]  # states[k] for the imagined states s_0..s_H

    def stack(values: list[Tensor]) -> np.ndarray:
        return torch.stack(values, 1).cpu().numpy() if values else np.zeros((obs.shape[0], 0), np.float32)

    logits = [s.termination_logit for s in states[1:]]  # H tensors (B,)
    return Imagination(
        frames=stack([s.frame for s in states[:-1]]) if decode and horizon else None,
        rewards=stack([s.reward for s in states[1:]]),
        terminations=stack(logits) > 0,
        termination_probs=stack([torch.sigmoid(logit) for logit in logits]),
        actions=rollout.actions.cpu().numpy(),
        action_probs=stack([s.action_probs for s in states[:-1]]),
        values=stack([s.value for s in states[:-1]]),
    )


class DreamEnv:
    """The world model as an environment, stepped one action at a time (a batch of one dream).

    `reset(obs_context, action_context)` encodes real context o_1..o_L (a_t taken at o_t) and returns the
    dream of o_{L+1}; each `step(action)` takes `action` at the current dreamed frame and returns the next.
    The random draws happen in the same order and on the same shapes as in `imagine`, so with the same seed
    a reset followed by k steps gives the frames, rewards, termination probabilities, values and action
    probabilities of `imagine(..., horizon=k + 1, planned_actions=...)`. `policy_action()` draws the
    policy's action at the current dreamed state as `imagine` does without planned actions.

    Every `info` describes the state just reached (`read_state`): `reward` and `termination_prob` of the
    transition that led to it (for `reset`, the context's last action a_L), `value` and `action_probs` (A,)
    there. `terminated` is the predicted termination (logit > 0); a dream is never truncated.

    `seed`: every `reset` starts a fresh generator from `seed` (or from the `seed` given to `reset`), so
    each dream is reproducible; None draws from `generator` (a fresh unseeded one if not given).
    """

    def __init__(
        self,
        world_model: WorldModel,
        actor_critic: ActorCritic,
        seed: int | None = None,
        generator: torch.Generator | None = None,
    ) -> None:
        self.world_model = world_model
        self.actor_critic = actor_critic
        self.device = next(world_model.parameters()).device
        self.seed = seed
        self.action_space = gym.spaces.Discrete(actor_critic.num_actions)
        self.generator = generator if generator is not None else torch.Generator(self.device)
        self._z: Tensor | None = None  # (1, Z) the current dreamed latent ẑ_k
        self._d: Tensor | None = None  # (1, D) the sequence output d_k it was drawn from
        self._state: State | None = None
        self.steps = 0

    @property
    def features(self) -> Tensor:
        """(1, Z + D) the policy input [ẑ_k ; d_k] of the current dreamed state."""
        if self._z is None or self._d is None:
            raise RuntimeError("call reset() with a real context before stepping the dream")
        return torch.cat([self._z, self._d], dim=-1)

    @torch.no_grad()
    def reset(
        self, obs_context: Any, action_context: Any, seed: int | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Start dreaming after real context (L, S, S, 3) uint8 and actions (L,); returns the dream of o_{L+1}."""
        obs = torch.as_tensor(np.asarray(obs_context), device=self.device)
        acts = torch.as_tensor(np.asarray(action_context), device=self.device).long()
        check_frames(obs, self.world_model.frame_size, ("L",), "obs_context")
        if len(obs) == 0:
            raise ValueError("obs_context must hold at least one observation")
        if acts.shape != obs.shape[:1]:
            raise ValueError(f"action_context must have shape {tuple(obs.shape[:1])}, got {tuple(acts.shape)}")
        seed = self.seed if seed is None else seed
        if seed is not None:
            self.generator = torch.Generator(self.device).manual_seed(seed)
        eval_mode(self.world_model, self.actor_critic)
        self._z, self._d, self._state = start_state(self.world_model, obs[None], acts[None], self.generator)
        self.steps = 0
        frame, info, _ = self._show()
        return frame, info

    @torch.no_grad()
    def step(self, action: int) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """Take `action` at the current dreamed frame; returns (frame, reward, terminated, truncated, info)."""
        if not self.action_space.contains(int(action)):
            raise ValueError(f"invalid action {action!r} for {self.action_space}")
        if self._z is None:
            raise RuntimeError("call reset() with a real context before stepping the dream")
        eval_mode(self.world_model, self.actor_critic)
        world_model = self.world_model
        taken = torch.tensor([int(action)], device=self.device)
        self._d, self._state = world_model.sequence_model.step(self._z, taken, self._state)  # (1, D)
        self._z = world_model.sample(world_model.prior(self._d), self.generator)  # (1, Z)
        self.steps += 1
        frame, info, terminated = self._show()
        return frame, info["reward"], terminated, False, info

    @torch.no_grad()
    def policy_action(self, deterministic: bool = False) -> int:
        """The policy's action at the current dreamed state, drawn with the dream's generator."""
        features = self.features
        eval_mode(self.world_model, self.actor_critic)
        return int(self.actor_critic.actor.act(features, deterministic, self.generator).item())

    def _show(self) -> tuple[np.ndarray, dict[str, Any], bool]:
        """The current frame (S, S, 3) uint8, its info dict and whether its transition is predicted to end."""
        state = read_state(self.world_model, self.actor_critic, self._z, self._d)
        info = {
            "reward": float(state.reward[0]),
            "termination_prob": float(torch.sigmoid(state.termination_logit)[0]),
            "value": float(state.value[0]),
            "action_probs": state.action_probs[0].cpu().numpy(),
            "step": self.steps,
        }
        return state.frame[0].cpu().numpy(), info, bool(state.termination_logit[0] > 0)

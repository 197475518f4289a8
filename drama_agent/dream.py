"""`DreamEnv`: the world model as an environment, stepped one action at a time.

`reset(obs_context, action_context)` encodes real context o_1..o_L (a_t taken at o_t) and returns the dream
of o_{L+1}; each `step(action)` takes `action` at the current dreamed frame and returns the next one. The
random draws happen in the same order and on the same shapes as in `DramaAgent.imagine`, so with the same
seed a reset followed by k steps gives the frames (and rewards, termination probabilities, values and
action probabilities) of `agent.imagine(..., horizon=k + 1, actions=..., seed=seed)`. `policy_action()`
draws the agent's own action at the current dreamed state the way `imagine(actions=None)` does, so a dream
played by the policy also matches `imagine` under the same seed.

Every returned `info` describes the state just reached: `reward` and `termination_prob` of the transition
that led to it (for `reset`, the context's last action a_L), `value` and `action_probs` (A,) of the policy
there. `terminated` is the predicted termination (logit > 0); a dream is never truncated.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor

from drama_agent.agent import DramaAgent
from drama_agent.imagination import start_state
from drama_agent.sequence.model import State


class DreamEnv:
    """Imagination of `agent`'s world model behind a Gymnasium-like reset/step interface (batch of one).

    `seed`: every `reset` starts a fresh generator from `seed` (or from the `seed` given to `reset`), so each
    dream is reproducible; None draws from the agent's own generator.
    """

    def __init__(self, agent: DramaAgent, seed: int | None = None) -> None:
        self.agent = agent
        self.seed = seed
        self.action_space = gym.spaces.Discrete(agent.num_actions)
        self.generator = agent.generator
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
        agent = self.agent
        obs = torch.as_tensor(np.asarray(obs_context), device=agent.device)
        acts = torch.as_tensor(np.asarray(action_context), device=agent.device).long()
        if obs.dim() != 4 or obs.dtype != torch.uint8 or tuple(obs.shape[1:]) != agent.obs_shape or len(obs) == 0:
            raise ValueError(
                f"obs_context must be uint8 (L, {', '.join(map(str, agent.obs_shape))}) with L >= 1, "
                f"got {obs.dtype} {tuple(obs.shape)}"
            )
        if acts.shape != obs.shape[:1]:
            raise ValueError(f"action_context must have shape {tuple(obs.shape[:1])}, got {tuple(acts.shape)}")
        seed = self.seed if seed is None else seed
        if seed is not None:
            self.generator = torch.Generator(agent.device).manual_seed(seed)
        self._eval()
        self._z, self._d, self._state = start_state(agent.world_model, obs[None], acts[None], self.generator)
        self.steps = 0
        info, _ = self._info()
        return self._frame(), info

    @torch.no_grad()
    def step(self, action: int) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """Take `action` at the current dreamed frame; returns (frame, reward, terminated, truncated, info)."""
        if not self.action_space.contains(int(action)):
            raise ValueError(f"invalid action {action!r} for {self.action_space}")
        self._eval()
        world_model = self.agent.world_model
        taken = torch.tensor([int(action)], device=self.agent.device)
        self._d, self._state = world_model.sequence_model.step(self._z, taken, self._state)  # (1, D)
        self._z = world_model.sample(world_model.prior(self._d), self.generator)  # (1, Z)
        self.steps += 1
        info, terminated = self._info()
        return self._frame(), info["reward"], terminated, False, info

    @torch.no_grad()
    def policy_action(self, deterministic: bool = False) -> int:
        """The agent's action at the current dreamed state, drawn with the dream's generator."""
        self._eval()
        return int(self.agent.actor_critic.actor.act(self.features, deterministic, self.generator).item())

    def _eval(self) -> None:
        self.agent.world_model.eval()
        self.agent.actor_critic.eval()

    def _frame(self) -> np.ndarray:
        """(S, S, 3) uint8 decoding of ẑ_k, through the same batched `decode` as `imagine`."""
        world_model = self.agent.world_model
        return world_model.to_uint8(world_model.decode(self._z[:, None]))[0, 0].cpu().numpy()

    def _info(self) -> tuple[dict[str, Any], bool]:
        """The info dict of the current state and whether its transition is predicted to terminate."""
        world_model, actor_critic = self.agent.world_model, self.agent.actor_critic
        features = self.features
        logit = world_model.predict_termination_logit(self._d)  # (1,)
        info = {
            "reward": float(world_model.predict_reward(self._d)[0]),
            "termination_prob": float(torch.sigmoid(logit)[0]),
            "value": float(actor_critic.critic.value(features)[0]),
            "action_probs": actor_critic.actor(features).softmax(-1)[0].cpu().numpy(),
            "step": self.steps,
        }
        return info, bool(logit[0] > 0)

"""The model side of the viewer: a real game and the world model's open-loop dream of it, one frame at a time.

Alignment (that of `DramaAgent.imagine`): at frame t the agent (or a human) takes a_t at the real o_t and the
game returns o_{t+1}. On a re-sync the dream restarts from the last L real pairs (o, a) up to (o_t, a_t),
L = `cfg.train.act_context`, and its first frame is the dream of o_{t+1}; until the next re-sync each
frame steps the dream with the same a_t the real game got. So the frame shown after a re-sync at t is the
one-step prediction of o_{t+1}, and k frames later the k-step open-loop prediction. Dream number n (counting
re-syncs from 0) draws its latents from the seed `seed + n`.

In dream-only mode the real game stands still and the agent's policy (or the human) acts inside the dream;
when the dream predicts the episode's end it restarts from the real context.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np

from drama_agent import DramaAgent
from drama_agent.dream import DreamEnv


@dataclass
class FrameView:
    """Everything one displayed frame shows."""

    frame: int  # frames advanced so far (1 for the first)
    real: np.ndarray  # (S, S, 3) uint8 the real observation (the last one, frozen, in dream-only mode)
    dream: np.ndarray  # (S, S, 3) uint8 the dreamed observation of the same time step
    dream_info: dict[str, Any]  # DreamEnv info: reward, termination_prob, value, action_probs
    action: int  # the action that led to this frame
    dream_step: int  # frames since the last re-sync (1 right after it)
    dream_number: int  # re-syncs before this dream, from 0; its latents come from the seed `seed + dream_number`
    errors: list[float] = field(default_factory=list)  # per-frame error of the current open-loop dream
    real_reward: float | None = None  # the game's reward for `action` (None in dream-only mode)
    real_done: bool = False  # the game's episode ended with this frame
    dream_only: bool = False
    synced: bool = False  # the dream restarted from real context at this frame


def frame_error(real: np.ndarray, dream: np.ndarray) -> float:
    """Mean absolute pixel difference of two uint8 frames, in [0, 1]."""
    return float(np.abs(real.astype(np.int16) - dream.astype(np.int16)).mean() / 255.0)


class Session:
    """A real game played by `agent` (or a human) beside the agent's dream of it; see the module docstring."""

    def __init__(self, agent: DramaAgent, env: gym.Env, horizon: int = 16, seed: int = 0) -> None:
        if horizon < 1:
            raise ValueError(f"horizon must be >= 1, got {horizon}")
        self.agent, self.env = agent, env
        self.horizon = horizon
        self.seed = seed
        self.dream = DreamEnv(agent.world_model, agent.actor_critic, generator=agent.random.acting)
        context = agent.cfg.train.act_context
        self.context_obs: deque[np.ndarray] = deque(maxlen=context)  # last real observations (S, S, 3)
        self.context_actions: deque[int] = deque(maxlen=context)  # the actions taken at them
        self.obs: np.ndarray | None = None  # the current real observation
        self.frame = 0
        self.syncs = 0
        self.since_sync = 0
        self.errors: list[float] = []
        self.dream_only = False
        self.view: FrameView | None = None
        self._resync = True
        self._episode_over = True
        self._first_reset = True
        self._dream_over = False
        self._agent_stale = False

    def request_resync(self) -> None:
        """Restart the dream from real context at the next frame."""
        self._resync = True

    def set_dream_only(self, on: bool) -> None:
        """Enter or leave dream-only mode; leaving re-syncs the dream with the real game."""
        if self.dream_only and not on:
            self._resync = True
        self.dream_only = on
        self._dream_over = False

    def advance(self, action: int | None = None) -> FrameView:
        """One frame: `action` (a human's) or the agent's choice; in dream-only mode the dream alone moves."""
        if action is not None and not 0 <= action < self.agent.num_actions:
            raise ValueError(f"action must be in [0, {self.agent.num_actions}), got {action}")
        self.frame += 1
        self.view = (
            self._advance_dream(action) if self.dream_only and self.obs is not None else self._advance_real(action)
        )
        return self.view

    def _advance_real(self, action: int | None) -> FrameView:
        if self._episode_over:
            self.obs, _ = self.env.reset(seed=self.seed) if self._first_reset else self.env.reset()
            self._first_reset, self._episode_over = False, False
            self.agent.reset()
            self.context_obs.clear()
            self.context_actions.clear()
            self._resync = True
        if action is None:
            if self._agent_stale:  # a human played since the agent's last action: its context is not the game's
                self.agent.reset()
                self._agent_stale = False
            action = self.agent.act(self.obs)
        else:
            self._agent_stale = True
        self.context_obs.append(self.obs)
        self.context_actions.append(action)
        obs, reward, terminated, truncated, _ = self.env.step(action)
        synced = self._resync or self.since_sync >= self.horizon
        if synced:
            dream, info = self._restart_dream()
        else:
            dream, _, _, _, info = self.dream.step(action)
        self.since_sync += 1
        self.errors.append(frame_error(obs, dream))
        self.obs = obs
        self._episode_over = bool(terminated or truncated)
        return self._view(
            dream, info, action, synced, real=obs, real_reward=float(reward), real_done=self._episode_over
        )

    def _advance_dream(self, action: int | None) -> FrameView:
        synced = self._dream_over or self._resync
        if synced:
            self._restart_dream()
        if action is None:
            action = self.dream.policy_action()
        dream, _, terminated, _, info = self.dream.step(action)
        self._dream_over = terminated
        self.since_sync += 1
        return self._view(dream, info, action, synced, real=self.obs, dream_only=True)

    def _view(self, dream: np.ndarray, info: dict[str, Any], action: int, synced: bool, **extra: Any) -> FrameView:
        """The frame just played, with what every mode shows about the dream."""
        return FrameView(
            frame=self.frame,
            dream=dream,
            dream_info=info,
            action=action,
            dream_step=self.since_sync,
            dream_number=self.syncs - 1,
            errors=list(self.errors),
            synced=synced,
            **extra,
        )

    def _restart_dream(self) -> tuple[np.ndarray, dict[str, Any]]:
        """Dream from the real context (the dream of the observation after it); resets the error curve."""
        obs, actions = np.stack(self.context_obs), np.array(self.context_actions)
        dream, info = self.dream.reset(obs, actions, seed=self.seed + self.syncs)
        self.syncs += 1
        self.since_sync = 0
        self.errors = []
        self._resync = False
        return dream, info

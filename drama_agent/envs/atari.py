"""Atari100k preprocessing as Gymnasium wrappers, one behaviour each (docs/algorithm.md §Environment protocol).

`make_env` stacks them as: ALE (frameskip 1) → `ActionRepeat` → `ResizeFrame` → `LifeLossInfo` → [`AutoFire`] →
`EpisodeSeeding`.
"""

from __future__ import annotations

from typing import Any, SupportsFloat

import cv2
import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.utils import RecordConstructorArgs


def episode_seed(run_seed: int, episode: int) -> int:
    """The seed of episode `episode` (0-based) of a run seeded with `run_seed`, derived with a SeedSequence."""
    if run_seed < 0 or episode < 0:
        raise ValueError(f"run_seed and episode must be >= 0, got {run_seed} and {episode}")
    return int(np.random.SeedSequence([run_seed, episode]).generate_state(1, dtype=np.uint32)[0])


def _check_image_space(space: gym.Space, who: str) -> None:
    is_rgb = isinstance(space, spaces.Box) and space.dtype == np.uint8 and len(space.shape) == 3 and space.shape[2] == 3
    if not is_rgb:
        raise ValueError(f"{who} needs a uint8 (H, W, 3) Box observation space, got {space}")


class ActionRepeat(gym.Wrapper, RecordConstructorArgs):
    """Repeat each action `repeat` times, sum the rewards and return the pixel-wise max of the last two raw frames.

    The repeat stops early when the episode terminates or is truncated; the observation is then the max of
    the last two frames of this step (a single frame when the step produced only one).
    """

    def __init__(self, env: gym.Env, repeat: int):
        RecordConstructorArgs.__init__(self, repeat=repeat)
        super().__init__(env)
        if not isinstance(repeat, int) or repeat < 1:
            raise ValueError(f"action repeat must be an int >= 1, got {repeat!r}")
        _check_image_space(env.observation_space, "ActionRepeat")
        self.repeat = repeat

    def step(self, action: Any) -> tuple[np.ndarray, SupportsFloat, bool, bool, dict[str, Any]]:
        total_reward = 0.0
        last_two: list[np.ndarray] = []
        for _ in range(self.repeat):
            frame, reward, terminated, truncated, info = self.env.step(action)
            total_reward += float(reward)
            last_two = [*last_two[-1:], frame]
            if terminated or truncated:
                break
        obs = np.maximum(last_two[0], last_two[-1])  # (H, W, 3); a single frame is its own max
        return obs, total_reward, terminated, truncated, info


class ResizeFrame(gym.ObservationWrapper, RecordConstructorArgs):
    """Shrink RGB frames to `size` × `size` uint8 by `resize_frame` with `mode` ("area" or "max")."""

    def __init__(self, env: gym.Env, size: int, mode: str = "area"):
        RecordConstructorArgs.__init__(self, size=size, mode=mode)
        super().__init__(env)
        if not isinstance(size, int) or size < 1:
            raise ValueError(f"frame size must be an int >= 1, got {size!r}")
        if mode not in RESIZE_MODES:
            raise ValueError(f"resize mode must be one of {RESIZE_MODES}, got {mode!r}")
        _check_image_space(env.observation_space, "ResizeFrame")
        self.size = size
        self.mode = mode
        self.observation_space = spaces.Box(0, 255, (size, size, 3), np.uint8)

    def observation(self, observation: np.ndarray) -> np.ndarray:
        return resize_frame(observation, self.size, self.mode)  # (H, W, 3) -> (S, S, 3)


RESIZE_MODES = ("area", "max")


def resize_frame(frame: np.ndarray, size: int, mode: str = "area") -> np.ndarray:
    """The resize used by `ResizeFrame`: (H, W, 3) uint8 -> (size, size, 3) uint8.

    area: `cv2.INTER_AREA`, each output pixel the mean of its footprint (the paper's). max: the screen is cut
    into size × size blocks of whole pixels (rows i·H/size up to (i+1)·H/size, rounded down; columns alike) and
    each channel keeps its maximum over the block, so an object one screen pixel wide keeps its full brightness
    at any size (against a darker background) where area averaging fades it.
    """
    if mode == "area":
        return cv2.resize(frame, (size, size), interpolation=cv2.INTER_AREA)
    rows = np.arange(size) * frame.shape[0] // size
    cols = np.arange(size) * frame.shape[1] // size
    return np.maximum.reduceat(np.maximum.reduceat(frame, rows, axis=0), cols, axis=1)


class LifeLossInfo(gym.Wrapper, RecordConstructorArgs):
    """Add `info["life_loss"]`: True on a step that loses a life (per `rule`), else False.

    * `below_lowest` (the authors' code): the remembered count is updated only when the lives drop, so a
      loss is flagged only when the lives fall below the lowest count seen in the episode; after a bonus
      life (3 → 4) the drop back to 3 is not flagged.
    * `any_drop`: every decrease from the previous step is flagged.

    The episode goes on (only the game's own termination ends it); the trainer stores
    `terminated or life_loss` as the replay termination flag. The step that loses the last life is
    flagged too (it is also `terminated`). Environments without `info["lives"]` never set the flag,
    nor does this wrapper when `enabled` is False.
    """

    RULES = ("below_lowest", "any_drop")

    def __init__(self, env: gym.Env, enabled: bool = True, rule: str = "below_lowest"):
        RecordConstructorArgs.__init__(self, enabled=enabled, rule=rule)
        super().__init__(env)
        if rule not in self.RULES:
            raise ValueError(f"life-loss rule must be one of {self.RULES}, got {rule!r}")
        self.enabled = enabled
        self.rule = rule
        self._lives: int | None = None

    def reset(self, **kwargs: Any) -> tuple[np.ndarray, dict[str, Any]]:
        obs, info = self.env.reset(**kwargs)
        self._lives = info.get("lives")
        info["life_loss"] = False
        return obs, info

    def step(self, action: Any) -> tuple[np.ndarray, SupportsFloat, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        lives = info.get("lives")
        lost = lives is not None and self._lives is not None and lives < self._lives
        if lost or self.rule == "any_drop" or self._lives is None:
            self._lives = lives
        info["life_loss"] = bool(self.enabled and lost)
        return obs, reward, terminated, truncated, info


class AutoFire(gym.Wrapper, RecordConstructorArgs):
    """Take one FIRE step inside the environment after every reset and after every step that loses a life.

    Breakout and similar games wait for FIRE before they serve; with this wrapper the agent never sees a game
    waiting for it. The FIRE step's reward is added to the agent step that follows a reset and to the step that
    lost the life otherwise; its ending flags and `info["life_loss"]` are merged into that step's.
    Needs an action set with FIRE and `info["lives"]`.
    """

    def __init__(self, env: gym.Env):
        RecordConstructorArgs.__init__(self)
        super().__init__(env)
        meanings = env.unwrapped.get_action_meanings()
        if "FIRE" not in meanings:
            raise ValueError(f"AutoFire needs a FIRE action, the game has {meanings}")
        self.fire = meanings.index("FIRE")
        self._lives: int | None = None
        self._pending = 0.0  # the reward of the FIRE step taken at reset

    def reset(self, **kwargs: Any) -> tuple[np.ndarray, dict[str, Any]]:
        self.env.reset(**kwargs)
        obs, reward, _, _, info = self.env.step(self.fire)  # no game ends on its first step
        self._lives, self._pending = info.get("lives"), float(reward)
        info["life_loss"] = False
        return obs, info

    def step(self, action: Any) -> tuple[np.ndarray, SupportsFloat, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        reward, self._pending = float(reward) + self._pending, 0.0
        lives = info.get("lives")
        lost = lives is not None and self._lives is not None and lives < self._lives
        self._lives = lives
        if lost and not (terminated or truncated):
            life_loss = info.get("life_loss", False)
            obs, fire_reward, terminated, truncated, info = self.env.step(self.fire)
            reward += float(fire_reward)
            info["life_loss"] = bool(life_loss or info.get("life_loss", False))
            self._lives = info.get("lives")
        return obs, reward, terminated, truncated, info


class EpisodeSeeding(gym.Wrapper, RecordConstructorArgs):
    """Seed every episode from the run seed: episode k gets `episode_seed(run_seed, k)`.

    With `same_seed_every_reset` every episode gets episode 0's seed (the authors' identical starts).
    `reset(seed=s)` makes `s` the new run seed and restarts the episode count, so a seeded reset is
    reproducible as Gymnasium requires. The action space is seeded once, with the run seed given here.
    """

    def __init__(self, env: gym.Env, run_seed: int, same_seed_every_reset: bool = False):
        RecordConstructorArgs.__init__(self, run_seed=run_seed, same_seed_every_reset=same_seed_every_reset)
        super().__init__(env)
        if not isinstance(run_seed, (int, np.integer)) or isinstance(run_seed, bool) or run_seed < 0:
            raise ValueError(f"seed must be an int >= 0, got {run_seed!r}")
        self.same_seed_every_reset = same_seed_every_reset
        self.run_seed = int(run_seed)
        self.episode = 0
        self.action_space.seed(self.run_seed)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        if seed is not None:
            self.run_seed, self.episode = int(seed), 0
        index = 0 if self.same_seed_every_reset else self.episode
        self.episode += 1
        return self.env.reset(seed=episode_seed(self.run_seed, index), options=options)

"""The input checks shared by the agent, the trainer, the dream and the world model, each in one place."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from torch import nn


def check_frames(obs: Any, frame_size: int, leading: tuple[str, ...] = (), name: str = "observation") -> None:
    """ValueError naming `name` unless `obs` (numpy or torch) is uint8 of shape (*leading, S, S, 3).

    `leading` names the dimensions before the frame, e.g. ("B", "L"); only their count is checked.
    """
    dims = (*leading, str(frame_size), str(frame_size), "3")
    dtype = str(obs.dtype).removeprefix("torch.")
    shape = tuple(obs.shape)
    if dtype != "uint8" or len(shape) != len(dims) or shape[len(leading) :] != (frame_size, frame_size, 3):
        raise ValueError(f"{name} must be uint8 ({', '.join(dims)}), got {dtype} {shape}")


def num_actions_of(space: Any) -> int:
    """The size of a discrete action space (a `Discrete` or an int); ValueError for anything else."""
    if isinstance(space, gym.spaces.Discrete):
        return int(space.n)
    if isinstance(space, (int, np.integer)) and not isinstance(space, bool):
        return int(space)
    raise ValueError(f"Drama needs a discrete action space (or its size), got {space!r}")


def check_env_matches(env: gym.Env, num_actions: int, obs_shape: tuple[int, ...]) -> None:
    """ValueError unless `env` has `num_actions` discrete actions and (S, S, 3) uint8 observations of `obs_shape`."""
    space = env.action_space
    if not isinstance(space, gym.spaces.Discrete) or space.n != num_actions:
        raise ValueError(f"the environment's action space is {space}, the agent expects Discrete({num_actions})")
    obs_space = env.observation_space
    if obs_space.shape != tuple(obs_shape) or obs_space.dtype != np.uint8:
        raise ValueError(
            f"the environment's observations are {obs_space.dtype} {obs_space.shape}, the agent expects uint8 "
            f"{tuple(obs_shape)} (make the env with drama_agent.make_env and the agent's cfg.env)"
        )


def eval_mode(*modules: nn.Module) -> None:
    """Put every module in eval mode (BatchNorm statistics and the actor's normaliser frozen)."""
    for module in modules:
        module.eval()


def count_parameters(module: nn.Module) -> int:
    """Number of trainable parameters of `module`."""
    return sum(p.numel() for p in module.parameters())

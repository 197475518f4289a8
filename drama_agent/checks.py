"""The input checks shared by the agent, the trainer, the dream and the world model, each in one place."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from drama_agent.config import EnvConfig
from drama_agent.envs import PROTOCOL_FIELDS, env_protocol


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


def check_count(value: Any, name: str, minimum: int = 1) -> int:
    """`value` as an int, or ValueError unless it is an integer >= `minimum` (bools and floats are refused)."""
    if not isinstance(value, (int, np.integer)) or isinstance(value, (bool, np.bool_)) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return int(value)


def check_batch_length(value: Any, name: str, batch: int) -> None:
    """ValueError naming both lengths unless the per-environment `value` has one entry per observation."""
    if len(value) != batch:
        raise ValueError(f"{name} has {len(value)} entries, but obs holds {batch} observations")


def check_action_ids(actions: np.ndarray, name: str) -> None:
    """ValueError unless `actions` holds integer action ids (floats and bools are refused, not rounded)."""
    if actions.dtype.kind not in "iu":
        raise ValueError(f"{name} must be integer action ids, got {actions.dtype}")


def check_same_game(env: gym.Env, env_id: str | None, cfg: EnvConfig) -> None:
    """ValueError unless `env` is the game `env_id` under the protocol of `cfg` (the fields that change what
    the agent sees and scores: frame size, resize, action repeat, frame limit, auto-fire), as far as the env
    reveals them."""
    actual_id = env.spec.id if env.spec is not None else None
    if env_id is not None and actual_id is not None and actual_id != env_id:
        raise ValueError(
            f"this agent was trained on {env_id}, but the environment is {actual_id}; "
            f"evaluate it on make_env({env_id!r}, agent.cfg.env)"
        )
    protocol = env_protocol(env)
    for name in PROTOCOL_FIELDS:
        expected = getattr(cfg, name)
        if name in protocol and protocol[name] != expected:
            raise ValueError(
                f"the environment runs with {name} {protocol[name]}, but the agent's config has {expected}; "
                f"build it with make_env(game, agent.cfg.env)"
            )


def eval_mode(*modules: nn.Module) -> None:
    """Put every module in eval mode (BatchNorm statistics and the actor's normaliser frozen)."""
    for module in modules:
        module.eval()


def count_parameters(module: nn.Module) -> int:
    """Number of trainable parameters of `module`."""
    return sum(p.numel() for p in module.parameters())


def resolve_device(device: str | torch.device) -> torch.device:
    """'auto' -> CUDA when available, else CPU; ValueError for a device that does not exist here."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"unknown device {device!r}; use 'auto', 'cpu', 'cuda' or 'cuda:N'") from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} asks for CUDA, which is not available here; use 'auto' or 'cpu'")
    return resolved

"""Shareable checkpoints: config.json + model.safetensors + README.md model card."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gymnasium as gym
import torch
from safetensors.torch import save_file

from drama_agent import hub
from drama_agent.config import DramaConfig
from drama_agent.scores import game_name

if TYPE_CHECKING:
    from drama_agent.agent import DramaAgent

LIMITS = [
    "Scores are from the agent's own evaluation episodes stated above, not from the paper's 5-seed protocol.",
    "Sampling (latents and, unless deterministic, actions) makes returns vary from run to run.",
]


def action_meanings(env: gym.Env | None) -> list[str] | None:
    getter = getattr(env.unwrapped, "get_action_meanings", None) if env is not None else None
    return list(getter()) if getter is not None else None


def model_tensors(agent: DramaAgent) -> dict[str, torch.Tensor]:
    """The strict state dict of world model + actor-critic (normaliser and EMA statistics included)."""
    tensors = {f"world_model.{k}": v for k, v in agent.world_model.state_dict().items()}
    tensors |= {f"actor_critic.{k}": v for k, v in agent.actor_critic.state_dict().items()}
    return {k: v.detach().cpu().contiguous() for k, v in tensors.items()}


def save_pretrained(
    agent: DramaAgent, folder: str | Path, evaluation: dict[str, Any] | None = None, name: str | None = None
) -> Path:
    """Write the shareable folder; `evaluation` is `agent.evaluate(...)`'s dict plus an `episodes` count."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    env_id = agent.env_id or "unknown"
    config = {
        "format_version": hub.FORMAT_VERSION,
        "package_version": _package_version(),
        "config": agent.cfg.to_dict(),
        "env_id": env_id,
        "num_actions": agent.num_actions,
        "obs_shape": list(agent.obs_shape),
        "action_meanings": action_meanings(agent.env),
        "steps_trained": agent.num_timesteps,
        "evaluation": evaluation,
    }
    (folder / "config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
    save_file(model_tensors(agent), str(folder / "model.safetensors"))
    card = {
        "name": name or folder.name,
        "game": game_name(env_id),
        "env_id": env_id,
        "preset": preset_name(agent.cfg),
        "steps_trained": agent.num_timesteps,
        "eval": evaluation,
        "parameter_counts": agent.parameter_counts(),
        "limits": LIMITS + _baseline(env_id),
        "package_version": config["package_version"],
    }
    (folder / "README.md").write_text(hub.model_card(card), encoding="utf-8")
    return folder


def load_pretrained(
    cls: type[DramaAgent],
    name_or_path: str,
    revision: str | None = None,
    device: str | torch.device = "auto",
    env: gym.Env | None = None,
    local_files_only: bool = False,
) -> DramaAgent:
    """Resolve (folder → shipped → Hub), check the config and load the weights strictly."""
    folder = hub.resolve_checkpoint(name_or_path, revision=revision, local_files_only=local_files_only)
    config = hub.read_checkpoint_config(folder)
    try:
        cfg = DramaConfig.from_dict(config["config"])
        num_actions, env_id = int(config["num_actions"]), config["env_id"]
    except (KeyError, TypeError, ValueError) as err:
        raise hub.CheckpointFormatError(f"{folder / 'config.json'} does not describe a Drama agent: {err}") from None
    if env is not None and (not isinstance(env.action_space, gym.spaces.Discrete) or env.action_space.n != num_actions):
        raise ValueError(
            f"checkpoint {name_or_path!r} was trained on {env_id} with {num_actions} actions; "
            f"the given environment has {env.action_space}"
        )
    agent = cls(cfg, env=env, action_space=num_actions, env_id=env_id, device=device)
    tensors = hub.load_checkpoint_tensors(folder)
    hub.strict_load(agent.world_model, tensors, "world_model.")
    hub.strict_load(agent.actor_critic, tensors, "actor_critic.")
    stray = sorted(k for k in tensors if not k.startswith(("world_model.", "actor_critic.")))
    if stray:
        raise hub.CheckpointFormatError(f"unexpected keys in {folder / 'model.safetensors'}: {stray[:10]}")
    agent.pretrained_info = config
    return agent


def _baseline(env_id: str) -> list[str]:
    """A line that puts the score in context: the random policy's return on this game."""
    from drama_agent.envs import CATCH_ID, random_policy_return
    from drama_agent.scores import score_table

    if env_id == CATCH_ID:
        return [f"Catch is a toy game: a random policy averages {random_policy_return():.2f}, perfect play +5."]
    row = score_table().get(game_name(env_id))
    if row is None:
        return []
    return [
        f"Published Atari100k reference: random {row['Random']:g}, human {row['Human']:g}, "
        f"Drama XS (paper) {row['DramaXS']:g}."
    ]


def preset_name(cfg: DramaConfig) -> str:
    for name in ("xs", "s", "debug"):
        preset = DramaConfig.preset(name)
        if (preset.world_model, preset.sequence) == (cfg.world_model, cfg.sequence):
            return name
    return "custom"


def _package_version() -> str:
    from drama_agent import __version__

    return __version__

"""Environments: `make_env` for Atari100k games and the built-in Catch game.

See docs/algorithm.md §Environment protocol.
"""

from __future__ import annotations

import difflib

import ale_py
import gymnasium as gym

from drama_agent.config import EnvConfig
from drama_agent.envs.atari import (
    RESIZE_MODES,
    ActionRepeat,
    AutoFire,
    EpisodeSeeding,
    LifeLossInfo,
    ResizeFrame,
    episode_seed,
    resize_frame,
)
from drama_agent.envs.catch import CATCH_ID, CatchEnv, random_policy_return

gym.register_envs(ale_py)

__all__ = [
    "RESIZE_MODES",
    "ActionRepeat",
    "AutoFire",
    "CatchEnv",
    "EpisodeSeeding",
    "LifeLossInfo",
    "ResizeFrame",
    "action_meanings",
    "episode_seed",
    "env_protocol",
    "list_games",
    "make_env",
    "random_policy_return",
    "resize_frame",
]


def _ale_games() -> dict[str, str]:
    """Lower-cased game name -> canonical name, for every `ALE/<Game>-v5` in Gymnasium's registry."""
    names = [key[len("ALE/") : -len("-v5")] for key in gym.registry if key.startswith("ALE/") and key.endswith("-v5")]
    return {name.lower(): name for name in names}


def list_games() -> list[str]:
    """Every name `make_env` accepts in its short form: the ALE games (e.g. "Pong") and "Catch"."""
    return sorted(_ale_games().values()) + ["Catch"]


def _resolve(game: str) -> str:
    """Return the Gymnasium id for `game` ("Pong", "ALE/Pong-v5", "Catch", ...) or raise ValueError."""
    if not isinstance(game, str):
        raise ValueError(f"game must be a string such as 'Pong', got {game!r}")
    if game.lower() in ("catch", CATCH_ID.lower()):
        return CATCH_ID
    short = game.removeprefix("ALE/").removesuffix("-v5")
    canonical = _ale_games().get(short.lower())
    if canonical is not None:
        return f"ALE/{canonical}-v5"
    close = difflib.get_close_matches(short, list_games(), n=3)
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    raise ValueError(
        f"unknown game {game!r}.{hint} Valid names are listed by `drama_agent.envs.list_games()` "
        f"(ALE games as 'Pong' or 'ALE/Pong-v5', and the built-in 'Catch')."
    )


def _check_config(cfg: EnvConfig) -> None:
    if not isinstance(cfg, EnvConfig):
        hint = " pass its env section: make_env(game, cfg.env)" if hasattr(cfg, "env") else ""
        raise ValueError(f"make_env needs an EnvConfig, got {type(cfg).__name__};{hint}")
    for name in ("frame_size", "action_repeat", "max_episode_frames"):
        value = getattr(cfg, name)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"EnvConfig.{name} must be an int >= 1, got {value!r}")


def make_env(game: str, cfg: EnvConfig | None = None, seed: int = 0, render_mode: str | None = None) -> gym.Env:
    """Build a game with the Atari100k protocol; observations are (S, S, 3) uint8 with S = `cfg.frame_size`.

    `cfg` is a config's env section (`DramaConfig.env`); None means `EnvConfig()`, the paper's protocol.

    Atari: ALE v5 with frameskip 1, no sticky actions, minimal action set and `cfg.max_episode_frames`,
    then `ActionRepeat` (sum of rewards, max of the last two frames), `ResizeFrame` (`cfg.resize`),
    `LifeLossInfo` (`info["life_loss"]` per `cfg.life_loss_rule`), with `cfg.auto_fire` `AutoFire` (in games
    whose action set has FIRE) and `EpisodeSeeding`. Rewards are not clipped.
    Catch is drawn directly at S (a multiple of 8) and takes one frame per action (`cfg.action_repeat`
    does not apply); it gets the same `life_loss` key (always False) and seeding.
    `render_mode` is passed to the underlying game (Atari renders the raw 210 × 160 screen).
    """
    cfg = EnvConfig() if cfg is None else cfg
    _check_config(cfg)
    env_id = _resolve(game)
    if env_id == CATCH_ID:
        env = gym.make(CATCH_ID, frame_size=cfg.frame_size, render_mode=render_mode)
    else:
        env = gym.make(
            env_id,
            frameskip=1,
            repeat_action_probability=0.0,
            full_action_space=False,
            max_num_frames_per_episode=cfg.max_episode_frames,
            render_mode=render_mode,
        )
        env = ResizeFrame(ActionRepeat(env, cfg.action_repeat), cfg.frame_size, cfg.resize)
    env = LifeLossInfo(env, enabled=cfg.life_loss_termination, rule=cfg.life_loss_rule)
    if cfg.auto_fire and _has_fire(env):
        env = AutoFire(env)
    return EpisodeSeeding(env, seed, same_seed_every_reset=cfg.same_seed_every_reset)


def action_meanings(env: gym.Env | None) -> list[str] | None:
    """The game's action names (`get_action_meanings()` of the unwrapped env), or None when it has none."""
    getter = getattr(env.unwrapped, "get_action_meanings", None) if env is not None else None
    return list(getter()) if getter is not None else None


def _has_fire(env: gym.Env) -> bool:
    return "FIRE" in (action_meanings(env) or ())


PROTOCOL_FIELDS = ("frame_size", "resize", "action_repeat", "max_episode_frames", "auto_fire")
"""The `EnvConfig` fields that change what an agent sees and scores (life-loss flags and seeding do not)."""


def env_protocol(env: gym.Env) -> dict[str, int | str]:
    """The `PROTOCOL_FIELDS` an environment built by `make_env` (or with its wrappers) actually runs with.

    Read from the wrapper chain and the game itself; a field the environment does not reveal is left out
    (Catch takes one frame per action, so it has no `action_repeat`).
    """
    found: dict[str, int | str] = {}
    layer = env
    while True:
        if isinstance(layer, ActionRepeat):
            found.setdefault("action_repeat", layer.repeat)
        elif isinstance(layer, ResizeFrame):
            found.setdefault("frame_size", layer.size)
            found.setdefault("resize", layer.mode)
        elif isinstance(layer, AutoFire):
            found.setdefault("auto_fire", True)
        if not isinstance(layer, gym.Wrapper):
            break
        layer = layer.env
    game = env.unwrapped
    if isinstance(game, CatchEnv):
        found.setdefault("frame_size", game.frame_size)
    ale = getattr(game, "ale", None)
    if ale is not None:
        found["max_episode_frames"] = int(ale.getInt("max_num_frames_per_episode"))
        if _has_fire(game):
            found.setdefault("auto_fire", False)
    return found

"""How well a world model dreams: open-loop dreams against real frames on held-out episodes.

Episodes are recorded once (the trained agent plays greedily in an environment seeded apart from training);
then every model is scored on the same frames. From each window of `context` real steps the model dreams
`horizon` steps driven by the actions that were really taken next, and each dreamed frame is compared with
the real one: mean squared error per pixel, pixels scaled to [0, 1]. The same figure for a freshly
initialised model of the same config tells how much of it the training earned.

On Atari most of a frame is static background, so a model that dreams only the background already scores a
small error. The error is therefore also given on the moving pixels alone: those whose colour differs from
their episode's per-pixel median frame (the background) by more than `MOVING_THRESHOLD` in some channel. The
same windows "dreamed" as that median frame give the score of a model that shows no motion at all: a model
must beat it on the moving pixels to dream any of the game's objects.

    python -m drama_agent.dream_quality drama-debug-catch --episodes 5 --json dream.json
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gymnasium as gym
import numpy as np

if TYPE_CHECKING:
    from drama_agent.agent import DramaAgent


@dataclass
class Episode:
    """One real episode: obs[t] is the observation at which actions[t] was taken."""

    obs: np.ndarray  # (T, S, S, 3) uint8
    actions: np.ndarray  # (T,) int64


MOVING_THRESHOLD = 0.1
"""Colour difference from the episode's median frame, in [0, 1], above which a real pixel counts as moving."""


@dataclass
class DreamError:
    """Mean squared pixel error of open-loop dreams, overall and per dreamed step (index 0 = first dreamed frame),
    and on the real frames' moving pixels alone (None when none moved) with the share of pixels that moved."""

    mse: float
    mse_per_step: list[float]
    windows: int
    moving_mse: float | None = None
    moving_fraction: float = 0.0


def moving_pixels(frames: np.ndarray, threshold: float = MOVING_THRESHOLD) -> np.ndarray:
    """(T, S, S, 3) uint8 frames of one episode -> (T, S, S) bool: pixels away from the per-pixel median frame."""
    background = np.median(frames, axis=0)
    return (np.abs(frames.astype(np.float64) - background) > threshold * 255.0).any(axis=-1)


def record_episodes(
    agent: DramaAgent, env: gym.Env, n_episodes: int, deterministic: bool = True, max_steps: int = 5_000
) -> list[Episode]:
    """Let `agent` play `n_episodes` episodes of `env` (each cut after `max_steps`) and keep every obs and action."""
    episodes = []
    for _ in range(n_episodes):
        obs, _ = env.reset()
        agent.reset()
        frames, actions, done = [], [], False
        while not done and len(actions) < max_steps:
            action = agent.act(obs, deterministic=deterministic)
            frames.append(obs)
            actions.append(action)
            obs, _, terminated, truncated, _ = env.step(action)
            done = terminated or truncated
        episodes.append(Episode(np.stack(frames), np.asarray(actions, dtype=np.int64)))
    return episodes


def windows(episodes: list[Episode], context: int, horizon: int, max_windows: int) -> list[tuple[int, int]]:
    """(episode, start) of non-overlapping windows of `context + horizon` steps inside single episodes."""
    span = context + horizon
    found = [(i, start) for i, ep in enumerate(episodes) for start in range(0, len(ep.actions) - span + 1, span)]
    if len(found) > max_windows:  # spread the kept windows evenly over all of them
        keep = np.linspace(0, len(found) - 1, max_windows).round().astype(int)
        found = [found[k] for k in keep]
    return found


Dreamer = Callable[[list[tuple[int, int]], int], np.ndarray]
"""(windows as (episode, start), index of the first) -> their dreamed frames (B, H, S, S, 3) uint8."""


def dream_error(
    agent: DramaAgent,
    episodes: list[Episode],
    context: int,
    horizon: int = 16,
    max_windows: int = 64,
    batch_size: int = 16,
    seed: int = 0,
) -> DreamError:
    """Open-loop dreams of `horizon` steps after `context` real steps, scored against the real frames.

    For a window starting at t the model sees o_t..o_{t+L-1} with their actions and dreams o_{t+L}..o_{t+L+H-1}
    under the real actions a_{t+L}..a_{t+L+H-1}.
    """

    def dream(chunk: list[tuple[int, int]], first: int) -> np.ndarray:
        obs = np.stack([episodes[i].obs[s : s + context] for i, s in chunk])  # (B, L, S, S, 3)
        acts = np.stack([episodes[i].actions[s : s + context] for i, s in chunk])  # (B, L)
        planned = np.stack([episodes[i].actions[s + context : s + context + horizon] for i, s in chunk])  # (B, H)
        return agent.imagine(obs, acts, horizon=horizon, actions=planned, seed=seed + first).frames

    return _score(episodes, context, horizon, max_windows, batch_size, dream)


def background_error(
    episodes: list[Episode], context: int, horizon: int = 16, max_windows: int = 64, batch_size: int = 16
) -> DreamError:
    """The same windows "dreamed" as their episode's median frame: what a model that shows no motion scores."""
    backgrounds = [np.median(episode.obs, axis=0).astype(np.uint8) for episode in episodes]

    def dream(chunk: list[tuple[int, int]], first: int) -> np.ndarray:
        return np.stack([np.broadcast_to(backgrounds[i], (horizon, *backgrounds[i].shape)) for i, _ in chunk])

    return _score(episodes, context, horizon, max_windows, batch_size, dream)


def _score(
    episodes: list[Episode], context: int, horizon: int, max_windows: int, batch_size: int, dream: Dreamer
) -> DreamError:
    """Squared error of `dream`'s frames against the real frames that followed each window's context."""
    starts = windows(episodes, context, horizon, max_windows)
    if not starts:
        raise ValueError(f"no episode is longer than context + horizon = {context + horizon} steps")
    masks = {i: moving_pixels(episodes[i].obs) for i in {i for i, _ in starts}}
    squared, moving_sum, moving_count = [], 0.0, 0
    for first in range(0, len(starts), batch_size):
        chunk = starts[first : first + batch_size]
        real = np.stack([episodes[i].obs[s + context : s + context + horizon] for i, s in chunk])  # (B, H, S, S, 3)
        diff = (dream(chunk, first).astype(np.float64) - real.astype(np.float64)) / 255.0
        squared.append((diff**2).mean(axis=(2, 3, 4)))  # (B, H)
        moving = np.stack([masks[i][s + context : s + context + horizon] for i, s in chunk])  # (B, H, S, S)
        moving_sum += float((diff**2).mean(axis=-1)[moving].sum())
        moving_count += int(moving.sum())
    per_window_step = np.concatenate(squared)  # (N, H)
    return DreamError(
        float(per_window_step.mean()),
        per_window_step.mean(axis=0).tolist(),
        len(starts),
        moving_mse=moving_sum / moving_count if moving_count else None,
        moving_fraction=moving_count / per_window_step.size / (real.shape[2] * real.shape[3]),
    )


def untrained_twin(agent: DramaAgent) -> DramaAgent:
    """A freshly initialised agent with `agent`'s config, action count and game."""
    return type(agent)(agent.cfg, action_space=agent.num_actions, env_id=agent.env_id, device=agent.device)


def dream_quality(
    agent: DramaAgent,
    env: gym.Env,
    n_episodes: int = 3,
    horizon: int = 16,
    max_windows: int = 64,
    seed: int = 0,
    deterministic: bool = True,
) -> dict[str, Any]:
    """The card's figure: dream error of `agent`, of an untrained twin and of a motionless background "dream" (each
    episode's median frame) on the same held-out episodes.

    `env` should be seeded apart from training (e.g. `make_env(game, cfg.env, seed=20_000)`); the context is the
    agent's imagination context. The agent plays greedily unless `deterministic` is False (sampled actions, for
    agents whose greedy play stalls, e.g. never serving in Breakout).
    """
    episodes = record_episodes(agent, env, n_episodes, deterministic)
    context = agent.cfg.imagination.context
    trained = dream_error(agent, episodes, context, horizon, max_windows, seed=seed)
    untrained = dream_error(untrained_twin(agent), episodes, context, horizon, max_windows, seed=seed)
    background = background_error(episodes, context, horizon, max_windows)
    return {
        "trained": asdict(trained),
        "untrained": asdict(untrained),
        "background": asdict(background),
        "protocol": (
            f"{trained.windows} windows from {n_episodes} {'greedy' if deterministic else 'sampled-action'} "
            f"episode{'s' * (n_episodes != 1)} "
            f"({sum(len(e.actions) for e in episodes)} steps): {context} real steps, then {horizon} dreamed steps "
            "under the real actions; mean squared error per pixel in [0, 1]"
        ),
    }


def _optional(value: float | None) -> str:
    return "-" if value is None else f"{value:.5f}"


def main(argv: list[str] | None = None) -> int:
    from drama_agent.agent import DramaAgent
    from drama_agent.checkpoint import CheckpointFormatError
    from drama_agent.envs import make_env
    from drama_agent.hub import CheckpointNotFoundError

    parser = argparse.ArgumentParser(prog="python -m drama_agent.dream_quality", description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint", help="a save_pretrained folder, a shipped checkpoint name or a Hub id")
    parser.add_argument("--episodes", type=int, default=3, help="held-out episodes (default: 3)")
    parser.add_argument("--stochastic", action="store_true", help="sample actions instead of the greedy policy")
    parser.add_argument("--seed", type=int, default=20_000, help="environment seed of the first episode")
    parser.add_argument("--horizon", type=int, default=16, help="dreamed steps per window (default: 16)")
    parser.add_argument("--max-windows", type=int, default=64, help="windows scored at most (default: 64)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--json", type=Path, help="also write the result as JSON to this file")
    args = parser.parse_args(argv)
    try:
        agent = DramaAgent.from_pretrained(args.checkpoint, device=args.device)
        env = make_env(agent.env_id, agent.cfg.env, seed=args.seed)
        result = dream_quality(
            agent, env, args.episodes, args.horizon, args.max_windows, seed=args.seed, deterministic=not args.stochastic
        )
    except (CheckpointNotFoundError, CheckpointFormatError, ValueError) as err:
        print(f"dream_quality: error: {err}", file=sys.stderr)
        return 2
    result |= {"checkpoint": args.checkpoint, "env_id": agent.env_id, "seed": args.seed}
    trained, untrained = result["trained"], result["untrained"]
    print(
        f"{agent.env_id}: dream error {trained['mse']:.5f} (untrained model of the same config: "
        f"{untrained['mse']:.5f}); on the moving pixels ({trained['moving_fraction']:.1%} of them): "
        f"{_optional(trained['moving_mse'])} (untrained: {_optional(untrained['moving_mse'])}, background only: "
        f"{_optional(result['background']['moving_mse'])}); {result['protocol']}"
    )
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

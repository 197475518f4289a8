"""Published Atari100k scores (random, human, baselines), human-normalised scores and constant-action returns."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import gymnasium as gym


@cache
def score_table() -> dict[str, dict[str, float]]:
    """{game: {column: score}} from the shipped `atari100k_scores.csv` (columns Random, Human, DramaXS, ...)."""
    text = resources.files("drama_agent.data").joinpath("atari100k_scores.csv").read_text()
    rows = csv.DictReader(text.splitlines())
    return {row["game"]: {k: float(v) for k, v in row.items() if k != "game"} for row in rows}


def game_name(game: str) -> str:
    """'ALE/Pong-v5' or 'Pong' -> 'Pong'."""
    return game.split("/")[-1].split("-")[0]


def human_normalized_score(game: str, score: float) -> float | None:
    """(score - random) / (human - random) for the 26 Atari100k games; None for other games."""
    row = score_table().get(game_name(game))
    if row is None:
        return None
    return (score - row["Random"]) / (row["Human"] - row["Random"])


def random_score(game: str) -> float | None:
    """The random policy's return: the table's Random column for the Atari100k games, the exact value for Catch."""
    from drama_agent.envs import random_policy_return

    if game_name(game) == "Catch":
        return random_policy_return()
    row = score_table().get(game_name(game))
    return None if row is None else row["Random"]


def summarize_returns(game: str, returns: Sequence[float], lengths: Sequence[int]) -> dict:
    """Mean, std, the episodes' returns and lengths, and the human-normalised mean (None for other games)."""
    mean = float(np.mean(returns))
    return {
        "mean": mean,
        "std": float(np.std(returns)),
        "returns": list(returns),
        "lengths": list(lengths),
        "hns": human_normalized_score(game, mean),
    }


def constant_action_returns(env: gym.Env, seed: int) -> dict[str, float]:
    """{action name: return} of one episode per action that repeats it at every step, each from `reset(seed=seed)`.

    A reference for a trained policy: in a deterministic game one constant action can score well (in Breakout
    without sticky actions, LEFT scores 11: a paddle parked at the left wall returns the same serve every time),
    and a policy that scores no more than the best of them may have learned just that. Names come from the
    game's action meanings where it has them.
    """
    from drama_agent.envs import action_meanings

    names = action_meanings(env) or [str(a) for a in range(env.action_space.n)]
    returns = {}
    for action, name in enumerate(names):
        env.reset(seed=seed)
        total, done = 0.0, False
        while not done:
            _, reward, terminated, truncated, _ = env.step(action)
            total, done = total + float(reward), terminated or truncated
        returns[name] = total
    return returns

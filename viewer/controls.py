"""Action names and human control: held arrow keys / fire mapped to a game's actions by their meanings."""

from __future__ import annotations

from itertools import combinations
from typing import Any

import gymnasium as gym

from drama_agent.envs import action_meanings

CONTROLS = ("UP", "DOWN", "LEFT", "RIGHT", "FIRE")
"""Held controls the viewer tracks: the four arrow keys and space."""


def action_names(env: gym.Env, num_actions: int, pretrained_info: dict[str, Any] | None = None) -> list[str]:
    """Names of the actions: the game's `get_action_meanings()`, a checkpoint's recorded meanings, or indices."""
    names = action_meanings(env)
    if names is None and pretrained_info is not None:
        names = pretrained_info.get("action_meanings")
    if names is None or len(names) != num_actions:
        return [f"action {i}" for i in range(num_actions)]
    return [str(name) for name in names]


def human_action(held: set[str], names: list[str]) -> int:
    """The action whose ALE-style meaning (e.g. 'UPRIGHTFIRE') matches the held controls best.

    Opposite directions held together cancel. If the exact combination is not an action of the game, the
    largest sub-combination that is wins (e.g. 'UPFIRE' -> 'FIRE' in Breakout); nothing held is NOOP
    (action 0 when the game has no NOOP).
    """
    vertical = [d for d in ("UP", "DOWN") if d in held]
    horizontal = [d for d in ("RIGHT", "LEFT") if d in held]
    parts = [vertical[0] if len(vertical) == 1 else "", horizontal[0] if len(horizontal) == 1 else ""]
    parts.append("FIRE" if "FIRE" in held else "")
    present = [p for p in parts if p]
    index = {name.upper(): i for i, name in enumerate(names)}
    for size in range(len(present), 0, -1):
        for subset in combinations(present, size):
            name = "".join(subset)
            if name in index:
                return index[name]
    return index.get("NOOP", 0)

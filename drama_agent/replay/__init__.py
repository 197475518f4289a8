"""Replay buffer and DFS sampling (docs/algorithm.md §DFS sampling)."""

from drama_agent.replay.buffer import Batch, ReplayBuffer
from drama_agent.replay.dfs import (
    draw_starts,
    imagination_sampling_probs,
    uniform_sampling_probs,
    world_model_sampling_probs,
)

__all__ = [
    "Batch",
    "ReplayBuffer",
    "draw_starts",
    "imagination_sampling_probs",
    "uniform_sampling_probs",
    "world_model_sampling_probs",
]

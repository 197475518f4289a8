"""The grid world of the paper's long-sequence test (docs/algorithm.md §Long-sequence test) and its tokenisation.

The board is 5×5: the 16 border cells are walls, the 3×3 interior is floor holding one agent
(red in the paper) and one goal (yellow). Each frame the agent takes a uniformly random action

    0 up (row - 1), 1 down (row + 1), 2 left (col - 1), 3 right (col + 1), 4 stay;

a move into a wall leaves the agent where it is. When the move lands on the goal, the agent and the
goal are both re-drawn uniformly over ordered pairs of distinct interior cells, so the agent and the
goal never share a cell in any frame. The first frame of a sequence is drawn the same way.

Tokenisation: frame t is the 25 cells of state s_t in row-major order followed by the action a_t
taken in s_t, so a frame is `FRAME_LEN = 26` tokens and s_{t+1} follows a_t. Token ids:

    0 wall, 1 floor, 2 agent, 3 goal, 4 + a for action a (4..8), 9 BOS.

BOS never occurs in a sequence; it is the first model input, so every token of a sequence, the
very first cell included, is predicted (`next_token_pairs`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

SIZE = 5
"""Side of the square board."""
N_CELLS = SIZE * SIZE
"""Cell tokens per frame."""
FRAME_LEN = N_CELLS + 1
"""Tokens per frame: the cells and one action (the paper's l_f = 26)."""

WALL, FLOOR, AGENT, GOAL = 0, 1, 2, 3
ACTION_OFFSET = 4
"""Token id of action 0; action a is token `ACTION_OFFSET + a`."""
ACTION_NAMES = ("up", "down", "left", "right", "stay")
N_ACTIONS = len(ACTION_NAMES)
BOS = ACTION_OFFSET + N_ACTIONS
"""Start-of-sequence token, only ever a model input."""
VOCAB_SIZE = BOS + 1

ACTION_DELTAS = np.array([[-1, 0], [1, 0], [0, -1], [0, 1], [0, 0]], dtype=np.int64)
"""(row, col) displacement of each action."""

_rows, _cols = np.divmod(np.arange(N_CELLS), SIZE)
BORDER = (_rows == 0) | (_rows == SIZE - 1) | (_cols == 0) | (_cols == SIZE - 1)
"""(25,) bool: which flat cells are walls."""
INTERIOR = np.flatnonzero(~BORDER)
"""(9,) flat indices of the floor cells in row-major order."""


@dataclass(frozen=True)
class GridSequences:
    """A batch of B rollouts of F frames. Positions are flat cell indices `row * 5 + col`."""

    cells: np.ndarray
    """(B, F, 25) int64 cell tokens (WALL, FLOOR, AGENT, GOAL)."""
    actions: np.ndarray
    """(B, F) int64 action taken in each frame (0..4)."""
    agent: np.ndarray
    """(B, F) int64 agent position."""
    goal: np.ndarray
    """(B, F) int64 goal position."""
    redrawn: np.ndarray
    """(B, F) bool: the positions of this frame were drawn at random — the first frame, and every frame
    that follows a move onto the goal. Only these frames are not determined by their history."""

    @property
    def n_frames(self) -> int:
        return self.cells.shape[1]


def _draw_pairs(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """n uniform ordered pairs of distinct interior cells -> (agent, goal), each (n,)."""
    a = rng.integers(0, len(INTERIOR), size=n)
    g = rng.integers(0, len(INTERIOR) - 1, size=n)
    g = g + (g >= a)
    return INTERIOR[a], INTERIOR[g]


def render(agent: np.ndarray, goal: np.ndarray) -> np.ndarray:
    """Positions (...,) -> cell tokens (..., 25)."""
    cells = np.where(BORDER, WALL, FLOOR) * np.ones((*agent.shape, 1), dtype=np.int64)
    np.put_along_axis(cells, agent[..., None], AGENT, axis=-1)
    np.put_along_axis(cells, goal[..., None], GOAL, axis=-1)
    return cells


def step(agent: np.ndarray, action: np.ndarray) -> np.ndarray:
    """Move the agents (B,) by the actions (B,); walls block, so the result stays in the interior."""
    row, col = np.divmod(agent, SIZE)
    row = np.clip(row + ACTION_DELTAS[action, 0], 1, SIZE - 2)
    col = np.clip(col + ACTION_DELTAS[action, 1], 1, SIZE - 2)
    return row * SIZE + col


def generate(batch: int, n_frames: int, rng: np.random.Generator) -> GridSequences:
    """Roll out `batch` independent random-action episodes of `n_frames` frames (vectorised over the batch)."""
    agent = np.empty((batch, n_frames), dtype=np.int64)
    goal = np.empty((batch, n_frames), dtype=np.int64)
    redrawn = np.zeros((batch, n_frames), dtype=bool)
    actions = rng.integers(0, N_ACTIONS, size=(batch, n_frames))
    agent[:, 0], goal[:, 0] = _draw_pairs(batch, rng)
    redrawn[:, 0] = True
    for t in range(1, n_frames):
        moved = step(agent[:, t - 1], actions[:, t - 1])
        reached = moved == goal[:, t - 1]
        new_agent, new_goal = _draw_pairs(batch, rng)
        agent[:, t] = np.where(reached, new_agent, moved)
        goal[:, t] = np.where(reached, new_goal, goal[:, t - 1])
        redrawn[:, t] = reached
    return GridSequences(render(agent, goal), actions, agent, goal, redrawn)


def tokenize(seqs: GridSequences) -> Tensor:
    """Sequences -> (B, F * 26) int64 tokens, each frame its 25 cells then its action."""
    frames = np.concatenate([seqs.cells, ACTION_OFFSET + seqs.actions[..., None]], axis=-1)  # (B, F, 26)
    return torch.from_numpy(frames.reshape(frames.shape[0], -1))


def next_token_pairs(tokens: Tensor) -> tuple[Tensor, Tensor]:
    """(B, L) tokens -> (inputs, targets), both (B, L): inputs are BOS followed by tokens[:, :-1]."""
    bos = torch.full_like(tokens[:, :1], BOS)
    return torch.cat([bos, tokens[:, :-1]], dim=1), tokens


def frame_cells(tokens: Tensor) -> Tensor:
    """(B, F * 26) tokens (true or predicted, aligned with the targets) -> (B, F, 25) cell tokens."""
    batch, length = tokens.shape
    if length % FRAME_LEN:
        raise ValueError(f"sequence length {length} is not a multiple of the frame length {FRAME_LEN}")
    return tokens.reshape(batch, length // FRAME_LEN, FRAME_LEN)[..., :N_CELLS]

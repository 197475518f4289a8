"""The paper's error for the grid world, defined on teacher-forced argmax predictions.

See docs/algorithm.md §Long-sequence test.

Prediction: every cell token of every held-out frame is predicted from its *true* history (the
whole true sequence before it, BOS first) by the argmax of the model's next-token distribution;
the 25 predicted cells of frame t form the predicted frame P_t. Action tokens are predicted too
but not scored (they are random).

* A frame is **valid** when all 16 border cells are WALL, all 9 interior cells are FLOOR, AGENT or
  GOAL, and the interior holds exactly one AGENT and exactly one GOAL. (An interior wall, or any
  non-cell token in a cell, makes the frame invalid.)
* **Geometric error** = fraction of all predicted frames (every frame of every sequence, the first
  included) that are invalid.
* **Logic error** = fraction of the frames t ≥ 1 (the first frame of a sequence has no previous
  frame and action, so it is excluded) with a logic fault: P_t is invalid, or the positions were
  not redrawn (the previous move did not reach the goal) and P_t's agent is not at the cell the
  rules give for the true previous frame and action — which is the true agent position. After a move
  onto the goal both positions are redrawn at random and cannot be predicted, so those frames
  are checked for validity only.
* **Error** = (geometric + logic) / 2.

Even a perfect model does not reach 0 %: where positions are redrawn (the first frame and the
frames after a goal) the Bayes-optimal argmax of a cell is FLOOR until the prefix pins down the
agent or goal, so such frames are often invalid. `oracle_cells` computes that optimal prediction;
its error is the floor any model can reach under this metric.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from gridworld_task.env import AGENT, BORDER, FLOOR, GOAL, INTERIOR, WALL, GridSequences


@dataclass(frozen=True)
class GridError:
    """The paper's error split into its parts (fractions in [0, 1])."""

    geometric: float
    logic: float

    @property
    def error(self) -> float:
        return 0.5 * (self.geometric + self.logic)


def valid_frames(cells: Tensor) -> Tensor:
    """(..., 25) cell tokens -> (...,) bool: the frame obeys the geometry of the board."""
    border = torch.as_tensor(BORDER, device=cells.device)
    walls_ok = (cells[..., border] == WALL).all(-1)
    interior = cells[..., ~border]  # (..., 9)
    cells_ok = ((interior == FLOOR) | (interior == AGENT) | (interior == GOAL)).all(-1)
    one_each = ((interior == AGENT).sum(-1) == 1) & ((interior == GOAL).sum(-1) == 1)
    return walls_ok & cells_ok & one_each


def frame_faults(pred: Tensor, seqs: GridSequences) -> tuple[Tensor, Tensor]:
    """Predicted cells (B, F, 25) -> (geometric (B, F), logic (B, F - 1)) bool fault masks."""
    if pred.shape != seqs.cells.shape:
        raise ValueError(f"predicted cells {tuple(pred.shape)} do not match the sequences {seqs.cells.shape}")
    valid = valid_frames(pred)  # (B, F)
    agent = torch.as_tensor(seqs.agent, device=pred.device)
    redrawn = torch.as_tensor(seqs.redrawn, device=pred.device)
    agent_ok = pred.gather(-1, agent[..., None]).squeeze(-1) == AGENT  # (B, F); with validity: the only agent
    logic = ~valid[:, 1:] | (~redrawn[:, 1:] & ~agent_ok[:, 1:])
    return ~valid, logic


def grid_error(pred: Tensor, seqs: GridSequences) -> GridError:
    """The paper's error of predicted cells (B, F, 25) against the true sequences (F ≥ 2)."""
    if seqs.n_frames < 2:
        raise ValueError("the logic error needs at least two frames per sequence")
    geometric, logic = frame_faults(pred, seqs)
    return GridError(geometric.float().mean().item(), logic.float().mean().item())


def oracle_cells(seqs: GridSequences) -> Tensor:
    """Bayes-optimal teacher-forced argmax cells (B, F, 25), knowing the rules exactly.

    Frames that are not redrawn are determined by their history, so the oracle predicts them
    exactly. In a redrawn frame (agent, goal) is uniform over ordered pairs of distinct interior
    cells; at an interior cell with k interior cells left (this one included), an object not yet
    seen lies here with probability 1/k, so FLOOR wins while k > 2 and, at the ties k = 2, the
    lowest token id wins, as `torch.argmax` breaks ties.
    """
    cells = seqs.cells.copy()
    batch, frames, _ = cells.shape
    agent_seen = np.zeros((batch, frames), dtype=bool)
    goal_seen = np.zeros((batch, frames), dtype=bool)
    for i, cell in enumerate(INTERIOR):
        left = len(INTERIOR) - i
        # probabilities up to the common factor 1/left
        p_floor = left - (~agent_seen).astype(int) - (~goal_seen).astype(int)
        scores = np.stack([p_floor, ~agent_seen, ~goal_seen], axis=-1).astype(int)  # (B, F, 3)
        guess = np.array([FLOOR, AGENT, GOAL])[scores.argmax(-1)]
        truth = seqs.cells[..., cell]
        cells[..., cell] = np.where(seqs.redrawn, guess, truth)
        agent_seen |= truth == AGENT
        goal_seen |= truth == GOAL
    return torch.from_numpy(cells)

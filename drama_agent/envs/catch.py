"""Catch: a tiny built-in pixel game for fast CPU learning tests, in the Atari observation format.

The screen is a `grid` × `grid` board of square cells drawn on a `frame_size` × `frame_size` RGB uint8
frame (8 × 8 cells of 4 × 4 pixels at 32 px). A ball appears in the top row at a uniformly random
column and falls one row per step; the paddle sits in the bottom row and moves one cell per step
(actions: 0 noop, 1 left, 2 right; clamped at the walls). When the ball reaches the bottom row the
step pays +1 if the paddle is under it and −1 otherwise, and the next ball appears in the top row.
An episode is `n_balls` balls, i.e. exactly `n_balls · (grid − 1)` steps (5 balls → 35 steps at 8 × 8).
The paddle can reach any column while a ball falls, so the best return is `n_balls`.

Random-policy return (analytic): a policy that ignores the screen leaves the paddle's landing column
independent of the ball's column, which is uniform, so each ball is caught with probability exactly
1/grid whatever the paddle does. The return is therefore 2·Binomial(n_balls, 1/grid) − n_balls:
mean n_balls·(2/grid − 1) = **−3.75** and standard deviation 2·sqrt(n_balls·(1/grid)·(1 − 1/grid))
≈ 1.479 for the defaults (5 balls, 8 × 8). `tests/test_catch.py` measures it over random episodes.

Deterministic given the seed: all randomness (ball columns, the paddle's first column) comes from
`self.np_random`, seeded by `reset(seed=...)`.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

CATCH_ID = "drama_agent/Catch-v0"
BALL_RGB = (255, 96, 64)
PADDLE_RGB = (64, 200, 255)
NOOP, LEFT, RIGHT = 0, 1, 2


def random_policy_return(n_balls: int = 5, grid: int = 8) -> float:
    """Expected return of any policy that ignores the screen (see the module docstring)."""
    return n_balls * (2.0 / grid - 1.0)


class CatchEnv(gym.Env):
    """Catch a falling ball with a paddle; see the module docstring for the rules and the random return."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 15}

    def __init__(self, frame_size: int = 64, grid: int = 8, n_balls: int = 5, render_mode: str | None = None):
        if not isinstance(grid, int) or grid < 2:
            raise ValueError(f"grid must be an int >= 2, got {grid!r}")
        if not isinstance(frame_size, int) or frame_size < grid or frame_size % grid:
            raise ValueError(f"frame_size must be a positive multiple of grid={grid}, got {frame_size!r}")
        if not isinstance(n_balls, int) or n_balls < 1:
            raise ValueError(f"n_balls must be an int >= 1, got {n_balls!r}")
        if render_mode not in (None, *self.metadata["render_modes"]):
            raise ValueError(f"render_mode must be None or one of {self.metadata['render_modes']}, got {render_mode!r}")
        self.frame_size, self.grid, self.n_balls = frame_size, grid, n_balls
        self.cell = frame_size // grid
        self.render_mode = render_mode
        self.observation_space = spaces.Box(0, 255, (frame_size, frame_size, 3), np.uint8)
        self.action_space = spaces.Discrete(3)
        self._ball_row = self._ball_col = self._paddle = self._balls_left = 0

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        self._paddle = int(self.np_random.integers(self.grid))
        self._balls_left = self.n_balls
        self._new_ball()
        return self._draw(), {}

    def step(self, action: int) -> tuple[np.ndarray, float, bool, bool, dict]:
        if not self.action_space.contains(action):
            raise ValueError(f"invalid action {action!r} for {self.action_space}")
        if self._balls_left == 0:
            raise RuntimeError("step() called after the episode ended; call reset()")
        move = {NOOP: 0, LEFT: -1, RIGHT: 1}[int(action)]
        self._paddle = min(max(self._paddle + move, 0), self.grid - 1)
        self._ball_row += 1
        reward, terminated = 0.0, False
        if self._ball_row == self.grid - 1:
            reward = 1.0 if self._ball_col == self._paddle else -1.0
            self._balls_left -= 1
            terminated = self._balls_left == 0
            if not terminated:
                self._new_ball()
        return self._draw(), reward, terminated, False, {}

    def get_action_meanings(self) -> list[str]:
        """Action names in ALE's style (the viewer maps arrow keys by them)."""
        return ["NOOP", "LEFT", "RIGHT"]

    def render(self) -> np.ndarray | None:
        return self._draw() if self.render_mode == "rgb_array" else None

    def _new_ball(self) -> None:
        self._ball_row = 0
        self._ball_col = int(self.np_random.integers(self.grid))

    def _draw(self) -> np.ndarray:
        frame = np.zeros((self.frame_size, self.frame_size, 3), np.uint8)  # (S, S, 3)
        self._fill(frame, self.grid - 1, self._paddle, PADDLE_RGB)
        self._fill(frame, self._ball_row, self._ball_col, BALL_RGB)
        return frame

    def _fill(self, frame: np.ndarray, row: int, col: int, rgb: tuple[int, int, int]) -> None:
        c = self.cell
        frame[row * c : (row + 1) * c, col * c : (col + 1) * c] = rgb


if CATCH_ID not in gym.registry:
    gym.register(id=CATCH_ID, entry_point="drama_agent.envs.catch:CatchEnv")

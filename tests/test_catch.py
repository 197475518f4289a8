"""The built-in Catch game: rules, pixels, determinism and the documented random-policy return."""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest

from drama_agent.envs import CatchEnv, random_policy_return
from drama_agent.envs.catch import BALL_RGB, CATCH_ID, LEFT, NOOP, PADDLE_RGB, RIGHT


def locate(frame: np.ndarray, rgb: tuple[int, int, int], cell: int) -> tuple[int, int]:
    """(row, col) of the single cell drawn in `rgb`."""
    rows, cols = np.nonzero(np.all(frame == np.array(rgb, np.uint8), axis=-1))
    assert len(rows) == cell * cell, "exactly one cell of this colour"
    return int(rows.min()) // cell, int(cols.min()) // cell


def test_frame_layout_at_32_pixels() -> None:
    env = CatchEnv(frame_size=32)
    obs, _ = env.reset(seed=0)
    assert obs.shape == (32, 32, 3) and obs.dtype == np.uint8 and env.cell == 4
    ball_row, ball_col = locate(obs, BALL_RGB, 4)
    paddle_row, _ = locate(obs, PADDLE_RGB, 4)
    assert (ball_row, paddle_row) == (0, 7)
    assert np.count_nonzero(obs.any(axis=-1)) == 2 * 16  # two 4x4 cells, the rest black
    obs, *_ = env.step(NOOP)
    assert locate(obs, BALL_RGB, 4) == (1, ball_col)


def test_rules_paddle_moves_and_clamps_rewards_on_landing_steps() -> None:
    env = CatchEnv(frame_size=32)
    obs, _ = env.reset(seed=1)
    _, paddle = locate(obs, PADDLE_RGB, 4)
    for _ in range(3):
        obs, *_ = env.step(LEFT)
        paddle = max(paddle - 1, 0)
        assert locate(obs, PADDLE_RGB, 4)[1] == paddle
    obs, *_ = env.step(RIGHT)
    assert locate(obs, PADDLE_RGB, 4)[1] == paddle + 1
    env.reset(seed=2)
    rewards, terminated, steps = [], False, 0
    while not terminated:
        _, reward, terminated, truncated, _ = env.step(NOOP)
        rewards.append(reward)
        steps += 1
        assert not truncated
    assert steps == 35
    assert [i for i, r in enumerate(rewards) if r != 0] == [6, 13, 20, 27, 34]
    assert set(rewards) <= {-1.0, 0.0, 1.0}
    with pytest.raises(RuntimeError, match="reset"):
        env.step(NOOP)
    env.reset(seed=0)
    with pytest.raises(ValueError, match="invalid action"):
        env.step(3)


def chase_ball(obs: np.ndarray, cell: int) -> int:
    """The optimal policy, read from pixels: move the paddle towards the ball's column."""
    _, ball = locate(obs, BALL_RGB, cell)
    _, paddle = locate(obs, PADDLE_RGB, cell)
    return NOOP if ball == paddle else (LEFT if ball < paddle else RIGHT)


def test_chasing_policy_catches_every_ball() -> None:
    env = CatchEnv(frame_size=64)
    for seed in range(10):
        obs, _ = env.reset(seed=seed)
        total, terminated = 0.0, False
        while not terminated:
            obs, reward, terminated, _, _ = env.step(chase_ball(obs, 8))
            total += reward
        assert total == 5.0


def test_deterministic_given_seed_and_registered() -> None:
    a, b = gym.make(CATCH_ID, frame_size=32), gym.make(CATCH_ID, frame_size=32)
    a.action_space.seed(0)
    for seed in (0, 1):
        np.testing.assert_array_equal(a.reset(seed=seed)[0], b.reset(seed=seed)[0])
        for _ in range(35):
            action = a.action_space.sample()
            (obs_a, r_a, *_), (obs_b, r_b, *_) = a.step(action), b.step(action)
            np.testing.assert_array_equal(obs_a, obs_b)
            assert r_a == r_b
    first_balls = {locate(a.reset(seed=s)[0], BALL_RGB, 4)[1] for s in range(20)}
    assert len(first_balls) > 3


def test_random_policy_return_matches_docstring() -> None:
    """Mean of 2000 random episodes vs the analytic −3.75; sd 1.479 so the standard error is 0.033 (tolerance 5 SE)."""
    assert random_policy_return() == -3.75
    env = CatchEnv(frame_size=32)
    rng = np.random.default_rng(0)
    returns = []
    for episode in range(2000):
        env.reset(seed=episode)
        total, terminated = 0.0, False
        while not terminated:
            _, reward, terminated, _, _ = env.step(int(rng.integers(3)))
            total += reward
        returns.append(total)
    returns = np.array(returns)
    sd = 2 * math.sqrt(5 * (1 / 8) * (7 / 8))
    assert abs(returns.mean() - (-3.75)) < 5 * sd / math.sqrt(len(returns))
    assert abs(returns.std() - sd) < 0.1
    assert set(np.unique(returns)) <= {-5.0, -3.0, -1.0, 1.0, 3.0, 5.0}


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="multiple"):
        CatchEnv(frame_size=30)
    with pytest.raises(ValueError, match="n_balls"):
        CatchEnv(n_balls=0)
    with pytest.raises(ValueError, match="render_mode"):
        CatchEnv(render_mode="human")
    frame = CatchEnv(frame_size=32, render_mode="rgb_array")
    np.testing.assert_array_equal(frame.reset(seed=0)[0], frame.render())

"""Dream quality: open-loop dream error against real frames, aligned as documented, lower for a trained agent."""

from __future__ import annotations

import numpy as np
import pytest

from drama_agent import DramaAgent, make_env
from drama_agent.dream_quality import (
    MOVING_THRESHOLD,
    Episode,
    background_error,
    dream_error,
    dream_quality,
    moving_pixels,
    record_episodes,
    untrained_twin,
    windows,
)
from drama_agent.model_card import parse_model_card


@pytest.fixture(scope="module")
def catch_agent() -> DramaAgent:
    return DramaAgent.from_pretrained("drama-debug-catch", device="cpu", local_files_only=True)


def test_windows_stay_inside_episodes_and_do_not_overlap() -> None:
    episodes = [Episode(np.zeros((n, 8, 8, 3), np.uint8), np.zeros(n, np.int64)) for n in (25, 9, 10, 31)]
    assert windows(episodes, 4, 6, max_windows=100) == [(0, 0), (0, 10), (2, 0), (3, 0), (3, 10), (3, 20)]
    assert windows(episodes, 4, 6, max_windows=3) == [(0, 0), (2, 0), (3, 20)]  # first, middle, last


def test_error_is_the_squared_difference_of_imagine_frames_and_the_next_real_frames(catch_agent) -> None:
    env = make_env("Catch", catch_agent.cfg.env, seed=30_000)
    episode = record_episodes(catch_agent, env, 1)[0]
    context, horizon = 4, 16
    result = dream_error(catch_agent, [episode], context, horizon, max_windows=1, seed=5)
    dream = catch_agent.imagine(
        episode.obs[:context],
        episode.actions[:context],
        horizon,
        actions=episode.actions[context : context + horizon],
        seed=5,
    ).frames[0]
    real = episode.obs[context : context + horizon]
    reference = ((dream / 255.0 - real / 255.0) ** 2).mean(axis=(1, 2, 3))  # (H,)
    assert result.windows == 1
    np.testing.assert_allclose(result.mse_per_step, reference, rtol=1e-12)
    assert result.mse == pytest.approx(reference.mean(), rel=1e-12)


def test_a_perfect_dream_scores_zero(catch_agent, monkeypatch) -> None:
    episode = record_episodes(catch_agent, make_env("Catch", catch_agent.cfg.env, seed=30_001), 1)[0]
    real_frames = episode.obs

    class Perfect:
        frames: np.ndarray

    def oracle(obs, acts, horizon, actions, seed):  # the real continuation of the (single) window
        dream = Perfect()
        dream.frames = real_frames[None, len(acts[0]) : len(acts[0]) + horizon]
        return dream

    monkeypatch.setattr(catch_agent, "imagine", oracle)
    result = dream_error(catch_agent, [episode], context=4, horizon=16, max_windows=1)
    assert result.mse == 0.0 and result.mse_per_step == [0.0] * 16
    assert result.moving_mse == 0.0 and result.moving_fraction > 0.0


def test_moving_pixels_are_those_away_from_the_median_frame() -> None:
    frames = np.full((5, 4, 4, 3), 100, np.uint8)
    frames[1, 0, 0, 2] = 100 + 26  # just over 0.1 of the range in one channel: moving
    frames[2, 3, 3] = 100 + 25  # 25/255 < 0.1 in every channel: background
    frames[3, 1, 2, 0] = 0
    assert MOVING_THRESHOLD == 0.1
    expected = np.zeros((5, 4, 4), bool)
    expected[1, 0, 0] = expected[3, 1, 2] = True
    np.testing.assert_array_equal(moving_pixels(frames), expected)


def test_a_background_only_dream_is_scored_on_the_moving_pixels(catch_agent, monkeypatch) -> None:
    episode = record_episodes(catch_agent, make_env("Catch", catch_agent.cfg.env, seed=30_003), 1)[0]
    background = np.median(episode.obs, axis=0).astype(np.uint8)
    context, horizon = 4, 16

    class Dream:
        frames = np.broadcast_to(background, (1, horizon, *background.shape))

    monkeypatch.setattr(catch_agent, "imagine", lambda *args, **kwargs: Dream())
    result = dream_error(catch_agent, [episode], context, horizon, max_windows=1)
    real = episode.obs[context : context + horizon].astype(np.float64) / 255.0
    squared = ((background / 255.0 - real) ** 2).mean(axis=-1)  # (H, S, S)
    moving = moving_pixels(episode.obs)[context : context + horizon]
    assert moving.any()
    assert result.moving_mse == pytest.approx(squared[moving].mean(), rel=1e-12)
    assert result.moving_fraction == pytest.approx(moving.mean(), rel=1e-12)
    assert result.moving_mse > 10 * result.mse  # the background hides the miss in the all-pixel figure
    motionless = background_error([episode], context, horizon, max_windows=1)
    assert (motionless.mse, motionless.moving_mse) == (result.mse, result.moving_mse)


def test_trained_catch_agent_dreams_better_than_an_untrained_twin(catch_agent) -> None:
    result = dream_quality(catch_agent, make_env("Catch", catch_agent.cfg.env, seed=20_000), n_episodes=4)
    trained, untrained = result["trained"]["mse"], result["untrained"]["mse"]
    assert result["trained"]["windows"] == result["untrained"]["windows"] == 4
    assert trained < 0.1 * untrained  # measured: 0.009 against 0.25
    moving = result["trained"]["moving_mse"], result["background"]["moving_mse"]
    assert moving[0] < 0.5 * moving[1]  # Catch's ball and paddle are dreamed, not just the background
    twin = untrained_twin(catch_agent)
    assert twin.cfg == catch_agent.cfg and twin.num_actions == catch_agent.num_actions


def test_episodes_too_short_for_a_window_are_an_error(catch_agent) -> None:
    short = Episode(np.zeros((5, 32, 32, 3), np.uint8), np.zeros(5, np.int64))
    with pytest.raises(ValueError, match="no episode is longer than context \\+ horizon = 20 steps"):
        dream_error(catch_agent, [short], context=4, horizon=16)


def test_card_shows_the_dream_quality_pair_passed_with_the_evaluation(catch_agent, tmp_path) -> None:
    dream = {
        "trained": {
            "mse": 0.00923,
            "mse_per_step": [0.01] * 16,
            "windows": 5,
            "moving_mse": 0.0312,
            "moving_fraction": 0.052,
        },
        "untrained": {"mse": 0.24594, "mse_per_step": [0.25] * 16, "windows": 5},
        "background": {
            "mse": 0.0101,
            "mse_per_step": [0.01] * 16,
            "windows": 5,
            "moving_mse": 0.25,
            "moving_fraction": 0.052,
        },
        "protocol": "5 windows from 5 greedy episodes",
    }
    evaluation = {"mean": 1.0, "std": 0.0, "returns": [1.0], "episodes": 1, "hns": None, "dream_quality": dream}
    folder = catch_agent.save_pretrained(tmp_path / "card", evaluation=evaluation)
    _, body = parse_model_card((folder / "README.md").read_text("utf-8"))
    assert "| this agent | 0.00923 | 0.03120 (5.2% of pixels) | 5 |" in body
    assert "| untrained, same config | 0.24594 | - | 5 |" in body  # recorded before the moving-pixel figure
    assert "| no motion: the episode's median frame | 0.01010 | 0.25000 (5.2% of pixels) | 5 |" in body
    assert "Protocol: 5 windows from 5 greedy episodes." in body
    plain = catch_agent.save_pretrained(tmp_path / "plain", evaluation=evaluation | {"dream_quality": None})
    assert "Dream quality" not in (plain / "README.md").read_text("utf-8")


def test_recorded_episodes_are_cut_at_max_steps(catch_agent) -> None:
    env = make_env("Catch", catch_agent.cfg.env, seed=30_002)
    full, cut = record_episodes(catch_agent, env, 1)[0], record_episodes(catch_agent, env, 1, max_steps=10)[0]
    assert len(full.actions) > 10 and len(cut.actions) == len(cut.obs) == 10


def test_sampled_action_episodes_are_what_the_stochastic_option_records(catch_agent, monkeypatch) -> None:
    asked = []
    act = catch_agent.act
    monkeypatch.setattr(catch_agent, "act", lambda obs, deterministic=False: asked.append(deterministic) or act(obs))
    result = dream_quality(catch_agent, make_env("Catch", catch_agent.cfg.env, seed=20_000), 2, deterministic=False)
    assert asked and not any(asked)
    assert "from 2 sampled-action episodes" in result["protocol"]
    asked.clear()
    greedy = dream_quality(catch_agent, make_env("Catch", catch_agent.cfg.env, seed=20_000), 2)
    assert asked and all(asked) and "from 2 greedy episodes" in greedy["protocol"]

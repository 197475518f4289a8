"""make_env and the Atari100k wrappers (docs/algorithm.md §Environment protocol), checked against the raw emulator."""

from __future__ import annotations

import dataclasses

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from drama_agent.config import EnvConfig
from drama_agent.envs import ActionRepeat, env_protocol, episode_seed, list_games, make_env, resize_frame

CFG = EnvConfig()


def raw_atari(game: str) -> gym.Env:
    """The emulator with one frame per step, as make_env builds it before its wrappers."""
    return gym.make(
        f"ALE/{game}-v5",
        frameskip=1,
        repeat_action_probability=0.0,
        full_action_space=False,
        max_num_frames_per_episode=CFG.max_episode_frames,
    )


def test_pong_spaces_and_first_observation() -> None:
    env = make_env("Pong", CFG, seed=0)
    obs, info = env.reset()
    assert env.observation_space == gym.spaces.Box(0, 255, (64, 64, 3), np.uint8)
    assert env.action_space == gym.spaces.Discrete(6)
    assert obs.shape == (64, 64, 3) and obs.dtype == np.uint8
    assert info["life_loss"] is False
    assert env.unwrapped.ale.getFrameNumber() == 0
    assert make_env("ALE/Pong-v5", CFG).action_space == gym.spaces.Discrete(6)


def test_max_pool_and_reward_sum_match_raw_emulator_in_lockstep() -> None:
    """Step a frameskip-1 emulator with the same seed 4 frames per agent step and rebuild every observation."""
    env, raw = make_env("Pong", CFG, seed=3), raw_atari("Pong")
    obs, _ = env.reset()
    raw_frame, _ = raw.reset(seed=episode_seed(3, 0))
    np.testing.assert_array_equal(obs, resize_frame(raw_frame, 64))
    rng = np.random.default_rng(0)
    differs_from_last_frame = 0
    for _ in range(150):
        action = int(rng.integers(6))
        obs, reward, terminated, truncated, _ = env.step(action)
        frames, raw_reward = [], 0.0
        for _ in range(4):
            frame, r, raw_terminated, raw_truncated, _ = raw.step(action)
            frames.append(frame)
            raw_reward += float(r)
        expected = resize_frame(np.maximum(frames[-2], frames[-1]), 64)
        np.testing.assert_array_equal(obs, expected)
        assert reward == raw_reward
        assert (terminated, truncated) == (raw_terminated, raw_truncated)
        differs_from_last_frame += int(not np.array_equal(expected, resize_frame(frames[-1], 64)))
    assert env.unwrapped.ale.getFrameNumber() == 600
    # The ball moves between frames 3 and 4, so the max-pool is visible in most steps.
    assert differs_from_last_frame > 50


class CountFrames(gym.Wrapper):
    """Counts the raw emulator steps that pass through it."""

    def __init__(self, env: gym.Env):
        super().__init__(env)
        self.frames = 0

    def step(self, action):
        self.frames += 1
        return self.env.step(action)


def test_action_repeat_stops_when_the_episode_ends() -> None:
    """Breakout with NOOP/FIRE loses all 5 lives; the last agent step ends on the game-over frame."""
    counter = CountFrames(raw_atari("Breakout"))
    env = ActionRepeat(counter, repeat=4)
    env.reset(seed=0)
    steps, terminated = 0, False
    while not terminated:
        _, _, terminated, truncated, _ = env.step(steps % 2)  # alternate NOOP / FIRE
        steps += 1
        assert not truncated
    frames = env.unwrapped.ale.getEpisodeFrameNumber()
    assert frames % 4 != 0  # the game ends inside an agent step (so the check below can fail)
    assert counter.frames == frames and 4 * (steps - 1) < frames < 4 * steps


def test_breakout_life_loss_flag_once_per_life_without_ending_episode() -> None:
    env = make_env("Breakout", CFG, seed=0)
    _, info = env.reset()
    lives = [info["lives"]]
    flags, terminated, truncated = [], False, False
    while not (terminated or truncated):
        _, _, terminated, truncated, info = env.step(env.action_space.sample())
        flags.append(info["life_loss"])
        lives.append(info["lives"])
    assert terminated and not truncated
    assert lives[0] == 5 and lives[-1] == 0
    assert sum(flags) == 5  # one flag per life lost
    assert [i for i, f in enumerate(flags) if f] == [i for i in range(len(flags)) if lives[i + 1] < lives[i]]
    assert flags[-1] is True  # the last life ends the episode; the four before it did not
    assert len(flags) > 50


def test_auto_fire_serves_after_reset_and_each_lost_life_in_lockstep_with_the_emulator() -> None:
    """Breakout played without FIRE: the game waits forever, unless auto_fire serves; its FIRE steps are exactly
    4 raw FIRE frames after the reset and after each step that loses a life, their rewards on the next step."""
    waiting = make_env("Breakout", CFG, seed=5)
    waiting.reset()
    lives = {waiting.step(action)[4]["lives"] for action in [0, 2, 3] * 100}
    assert lives == {5}  # 300 steps without FIRE: no ball, no life lost

    env, raw = make_env("Breakout", dataclasses.replace(CFG, auto_fire=True), seed=5), raw_atari("Breakout")
    assert env_protocol(env)["auto_fire"] and not env_protocol(waiting)["auto_fire"]

    def raw_step(action: int) -> tuple[np.ndarray, float, bool, dict]:
        frames, total = [], 0.0
        for _ in range(4):
            frame, r, terminated, _, info = raw.step(action)
            frames.append(frame)
            total += float(r)
        return resize_frame(np.maximum(frames[-2], frames[-1]), 64), total, terminated, info

    obs, info = env.reset()
    raw.reset(seed=episode_seed(5, 0))
    expected, pending, _, raw_info = raw_step(1)
    np.testing.assert_array_equal(obs, expected)
    rng, flags, steps, terminated = np.random.default_rng(1), 0, 0, False
    while not terminated:
        action = int(rng.choice([0, 2, 3]))
        obs, reward, terminated, truncated, info = env.step(action)
        expected, raw_reward, raw_terminated, new_info = raw_step(action)
        if new_info["lives"] < raw_info["lives"] and not raw_terminated:
            expected, fire_reward, raw_terminated, new_info = raw_step(1)
            raw_reward += fire_reward
        raw_info, steps, flags = new_info, steps + 1, flags + info["life_loss"]
        np.testing.assert_array_equal(obs, expected)
        assert (reward, terminated, truncated) == (raw_reward + pending, raw_terminated, False)
        pending = 0.0
    assert flags == 5 and info["lives"] == 0  # served five times without the agent pressing FIRE
    frames = 4 * (steps + 5)  # the reset's FIRE step and one after each of the first four lives
    assert frames - 3 <= env.unwrapped.ale.getEpisodeFrameNumber() <= frames  # the last step stops at game over


def test_auto_fire_is_part_of_the_protocol_an_agent_checks() -> None:
    from drama_agent.checks import check_same_game

    fired = dataclasses.replace(CFG, auto_fire=True)
    with pytest.raises(ValueError, match="auto_fire False, but the agent's config has True"):
        check_same_game(make_env("Breakout", CFG), "ALE/Breakout-v5", fired)
    check_same_game(make_env("Breakout", fired), "ALE/Breakout-v5", fired)
    check_same_game(make_env("Catch", fired), None, fired)  # no FIRE action: nothing to press, nothing to check
    assert "auto_fire" not in env_protocol(make_env("Catch", fired))


def test_max_resize_is_the_blockwise_channel_maximum_and_keeps_the_pong_ball_at_full_brightness() -> None:
    """resize="max" against a loop over the blocks of a real Pong screen; the ball's pixels stay pure white."""
    env = make_env("Pong", dataclasses.replace(CFG, frame_size=48, resize="max"), seed=3)
    raw = raw_atari("Pong")
    env.reset()
    raw.reset(seed=episode_seed(3, 0))
    white = np.array([236, 236, 236], np.uint8)  # Pong's ball; every other colour is darker in all channels
    edges_r, edges_c = [i * 210 // 48 for i in range(49)], [j * 160 // 48 for j in range(49)]
    balls = 0
    for _ in range(60):
        obs, *_ = env.step(0)
        frames = [raw.step(0)[0] for _ in range(4)]
        screen = np.maximum(frames[-2], frames[-1])
        expected = np.array(
            [
                [screen[edges_r[i] : edges_r[i + 1], edges_c[j] : edges_c[j + 1]].max((0, 1)) for j in range(48)]
                for i in range(48)
            ]
        )
        np.testing.assert_array_equal(obs, expected)
        ball = np.argwhere((screen[34:194] == white).all(-1)) + (34, 0)  # between the score and the bottom border
        if len(ball):
            balls += 1
            # every block holding a ball pixel is the ball's colour (area averaging fades it to about a third)
            rows = np.searchsorted(edges_r, ball[:, 0], side="right") - 1
            cols = np.searchsorted(edges_c, ball[:, 1], side="right") - 1
            assert (obs[rows, cols] == white).all()
    assert balls > 20
    assert obs.shape == (48, 48, 3) and obs.dtype == np.uint8


def test_resize_is_part_of_the_protocol_an_agent_checks() -> None:
    from drama_agent.checks import check_same_game

    maxed = dataclasses.replace(CFG, resize="max")
    with pytest.raises(ValueError, match="resize area, but the agent's config has max"):
        check_same_game(make_env("Pong", CFG), "ALE/Pong-v5", maxed)
    check_same_game(make_env("Pong", maxed), "ALE/Pong-v5", maxed)
    assert env_protocol(make_env("Pong", maxed))["resize"] == "max"
    assert "resize" not in env_protocol(make_env("Catch", maxed))  # drawn at its size, nothing shrunk
    with pytest.raises(ValueError, match="resize mode must be one of"):
        make_env("Pong", dataclasses.replace(CFG, resize="nearest"))


def test_life_loss_flag_can_be_disabled() -> None:
    env = make_env("Breakout", dataclasses.replace(CFG, life_loss_termination=False), seed=0)
    env.reset()
    terminated, flags = False, 0
    while not terminated:
        _, _, terminated, _, info = env.step(env.action_space.sample())
        flags += info["life_loss"]
    assert flags == 0


@pytest.mark.filterwarnings("ignore:.*different from the unwrapped version")
@pytest.mark.filterwarnings("error")
@pytest.mark.parametrize("game", ["Pong", "Catch"])
def test_check_env_passes(game: str) -> None:
    env = make_env(game, CFG, seed=0)
    check_env(env, skip_render_check=True)
    if game == "Catch":  # our own game must also pass unwrapped
        check_env(env.unwrapped, skip_render_check=True)


def test_unknown_game_and_bad_config_raise_with_guidance() -> None:
    with pytest.raises(ValueError, match=r"list_games\(\).*Did you mean|Did you mean.*list_games\(\)"):
        make_env("Pongg", CFG)
    with pytest.raises(ValueError, match="list_games"):
        make_env("ALE/NotAGame-v5", CFG)
    for field, value in [("frame_size", 0), ("action_repeat", 0), ("max_episode_frames", -1), ("frame_size", 64.0)]:
        with pytest.raises(ValueError, match=field):
            make_env("Pong", dataclasses.replace(CFG, **{field: value}))
    with pytest.raises(ValueError, match="seed"):
        make_env("Pong", CFG, seed=-1)
    with pytest.raises(ValueError, match="multiple"):
        make_env("Catch", dataclasses.replace(CFG, frame_size=60))
    games = list_games()
    assert {"Pong", "Breakout", "Catch"} <= set(games) and len(games) > 50
    assert make_env("breakout", CFG).unwrapped.spec.id == "ALE/Breakout-v5"


def first_observations(env: gym.Env, n: int) -> list[np.ndarray]:
    return [env.reset()[0] for _ in range(n)]


def test_seeding_same_run_seed_same_episodes() -> None:
    a, b = make_env("Catch", CFG, seed=7), make_env("Catch", CFG, seed=7)
    for _ in range(3):
        (obs_a, _), (obs_b, _) = a.reset(), b.reset()
        np.testing.assert_array_equal(obs_a, obs_b)
        done = False
        while not done:
            action = a.action_space.sample()
            assert action == b.action_space.sample()
            step_a, step_b = a.step(action), b.step(action)
            np.testing.assert_array_equal(step_a[0], step_b[0])
            assert step_a[1:4] == step_b[1:4]
            done = step_a[2]


def test_seeding_fresh_starts_by_default_identical_with_flag() -> None:
    fresh = first_observations(make_env("Catch", CFG, seed=1), 8)
    assert len({o.tobytes() for o in fresh}) > 1
    same = first_observations(make_env("Catch", dataclasses.replace(CFG, same_seed_every_reset=True), seed=1), 8)
    assert len({o.tobytes() for o in same}) == 1
    np.testing.assert_array_equal(same[0], fresh[0])  # episode 0 has the same seed in both modes
    other_run = first_observations(make_env("Catch", CFG, seed=2), 8)
    assert any(not np.array_equal(x, y) for x, y in zip(fresh, other_run, strict=True))


def test_explicit_reset_seed_restarts_the_sequence() -> None:
    env = make_env("Catch", CFG, seed=0)
    first = first_observations(env, 4)
    env.reset(seed=5)
    env.reset()
    again = [env.reset(seed=0)[0]] + first_observations(env, 3)
    for x, y in zip(first, again, strict=True):
        np.testing.assert_array_equal(x, y)


def test_a_damaged_saved_state_is_refused_and_leaves_the_game_as_it_was() -> None:
    from drama_agent.env_state import get_env_state, set_env_state

    env = make_env("Breakout", CFG, seed=0)
    env.reset()
    for _ in range(20):
        env.step(1)
    saved = get_env_state(env)
    expected = [env.step(a)[0] for a in (2, 3, 1, 2)]
    set_env_state(env, saved)
    emulator = len(saved) - 1
    garbage = [{**layer} for layer in saved]
    garbage[emulator]["ale"] = b"not an emulator state"
    malformed = [{**layer} for layer in saved]
    malformed[0] = {"attrs": {}}
    for bad, message in (
        (garbage, f"layer {emulator} .AtariEnv.: the 21 bytes of emulator state are not a state this game can"),
        (malformed, "layer 0 .*expected a dict with 'attrs', 'np_random' and 'ale'"),
        (saved[1:], "wrapper layers"),
    ):
        with pytest.raises(ValueError, match=message):
            set_env_state(env, bad)
    np.testing.assert_array_equal(np.stack([env.step(a)[0] for a in (2, 3, 1, 2)]), np.stack(expected))

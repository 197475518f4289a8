"""What a new user gets wrong in the first ten minutes gets one clear error, never a traceback from deep inside."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from drama_agent import DramaAgent, DramaConfig, make_env
from drama_agent.cli import evaluate as drama_eval
from drama_agent.cli import train as drama_train
from drama_agent.config import EnvConfig

DEBUG = DramaConfig.preset("debug")
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def agent() -> DramaAgent:
    return DramaAgent(DEBUG, env=make_env("Catch", DEBUG.env, seed=0), device="cpu")


@pytest.fixture(scope="module")
def frames() -> np.ndarray:
    env = make_env("Catch", DEBUG.env, seed=1)
    obs, _ = env.reset()
    return np.stack([obs] + [env.step(i % 3)[0] for i in range(3)])  # (4, 32, 32, 3)


# --------------------------------------------------------------------------------------------- the agent
def test_predict_refuses_episode_start_or_state_of_another_length(agent: DramaAgent, frames: np.ndarray) -> None:
    with pytest.raises(ValueError, match=r"episode_start has 2 entries, but obs holds 3 observations"):
        agent.predict(frames[:3], episode_start=np.array([True, False]))
    _, state = agent.predict(frames[:2])
    with pytest.raises(ValueError, match=r"state has 2 entries, but obs holds 3 observations"):
        agent.predict(frames[:3], state=state)
    actions, state = agent.predict(frames[:3], episode_start=np.ones(3, bool))
    assert actions.shape == (3,) and len(state) == 3


@pytest.mark.parametrize("n", [0, -1, 2.5, True])
def test_evaluate_refuses_a_non_positive_episode_count(agent: DramaAgent, n: object) -> None:
    with pytest.raises(ValueError, match=rf"n_episodes must be an int >= 1, got {n!r}"):
        agent.evaluate(make_env("Catch", DEBUG.env), n_episodes=n)


@pytest.mark.parametrize("horizon", [0, -3, 2.5, "4"])
def test_imagine_refuses_a_bad_horizon(agent: DramaAgent, frames: np.ndarray, horizon: object) -> None:
    with pytest.raises(ValueError, match=rf"horizon must be an int >= 1, got {horizon!r}"):
        agent.imagine(frames, np.zeros(4, np.int64), horizon=horizon)


def test_imagine_refuses_float_action_ids(agent: DramaAgent, frames: np.ndarray) -> None:
    with pytest.raises(ValueError, match=r"actions must be integer action ids, got float64"):
        agent.imagine(frames, np.zeros(4, np.int64), horizon=2, actions=np.array([[0.5, 1.2]]))
    with pytest.raises(ValueError, match=r"action_context must be integer action ids, got float64"):
        agent.imagine(frames, np.full(4, 1.0), horizon=2)
    imag = agent.imagine(frames, np.zeros(4, np.int64), horizon=2, actions=np.array([[0, 2]]))
    assert imag.actions.tolist() == [[0, 2]]
    two = np.stack([frames, frames])  # (2, 4, 32, 32, 3): two contexts need two rows of actions
    with pytest.raises(ValueError, match=r"actions must have shape \(2, 2\), one row per context, got \(4,\)"):
        agent.imagine(two, np.zeros((2, 4), np.int64), horizon=2, actions=np.array([0, 1, 2, 0]))


def test_evaluate_refuses_another_game_or_protocol(agent: DramaAgent) -> None:
    freeway = make_env("Freeway", DEBUG.env)  # also 3 actions and 32x32 frames: only the game differs
    with pytest.raises(ValueError, match=r"trained on drama_agent/Catch-v0.*ALE/Freeway-v5"):
        agent.evaluate(freeway, n_episodes=1)
    pong = DramaAgent(DEBUG, env=make_env("Pong", DEBUG.env), device="cpu")
    repeat8 = make_env("Pong", dataclasses.replace(DEBUG.env, action_repeat=8))
    with pytest.raises(ValueError, match=r"action_repeat 8.*the agent's config has 4"):
        pong.evaluate(repeat8, n_episodes=1)
    short = make_env("Pong", dataclasses.replace(DEBUG.env, max_episode_frames=1000))
    with pytest.raises(ValueError, match=r"max_episode_frames 1000.*the agent's config has 108000"):
        pong.evaluate(short, n_episodes=1)


def test_make_env_without_a_config_uses_the_protocol_and_refuses_the_root_config() -> None:
    env = make_env("Pong")
    assert env.observation_space.shape == (64, 64, 3) and env.action_space.n == 6
    assert env.spec.additional_wrappers[0].kwargs == {"repeat": EnvConfig().action_repeat}
    with pytest.raises(ValueError, match=r"pass its env section: make_env\(game, cfg.env\)"):
        make_env("Catch", DEBUG)


def test_agent_without_env_or_action_space_says_what_to_pass() -> None:
    with pytest.raises(ValueError, match=r"DramaAgent\(cfg, env=make_env\(.*action_space="):
        DramaAgent(DEBUG, device="cpu")


def test_learn_and_device_refuse_wrong_types(agent: DramaAgent) -> None:
    for steps in (10.5, "100", -1):
        with pytest.raises(ValueError, match=rf"total_timesteps must be an int >= 0, got {steps!r}"):
            agent.learn(steps)
    with pytest.raises(ValueError, match=r"unknown device 'gpu'"):
        DramaAgent(DEBUG, env=make_env("Catch", DEBUG.env), device="gpu")


# ----------------------------------------------------------------------------------------- command lines
@pytest.mark.parametrize(
    ("option", "value", "minimum"), [("--steps", "-5", 1), ("--log-every", "0", 1), ("--eval-episodes", "-1", 0)]
)
def test_train_refuses_bad_counts_in_one_line(
    option: str, value: str, minimum: int, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    code = drama_train.main(["--game", "Catch", "--preset", "debug", option, value, "--run-dir", str(tmp_path)])
    captured = capsys.readouterr()
    assert code == 2 and captured.out == ""
    assert captured.err.strip() == f"drama-train: error: {option} must be an int >= {minimum}, got {value}"


def test_train_first_lines_state_the_schedule(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    args = ["--game", "Catch", "--preset", "debug", "--no-progress", "--eval-episodes", "0"]
    assert drama_train.main([*args, "--steps", "50", "--run-dir", str(tmp_path / "short")]) == 0
    out = capsys.readouterr().out
    assert "50 env steps in all" in out and "no update" in out and "warm-up" in out
    state = DramaAgent.load(tmp_path / "short")
    assert state.num_timesteps == 50 and state.trainer.updates == 0
    tail = ["--train.freeze_steps", "4", "--run-dir", str(tmp_path / "b")]
    assert drama_train.main([*args, "--steps", "70", *tail]) == 0
    out = capsys.readouterr().out
    # 66 steps with learning (updates after steps 65, 66 and 67, as the steps before them are <= 66), 4 frozen
    assert "70 env steps in all" in out and "3 updates" in out and "4 frozen" in out
    resumed = DramaAgent.load(tmp_path / "b")
    assert resumed.num_timesteps == 70 and resumed.trainer.updates == 3


def test_train_resume_says_steps_are_ignored(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    args = ["--game", "Catch", "--preset", "debug", "--no-progress", "--eval-episodes", "0", "--steps", "20"]
    assert drama_train.main([*args, "--run-dir", str(tmp_path)]) == 0
    capsys.readouterr()
    assert drama_train.main(["--resume", str(tmp_path), "--steps", "30", "--no-progress", "--eval-episodes", "0"]) == 0
    out = capsys.readouterr().out
    assert "--steps is ignored with --resume" in out


def test_eval_checks_the_json_folder_before_playing(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "missing" / "deeper" / "out.json"
    assert drama_eval.main(["drama-debug-catch", "--episodes", "1", "--json", str(out), "--no-progress"]) == 0
    assert json.loads(out.read_text())["episodes"] == 1
    blocked = tmp_path / "a-file"
    blocked.write_text("")
    code = drama_eval.main(["drama-debug-catch", "--episodes", "1", "--json", str(blocked / "x.json")])
    err = capsys.readouterr().err
    assert code == 2 and "cannot write --json" in err and "Traceback" not in err


@pytest.mark.parametrize(("cli", "first"), [(drama_train, "--game=Catch"), (drama_eval, "drama-debug-catch")])
def test_argparse_errors_print_a_short_usage(cli, first: str, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main([first, "--no-such-option"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) <= 4 and "unrecognized arguments: --no-such-option" in err


# ---------------------------------------------------------------------------------------------- packaging
def test_the_repository_is_mit_licensed() -> None:
    tomllib = pytest.importorskip("tomllib")
    assert (REPO / "LICENSE").read_text().startswith("MIT License")
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert project["license"] == "MIT" and project["license-files"] == ["LICENSE"]

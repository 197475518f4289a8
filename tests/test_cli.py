"""drama-train and drama-eval, in-process on a real game."""

import json

import pytest
import torch

from drama_agent import DramaAgent, DramaConfig, make_env
from drama_agent.cli import evaluate, train
from drama_agent.cpu import matmul_kernels
from drama_agent.metrics import read_metrics
from drama_agent.model_card import parse_model_card


def test_train_help_documents_every_option(capsys):
    with pytest.raises(SystemExit) as exit_info:
        train.main(["--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for option in ("--game", "--preset", "--steps", "--resume", "--run-dir", "--train.lr", "--sequence.backbone"):
        assert option in text
    assert "LaProp learning rate" in text
    assert "[--preset {cpu,debug,s,xs}]" in text.splitlines()[0]  # the usage line names every preset


def test_unknown_game_and_missing_checkpoint_exit_cleanly(tmp_path, capsys):
    assert train.main(["--game", "NoSuchGame", "--preset", "debug", "--run-dir", str(tmp_path)]) == 2
    assert "unknown game 'NoSuchGame'" in capsys.readouterr().err
    assert evaluate.main([str(tmp_path / "nothing-here"), "--episodes", "1"]) == 2
    assert "Could not find" in capsys.readouterr().err


@pytest.mark.slow
def test_pong_smoke_run_trains_saves_and_evaluates(tmp_path, capsys):
    run_dir = tmp_path / "run"
    argv = [
        "--game",
        "Pong",
        "--preset",
        "debug",
        "--steps",
        "160",
        "--train.warmup_steps",
        "100",
        "--run-dir",
        str(run_dir),
        "--eval-episodes",
        "1",
        "--log-every",
        "10",
        "--no-progress",
        "--threads",
        "1",
        "--env.auto_fire",
        "true",
        "--env.resize",
        "max",
    ]
    assert train.main(argv) == 0
    first_lines = capsys.readouterr().out.splitlines()[:7]
    assert "environment: FIRE is pressed for the agent after every reset and lost life (env.auto_fire)" in first_lines
    assert "environment: frames are shrunk by each channel's maximum, not INTER_AREA (env.resize max)" in first_lines
    assert "precision: fp32 (train.precision is fp32)" in first_lines  # the debug preset's setting
    assert "threads: 1 (set by --threads; inter-op 1)" in first_lines
    assert (run_dir / "state.safetensors").is_file()
    names = {name for _, name, _ in read_metrics(run_dir)}
    assert {"world_model/recon", "actor_critic/policy_loss", "world_model/loss"} <= names
    assert any(p.name.startswith("events.out.tfevents") for p in (run_dir / "tb").iterdir())
    folder = run_dir / "pretrained"
    meta, body = parse_model_card((folder / "README.md").read_text(encoding="utf-8"))
    assert meta["library_name"] == "drama-agent"
    config = json.loads((folder / "config.json").read_text())
    assert config["env_id"] == "ALE/Pong-v5" and config["num_actions"] == 6 and config["steps_trained"] == 160
    assert "160" in body
    record = json.loads((run_dir / "protocol.json").read_text())
    assert record["protocol"] == "mean return of the last 5 training episodes" and record["env_steps"] == 160
    assert record["training_episodes"] == 0 and record["score"] is None  # no Pong episode ends in 160 steps
    assert record["greedy_evaluation"]["episodes"] == 1 and record["resumed_from_step"] == 0

    out = tmp_path / "eval.json"
    assert evaluate.main([str(folder), "--episodes", "1", "--json", str(out), "--device", "cpu"]) == 0
    result = json.loads(out.read_text())
    assert result["env_id"] == "ALE/Pong-v5" and len(result["returns"]) == 1
    # drama-eval plays the episode that the agent's own evaluate plays from the same folder and env seed.
    agent = DramaAgent.from_pretrained(str(folder), device="cpu")
    expected = agent.evaluate(make_env("ALE/Pong-v5", agent.cfg.env, seed=0), n_episodes=1)
    assert result["returns"] == expected["returns"] and result["lengths"] == expected["lengths"]
    assert result["hns"] == pytest.approx((result["mean"] + 21) / 36)
    assert "human-normalised" in capsys.readouterr().out
    assert result["precision"] == agent.precision.name and result["kernels"] == matmul_kernels()
    assert evaluate.main([str(folder), "--episodes", "1", "--json", str(out), "--precision", "fp32"]) == 0
    assert json.loads(out.read_text())["precision"] == "fp32"

    assert train.main(["--resume", str(run_dir), "--eval-episodes", "0", "--no-progress"]) == 0
    assert json.loads((run_dir / "protocol.json").read_text())["resumed_from_step"] == 160


def test_drama_eval_warns_once_when_a_greedy_episode_stalls(tmp_path, capsys):
    cfg = DramaConfig.preset("debug").replace_path("env.max_episode_frames", 1_200)  # 300 steps per episode
    agent = DramaAgent(cfg, env=make_env("Breakout", cfg.env, seed=0), device="cpu")
    head = agent.actor_critic.actor.net[-1]
    with torch.no_grad():  # an actor whose greedy (and nearly every sampled) action is NOOP: the ball stays unserved
        head.weight.zero_()
        head.bias.copy_(torch.tensor([20.0, 0.0, 0.0, 0.0]))
    folder = agent.save_pretrained(tmp_path / "noop")
    argv = [str(folder), "--stall-warning", "150", "--no-progress", "--device", "cpu", "--json", str(tmp_path / "e")]
    assert evaluate.main([*argv, "--episodes", "2"]) == 0
    warned = [line for line in capsys.readouterr().err.splitlines() if "warning" in line]
    assert warned == [
        "drama-eval: warning: greedy episode 1 has had no reward for 150 steps: the policy may have stalled (in "
        "Breakout only FIRE serves the ball) and then plays on to the frame limit (1200 frames); sampled actions "
        "(deterministic=False, drama-eval --stochastic) act as in training, and env.auto_fire presses FIRE for "
        "the agent"
    ]
    assert json.loads((tmp_path / "e").read_text())["lengths"] == [300, 300]
    assert evaluate.main([*argv, "--episodes", "1", "--stochastic"]) == 0
    assert "warning" not in capsys.readouterr().err
    assert json.loads((tmp_path / "e").read_text())["lengths"] == [300]


def test_drama_eval_reports_the_returns_of_constant_actions(tmp_path, capsys):
    """In Breakout with FIRE pressed for the agent and no sticky actions, pressing LEFT at every step scores 11 (the
    paddle parked at the left wall returns the same serve each time); NOOP, FIRE and RIGHT score nothing."""
    cfg = DramaConfig.preset("debug").replace_paths({"env.auto_fire": True, "env.max_episode_frames": 2_000})
    agent = DramaAgent(cfg, env=make_env("Breakout", cfg.env, seed=0), device="cpu")
    folder = agent.save_pretrained(tmp_path / "untrained")
    out = tmp_path / "eval.json"
    argv = [str(folder), "--episodes", "1", "--constant-actions", "--no-progress", "--json", str(out)]
    assert evaluate.main(argv) == 0
    result = json.loads(out.read_text())
    assert result["constant_actions"] == {"NOOP": 0.0, "FIRE": 0.0, "RIGHT": 0.0, "LEFT": 11.0}
    above = "above" if result["mean"] > 11 else "not above"
    printed = "constant actions (one episode each): NOOP 0.00, FIRE 0.00, RIGHT 0.00, LEFT 11.00; the agent's mean is "
    assert printed + f"{above} the best (LEFT)" in capsys.readouterr().out

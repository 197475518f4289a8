"""The `cpu` preset and `train.update_every`: updates on every k-th env step, the method unchanged."""

from __future__ import annotations

import dataclasses
import json

import cpu_preset
import pytest
import torch

from drama_agent import DramaAgent, DramaConfig, make_env
from drama_agent.cli.train import build_parser


def test_updates_run_on_every_kth_step_after_warmup() -> None:
    cfg = DramaConfig.preset("debug").replace_path("train.update_every", 3)
    trainer = DramaAgent(cfg, env=make_env("Catch", cfg.env, seed=0), device="cpu").trainer
    updated = [trainer.env_steps for _ in range(100) if trainer.step().metrics]
    warm = cfg.train.warmup_steps  # the buffer holds s steps after step s; updates need more than `warm`
    assert updated == [s for s in range(warm + 1, 101) if s % 3 == 0]
    assert trainer.updates == len(updated) == 12


def test_update_every_must_be_positive() -> None:
    with pytest.raises(ValueError, match="config field train.update_every: must be >= 1, got 0"):
        DramaConfig.preset("debug").replace_path("train.update_every", 0)


def test_cpu_preset_keeps_the_method_and_round_trips() -> None:
    cpu, xs = DramaConfig.preset("cpu"), DramaConfig.preset("xs")
    assert DramaConfig.from_dict(cpu.to_dict()) == cpu
    assert cpu.sequence.backbone == "mamba2" and cpu.replay.sampler == "dfs"
    same = ("free_bits", "dyn_scale", "rep_scale", "stoch", "classes", "unimix", "reward_bins")
    assert all(getattr(cpu.world_model, f) == getattr(xs.world_model, f) for f in same)
    assert dataclasses.replace(cpu.actor_critic, critic_hidden=xs.actor_critic.critic_hidden) == xs.actor_critic
    assert dataclasses.replace(cpu.env, frame_size=xs.env.frame_size, auto_fire=False) == xs.env
    assert cpu.env.frame_size == 48 and cpu.env.auto_fire and not xs.env.auto_fire
    assert cpu.imagination.horizon == xs.imagination.horizon
    assert cpu.train.update_every > 1 and xs.train.update_every == 1
    assert build_parser().parse_args(["--game", "Pong", "--preset", "cpu"]).preset == "cpu"


def test_cpu_preset_agent_on_pong_has_fewer_parameters_than_xs() -> None:
    counts = {}
    for name in ("cpu", "xs"):
        cfg = DramaConfig.preset(name)
        agent = DramaAgent(cfg, env=make_env("Pong", cfg.env, seed=0), device="cpu")
        counts[name] = sum(agent.parameter_counts()[k] for k in ("world_model", "actor", "critic"))
    assert counts["cpu"] < 0.5 * counts["xs"]


def test_wm_updates_trains_only_the_world_model(tmp_path) -> None:
    cfg = DramaConfig.preset("debug")
    agent = DramaAgent(cfg, env=make_env("Catch", cfg.env, seed=0), device="cpu")
    agent.learn(120)
    agent.save(tmp_path / "run")
    updated = cpu_preset.main(
        ["wm-updates", str(tmp_path / "run"), "--updates", "4", "--every", "2", "--steps", "40"]
        + ["--label", "t", "--results", str(tmp_path / "results")]
    )
    result = json.loads((tmp_path / "results" / "cpu_preset_wm_updates_t.json").read_text())
    assert [r["extra_updates"] for r in result["rows"]] == [0, 2, 4]
    assert result["rows"][0]["train_recon"] is None and result["rows"][1]["train_recon"] > 0
    assert result["meta"]["updates_before"] == agent.trainer.updates and result["meta"]["env_steps"] == 120
    assert (tmp_path / "results" / "cpu_preset_wm_updates_t.png").stat().st_size > 0
    before, after = agent.trainer.state_dict(), updated.trainer.state_dict()
    changed = [k for k, v in before["world_model"].items() if not torch.equal(v, after["world_model"][k])]
    assert changed, "the world model did not change"
    assert all(torch.equal(v, after["actor_critic"][k]) for k, v in before["actor_critic"].items())
    for key in ("obs", "actions", "rewards", "terminations", "imag_counts"):
        assert torch.equal(before["replay"][key], after["replay"][key]), key
    sampled = int((after["replay"]["wm_counts"] - before["replay"]["wm_counts"]).sum())
    assert sampled == 4 * cfg.replay.batch_size  # one count per window of the 4 world-model batches, nothing else
    assert after["counters"] == before["counters"]


def test_signals_read_the_reward_and_termination_heads_of_a_trained_world_model(tmp_path) -> None:
    cpu_preset.main(["signals", "drama-debug-catch", "--steps", "400", "--seed", "300000", "--results", str(tmp_path)])
    (row,) = json.loads((tmp_path / "cpu_preset_signals.json").read_text())["rows"]
    # The shipped Catch agent's world model knows its game: a caught ball (+1) and a missed one (-1) are
    # predicted on their own steps, and so are the episode ends (in 400 steps: +0.66, -0.87, 0.00; 0.17 vs 0.02).
    assert row["reward_pos"] > 0.3 and row["reward_neg"] < -0.5 and abs(row["reward_zero"]) < 0.05
    assert row["ends"] > 0 and row["termination_on_ends"] > 3 * row["termination_elsewhere"]
    assert row["moving_mse"] < 0.1 * row["median_frame_mse"]
    assert "predicted termination when a life is lost" in (tmp_path / "cpu_preset_signals.md").read_text()

"""The authors' behaviours as defaults, each alternative behind a config flag (README "Faithfulness")."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch

from drama_agent import DramaAgent, DramaConfig, make_env
from drama_agent.config import LEGACY_VALUES, EnvConfig
from drama_agent.envs import LifeLossInfo
from drama_agent.sequence import build_sequence_model
from drama_agent.trainer import planned_updates
from drama_agent.training_state import check_state

XS = DramaConfig.preset("xs")
DEBUG = DramaConfig.preset("debug")


# ------------------------------------------------------------------------------------------------ init and eps
@pytest.mark.parametrize("backbone", ["mamba2", "mamba"])
def test_mamba_ssm_init_rescales_out_proj_and_zeroes_the_stem_bias(backbone: str) -> None:
    cfg = XS.replace_path("sequence.backbone", backbone)
    torch.manual_seed(0)
    model = build_sequence_model(cfg, 6)
    torch.manual_seed(0)
    plain = build_sequence_model(cfg.replace_path("sequence.mamba_ssm_init", False), 6)
    n_layers, d_inner = cfg.sequence.n_layers, cfg.sequence.d_inner
    bound = 1 / math.sqrt(d_inner)  # PyTorch's Linear init: U(±1/sqrt(fan_in)), std bound/sqrt(3)
    for mixer, reference in zip(model.backbone.mixers, plain.backbone.mixers, strict=True):
        weight = mixer.out_proj.weight.detach()
        assert weight.std().item() == pytest.approx(bound / math.sqrt(3 * n_layers), rel=0.01)  # 0.01276 at xs
        assert weight.abs().max().item() <= bound / math.sqrt(n_layers)
        assert reference.out_proj.weight.std().item() == pytest.approx(bound / math.sqrt(3), rel=0.01)  # 0.01804
        assert torch.equal(weight, reference.out_proj.weight.detach() / math.sqrt(n_layers))  # same draws, rescaled
    assert torch.count_nonzero(model.stem.bias) == 0
    assert torch.count_nonzero(plain.stem.bias) == cfg.sequence.d_model
    ours, theirs = model.state_dict(), plain.state_dict()
    changed = {k for k in ours if not torch.equal(ours[k], theirs[k])}
    assert changed == {"stem.bias"} | {f"backbone.mixers.{i}.out_proj.weight" for i in range(n_layers)}


def test_init_flag_leaves_other_backbones_alone() -> None:
    for backbone in ("gru", "transformer"):
        cfg = DEBUG.replace_path("sequence.backbone", backbone)
        torch.manual_seed(0)
        model = build_sequence_model(cfg, 3)
        torch.manual_seed(0)
        plain = build_sequence_model(cfg.replace_path("sequence.mamba_ssm_init", False), 3)
        ours, theirs = model.state_dict(), plain.state_dict()
        assert {k for k in ours if not torch.equal(ours[k], theirs[k])} == {"stem.bias"}


def test_stem_norm_eps_is_1e6_and_block_and_final_norms_1e5() -> None:
    model = build_sequence_model(XS, 6)
    assert model.stem_norm.eps == 1e-6
    assert [norm.eps for norm in model.backbone.norms] == [1e-5] * XS.sequence.n_layers
    assert model.backbone.norm_f.eps == 1e-5
    assert all(mixer.norm.eps == 1e-5 for mixer in model.backbone.mixers)  # Mamba-2's gated norm: fixed
    # the eps matters for small activations: RMS 1e-3 -> x / sqrt(1e-6 + 1e-6), not x / sqrt(1e-6 + 1e-5)
    x = torch.full((2, XS.sequence.d_model), 1e-3)
    np.testing.assert_allclose(model.stem_norm(x).detach().numpy(), 1e-3 / math.sqrt(2e-6), rtol=1e-5)
    other = build_sequence_model(XS.replace_path("sequence.stem_norm_eps", 1e-5), 6)
    np.testing.assert_allclose(other.stem_norm(x).detach().numpy(), 1e-3 / math.sqrt(1.1e-5), rtol=1e-5)


# ------------------------------------------------------------------------------------------------- life loss
class ScriptedLives(gym.Env):
    """Reports `lives[t]` in `info["lives"]` after step t (lives[0] at reset); ends after the last entry."""

    observation_space = gym.spaces.Box(0, 255, (8, 8, 3), np.uint8)
    action_space = gym.spaces.Discrete(2)

    def __init__(self, lives: list[int]) -> None:
        self.lives, self.t = lives, 0

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        self.t = 0
        return np.zeros((8, 8, 3), np.uint8), {"lives": self.lives[0]}

    def step(self, action: int) -> tuple[np.ndarray, float, bool, bool, dict]:
        self.t += 1
        done = self.t == len(self.lives) - 1
        return np.zeros((8, 8, 3), np.uint8), 0.0, done, False, {"lives": self.lives[self.t]}


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        ("below_lowest", [False, False, False, False, True, True, True]),  # 4 -> 3 after the bonus life: not a loss
        ("any_drop", [False, False, True, False, True, True, True]),
    ],
)
def test_life_loss_after_a_bonus_life(rule: str, expected: list[bool]) -> None:
    env = LifeLossInfo(ScriptedLives([3, 4, 4, 3, 3, 2, 1, 0]), rule=rule)
    for _ in range(2):  # a reset forgets the previous episode's lowest count
        _, info = env.reset()
        flags = [info["life_loss"]]
        for _ in range(7):
            flags.append(env.step(0)[-1]["life_loss"])
        assert flags == [False, *expected]


def test_life_loss_rule_reaches_the_wrapper_and_is_checked() -> None:
    assert EnvConfig().life_loss_rule == "below_lowest"
    for rule in ("below_lowest", "any_drop"):
        env = make_env("Breakout", dataclasses.replace(EnvConfig(), life_loss_rule=rule))
        layer = env
        while not isinstance(layer, LifeLossInfo):
            layer = layer.env
        assert layer.rule == rule
    with pytest.raises(ValueError, match="life-loss rule must be one of"):
        LifeLossInfo(ScriptedLives([1, 0]), rule="sometimes")


# ------------------------------------------------------------------------------------- the actor's normaliser
def warm_agent(update: str) -> DramaAgent:
    cfg = DEBUG.replace_path("train.warmup_steps", 40).replace_path("actor_critic.obs_norm_update", update)
    agent = DramaAgent(cfg, env=make_env("Catch", cfg.env, seed=0), device="cpu")
    agent.learn(45)  # past the warm-up, in the middle of the second 35-step episode
    return agent


def count(agent: DramaAgent) -> float:
    return agent.actor_critic.actor.normalizer.count.item()


@pytest.mark.parametrize("update", ["every_forward", "loss_only"])
def test_normaliser_counts_after_acting_imagination_and_update(update: str) -> None:
    agent = warm_agent(update)
    assert agent.trainer.acting.actions  # the next action comes from the policy, not the episode's random first
    batch, horizon = DEBUG.imagination.batch_size, DEBUG.imagination.horizon
    acting, imagination, loss = 1, horizon * batch, (horizon + 1) * batch  # rows seen by each actor forward
    before = count(agent)
    result = agent.trainer.step()
    assert result.metrics  # this step updated
    grown = count(agent) - before
    expected = acting + imagination + loss if update == "every_forward" else loss
    assert grown == pytest.approx(expected, abs=1e-6)  # 545 or 288


def test_evaluation_prediction_imagination_and_viewer_never_update_the_statistics() -> None:
    from viewer.session import Session

    agent = warm_agent("every_forward")
    stats = [t.clone() for t in agent.actor_critic.actor.normalizer.state_dict().values()]
    env = make_env("Catch", DEBUG.env, seed=5)
    agent.evaluate(env, n_episodes=1)
    obs, _ = env.reset()
    agent.predict(np.stack([obs, obs]))
    agent.act(obs)
    agent.act(obs)
    context = np.stack([obs] * 4)
    agent.imagine(context, np.zeros(4, np.int64), horizon=3)
    session = Session(agent, make_env("Catch", DEBUG.env, seed=6), horizon=4, seed=0)
    for _ in range(5):
        session.advance()
    session.set_dream_only(True)
    for _ in range(3):
        session.advance()
    after = list(agent.actor_critic.actor.normalizer.state_dict().values())
    assert all(torch.equal(a, b) for a, b in zip(stats, after, strict=True))
    before = count(agent)
    agent.learn(1, reset_num_timesteps=False)  # training afterwards still updates them while acting and imagining
    batch, horizon = DEBUG.imagination.batch_size, DEBUG.imagination.horizon
    assert count(agent) - before == pytest.approx(1 + (2 * horizon + 1) * batch, abs=1e-6)


# ------------------------------------------------------------------------------------------ the update count
def test_updates_follow_every_step_while_the_steps_before_it_are_within_the_budget() -> None:
    cfg = DEBUG.replace_path("train.warmup_steps", 40).replace_path("train.total_steps", 50)
    agent = DramaAgent(cfg, env=make_env("Catch", cfg.env, seed=0), device="cpu")
    updated: list[int] = []
    with pytest.warns(UserWarning, match=r"no updates from env step 52 on.*9 of these 60 steps"):
        agent.learn(60, callback=lambda _, result: updated.append(result.env_step) if result.metrics else None)
    # first after step 41 (the buffer holds 41 > 40), last after step 51 (50 steps before it <= 50), as the
    # authors' `for total_steps in range(...)` loop with `total_steps <= FreezeAfterSteps` runs them
    assert updated == list(range(41, 52))
    assert agent.trainer.updates == 11 == planned_updates(cfg.train, 60)


def test_planned_updates_counts_what_a_run_with_update_every_does() -> None:
    cfg = DEBUG.replace_path("train.warmup_steps", 40).replace_path("train.total_steps", 50)
    cfg = cfg.replace_path("train.update_every", 3)
    agent = DramaAgent(cfg, env=make_env("Catch", cfg.env, seed=0), device="cpu")
    updated: list[int] = []
    with pytest.warns(UserWarning, match="no updates from env step 52 on"):
        agent.learn(60, callback=lambda _, result: updated.append(result.env_step) if result.metrics else None)
    assert updated == [42, 45, 48, 51]
    assert planned_updates(cfg.train, 60) == 4 and planned_updates(cfg.train, 47) == 2


def test_world_model_only_steps_act_randomly_and_leave_the_actor_critic_alone() -> None:
    cfg = DEBUG.replace_paths({"train.warmup_steps": 40, "train.world_model_only_steps": 6, "train.total_steps": 50})
    agent = DramaAgent(cfg, env=make_env("Catch", cfg.env, seed=0), device="cpu")
    trainer = agent.trainer
    actor_critic = [t.clone() for t in agent.actor_critic.state_dict().values()]
    parts: dict[int, set[str]] = {}
    acted: list[int] = []

    def record(_, result) -> None:
        if result.metrics:
            parts[result.env_step] = {name.split("/")[0] for name in result.metrics}
        if result.env_step == 46:  # the last world-model-only step: nothing of the actor-critic has changed
            after = agent.actor_critic.state_dict().values()
            assert all(torch.equal(a, b) for a, b in zip(actor_critic, after, strict=True))
            check_state(trainer.state_dict(), "a state saved in the world-model-only steps")  # counters agree
        if trainer.acting.obs:  # the acting context of the policy, which first acts at step 48 (47 > 40 + 6)
            acted.append(result.env_step)

    with pytest.warns(UserWarning, match="no updates from env step 52 on"):
        agent.learn(60, callback=record)
    # world model after steps 41..46 (the buffer holds 41..46 <= 46), then both after 47..51
    assert parts == {n: {"world_model"} for n in range(41, 47)} | {
        n: {"world_model", "actor_critic"} for n in range(47, 52)
    }
    assert trainer.updates == trainer.wm_schedule.last_epoch == 11 == planned_updates(cfg.train, 60)
    assert trainer.ac_schedule.last_epoch == 5 == planned_updates(cfg.train, 60, actor_critic=True)
    assert acted and min(acted) >= 48


# -------------------------------------------------------------------------------------------- older configs
def test_a_config_saved_before_the_flags_existed_keeps_its_behaviour() -> None:
    old = DEBUG.to_dict()
    for section, name in LEGACY_VALUES:
        del old[section][name]
    cfg = DramaConfig.from_dict(old)
    assert cfg.sequence.stem_norm_eps == 1e-5 and cfg.sequence.mamba_ssm_init is False
    assert cfg.actor_critic.obs_norm_update == "loss_only" and cfg.env.life_loss_rule == "any_drop"
    assert cfg.train.compile is False
    assert DramaConfig.from_dict(DEBUG.to_dict()) == DEBUG  # a current config keeps its own values
    old["sequence"]["typo"] = 1
    with pytest.raises(ValueError, match=r"unknown keys \['typo'\]"):
        DramaConfig.from_dict(old)

"""DreamEnv: stepping imagination one action at a time reproduces `DramaAgent.imagine` exactly."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from drama_agent import DramaAgent, DramaConfig, make_env
from drama_agent.dream import DreamEnv
from drama_agent.imagination import start_state

HORIZON = 6


@pytest.fixture(scope="module", params=[0.3, 1.0], ids=["decoder-std-0.3", "decoder-std-1.0"])
def agent(request: pytest.FixtureRequest) -> DramaAgent:
    """A debug agent whose decoder is re-drawn with large weights, so dreamed frames vary from pixel to pixel.

    At std 1.0 the decoder's float outputs depend on the decode batch size enough to flip uint8 rounding,
    so frames match only if `imagine` and DreamEnv decode with the same shapes.
    """
    cfg = DramaConfig.preset("debug")
    agent = DramaAgent(cfg, env=make_env("Catch", cfg.env, seed=0), device="cpu")
    torch.manual_seed(1)
    with torch.no_grad():
        for p in agent.world_model.decoder.parameters():
            p.copy_(torch.randn(p.shape) * request.param)  # drawn in logical order, whatever p's memory layout
    return agent


@pytest.fixture(scope="module")
def context(agent: DramaAgent) -> tuple[np.ndarray, np.ndarray]:
    """Real context: 4 Catch frames and the actions taken at them."""
    env = make_env("Catch", agent.cfg.env, seed=3)
    obs, _ = env.reset()
    frames, actions = [], []
    for a in (1, 2, 2, 0):
        frames.append(obs)
        actions.append(a)
        obs, *_ = env.step(a)
    return np.stack(frames), np.array(actions)


def test_open_loop_steps_equal_imagine(agent: DramaAgent, context: tuple[np.ndarray, np.ndarray]) -> None:
    obs, acts = context
    planned = np.array([2, 1, 0, 1, 2, 2])
    imag = agent.imagine(obs[None], acts[None], horizon=HORIZON, actions=planned[None], seed=11)
    dream = DreamEnv(agent.world_model, agent.actor_critic, seed=11)
    frame, info = dream.reset(obs, acts)
    frames, rewards, term_probs, values, probs = [frame], [], [], [info["value"]], [info["action_probs"]]
    for k in range(HORIZON - 1):
        frame, reward, terminated, truncated, info = dream.step(int(planned[k]))
        assert truncated is False
        assert terminated == bool(imag.terminations[0, k])
        frames.append(frame)
        rewards.append(reward)
        term_probs.append(info["termination_prob"])
        values.append(info["value"])
        probs.append(info["action_probs"])
    assert imag.frames.std() > 20  # the comparison is not between flat frames
    np.testing.assert_array_equal(np.stack(frames), imag.frames[0])
    np.testing.assert_allclose(rewards, imag.rewards[0, : HORIZON - 1], rtol=0, atol=1e-6)
    np.testing.assert_allclose(term_probs, imag.termination_probs[0, : HORIZON - 1], rtol=0, atol=1e-6)
    np.testing.assert_allclose(values, imag.values[0], rtol=0, atol=1e-5)
    np.testing.assert_allclose(np.stack(probs), imag.action_probs[0], rtol=0, atol=1e-6)
    assert dream.steps == HORIZON - 1


def test_reset_info_is_the_context_transition(agent: DramaAgent, context: tuple[np.ndarray, np.ndarray]) -> None:
    """reset's reward / termination belong to (o_L, a_L), the transition into the first dreamed frame."""
    obs, acts = context
    _, info = DreamEnv(agent.world_model, agent.actor_critic, seed=5).reset(obs, acts)
    with torch.no_grad():
        _, d_last, _ = start_state(
            agent.world_model, torch.as_tensor(obs)[None], torch.as_tensor(acts)[None], torch.Generator().manual_seed(5)
        )
        expected = float(agent.world_model.predict_reward(d_last)[0])
        expected_term = float(torch.sigmoid(agent.world_model.predict_termination_logit(d_last))[0])
    assert info["reward"] == pytest.approx(expected, abs=1e-6)
    assert info["termination_prob"] == pytest.approx(expected_term, abs=1e-6)
    assert info["step"] == 0
    assert info["action_probs"].shape == (agent.num_actions,)
    assert info["action_probs"].sum() == pytest.approx(1.0, abs=1e-5)


def test_policy_driven_dream_equals_closed_loop_imagine(
    agent: DramaAgent, context: tuple[np.ndarray, np.ndarray]
) -> None:
    obs, acts = context
    imag = agent.imagine(obs[None], acts[None], horizon=HORIZON, seed=7)
    dream = DreamEnv(agent.world_model, agent.actor_critic, seed=7)
    frame, _ = dream.reset(obs, acts)
    frames, taken = [frame], []
    for _ in range(HORIZON):
        action = dream.policy_action()
        taken.append(action)
        frame, *_ = dream.step(action)
        frames.append(frame)
    np.testing.assert_array_equal(np.array(taken), imag.actions[0])
    np.testing.assert_array_equal(np.stack(frames[:HORIZON]), imag.frames[0])


def test_seeds_reproduce_and_differ(agent: DramaAgent, context: tuple[np.ndarray, np.ndarray]) -> None:
    obs, acts = context
    dream = DreamEnv(agent.world_model, agent.actor_critic, seed=0)
    first, _ = dream.reset(obs, acts)
    again, _ = dream.reset(obs, acts)
    other, _ = dream.reset(obs, acts, seed=1)
    np.testing.assert_array_equal(first, again)
    assert np.abs(first.astype(int) - other.astype(int)).sum() > 0


def test_errors(agent: DramaAgent, context: tuple[np.ndarray, np.ndarray]) -> None:
    obs, acts = context
    dream = DreamEnv(agent.world_model, agent.actor_critic)
    with pytest.raises(RuntimeError, match="reset"):
        dream.policy_action()
    with pytest.raises(ValueError, match="obs_context"):
        dream.reset(obs[:, :16], acts)
    with pytest.raises(ValueError, match="action_context"):
        dream.reset(obs, acts[:2])
    dream.reset(obs, acts)
    with pytest.raises(ValueError, match="invalid action 3"):
        dream.step(3)

"""DramaAgent: parameter counts, bad input, imagination, SB3 compatibility, exact resume."""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from drama_agent import DramaAgent, DramaConfig, make_env
from drama_agent.acting import ActingState, act, encode_window, weights_version
from drama_agent.imagination import start_state
from drama_agent.metrics import read_metrics
from drama_agent.precision import resolve_precision
from drama_agent.serialization import load_state

DEBUG = DramaConfig.preset("debug")


def small_run_config(**train) -> DramaConfig:
    cfg = DEBUG.replace_path("train.warmup_steps", 40)
    for key, value in train.items():
        cfg = cfg.replace_path(f"train.{key}", value)
    return cfg


@pytest.mark.parametrize("num_actions", [4, 6, 18])
def test_xs_actor_critic_parameter_counts(num_actions):
    agent = DramaAgent(DramaConfig.preset("xs"), action_space=num_actions, device="cpu")
    counts = agent.parameter_counts()
    assert counts["actor"] == 525_824 + 257 * num_actions
    assert counts["critic"] == 1_444_607
    assert counts["world_model"] == 7_152_387 + 512 * num_actions
    assert counts["sequence_model"] == 3_734_432 + 512 * num_actions


def test_bad_observations_and_action_space_are_rejected():
    env = make_env("Catch", DEBUG.env, seed=0)
    agent = DramaAgent(DEBUG, env=env, device="cpu")
    with pytest.raises(ValueError, match=r"uint8 \(32, 32, 3\)"):
        agent.act(np.zeros((64, 64, 3), np.uint8))
    with pytest.raises(ValueError, match="uint8"):
        agent.act(np.zeros((32, 32, 3), np.float32))
    pong = make_env("Pong", DEBUG.env, seed=0)
    with pytest.raises(ValueError, match=r"Discrete\(6\).*Discrete\(3\)"):
        agent.evaluate(pong, n_episodes=1)
    with pytest.raises(ValueError, match="DramaAgent needs the game it plays"):
        DramaAgent(DEBUG, action_space=None, device="cpu")
    with pytest.raises(ValueError, match="discrete action space"):
        DramaAgent(DEBUG, action_space=2.5, device="cpu")


def test_imagine_with_actions_reproduces_step_by_step_world_model():
    agent = DramaAgent(DEBUG, action_space=3, device="cpu")
    rng = np.random.default_rng(0)
    obs = rng.integers(0, 256, (2, 4, 32, 32, 3), dtype=np.uint8)
    ctx_actions = rng.integers(0, 3, (2, 4))
    planned = rng.integers(0, 3, (2, 5))
    imag = agent.imagine(obs, ctx_actions, horizon=5, actions=planned, seed=7)
    assert imag.frames.shape == (2, 5, 32, 32, 3) and imag.frames.dtype == np.uint8
    np.testing.assert_array_equal(imag.actions, planned)

    wm = agent.world_model.eval()
    gen = torch.Generator().manual_seed(7)
    with torch.no_grad():
        z, d, state = start_state(wm, torch.as_tensor(obs), torch.as_tensor(ctx_actions), gen)
        frames, rewards = [], []
        for k in range(5):
            frames.append(wm.to_uint8(wm.decode(z[:, None]))[:, 0])
            d, state = wm.sequence_model.step(z, torch.as_tensor(planned[:, k]), state)
            rewards.append(wm.predict_reward(d))
            z = wm.sample(wm.prior(d), gen)
    np.testing.assert_array_equal(imag.frames, torch.stack(frames, 1).numpy())
    np.testing.assert_allclose(imag.rewards, torch.stack(rewards, 1).numpy(), rtol=0, atol=1e-6)
    np.testing.assert_allclose(imag.action_probs.sum(-1), 1.0, atol=1e-5)


def test_stable_baselines3_evaluate_policy_runs_unchanged():
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.evaluation import evaluate_policy

    agent = DramaAgent(DEBUG, action_space=3, device="cpu")
    vec_env = make_vec_env(lambda: make_env("Catch", DEBUG.env, seed=0), n_envs=1)
    vec_env.seed(0)  # SB3 would otherwise seed the first reset at random; make_env(..., seed=0) starts with 0
    returns, lengths = evaluate_policy(
        agent, vec_env, n_eval_episodes=4, deterministic=True, return_episode_rewards=True
    )
    # The same episodes played by `evaluate` (a fresh state per episode, the same generators) give the same
    # returns only if `predict` resets its per-env state where SB3 marks an episode start.
    expected = DramaAgent(DEBUG, action_space=3, device="cpu").evaluate(make_env("Catch", DEBUG.env, seed=0), 4)
    assert returns == expected["returns"] and lengths == expected["lengths"]


RESUME_SCRIPT = textwrap.dedent("""
    import sys, torch
    torch.set_num_threads(1)
    from drama_agent import DramaAgent, DramaConfig, make_env
    mode, run_dir, steps, precision = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    cfg = (DramaConfig.preset("debug").replace_path("train.warmup_steps", 40)
           .replace_path("train.checkpoint_every", 10_000).replace_path("train.precision", precision))
    if mode == "new":
        agent = DramaAgent(cfg, env=make_env("Catch", cfg.env, seed=0), device="cpu")
    else:
        agent = DramaAgent.load(run_dir, device="cpu")
    agent.learn(steps - agent.num_timesteps, run_dir=run_dir, log_every=1, reset_num_timesteps=mode == "new")
""")


def _run(*args):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run([sys.executable, "-c", RESUME_SCRIPT, *map(str, args)], check=True, env=env)


@pytest.mark.slow
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_resume_in_a_fresh_process_is_bit_exact(tmp_path, precision):
    k = 55  # 15 updates on each side of the save (warm-up 40)
    straight, split = tmp_path / "straight", tmp_path / "split"
    _run("new", straight, 2 * k, precision)
    _run("new", split, k, precision)
    _run("resume", split, 2 * k, precision)  # the precision comes from the saved config
    a, b = load_state(straight / "state.safetensors"), load_state(split / "state.safetensors")
    for part in ("world_model", "actor_critic"):
        assert a[part].keys() == b[part].keys()
        for key in a[part]:
            assert torch.equal(a[part][key], b[part][key]), f"{part}.{key} differs"
    assert a["counters"] == b["counters"] and a["counters"]["env_steps"] == 2 * k
    assert torch.equal(a["replay"]["wm_counts"], b["replay"]["wm_counts"])
    metrics_a, metrics_b = read_metrics(straight), read_metrics(split)
    assert len(metrics_a) > 100
    assert metrics_a == metrics_b


def test_ctrl_c_saves_the_state_and_a_nan_loss_keeps_the_last_checkpoint(tmp_path):
    from drama_agent.trainer import NonFiniteLossError

    cfg = small_run_config(checkpoint_every=45)
    agent = DramaAgent(cfg, env=make_env("Catch", cfg.env, seed=0), device="cpu")

    def interrupt(_agent, result):
        if result.env_step == 43:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        agent.learn(100, run_dir=tmp_path, callback=interrupt)
    assert load_state(tmp_path / "state.safetensors")["counters"]["env_steps"] == 43

    def poison(_agent, result):
        if result.env_step == 47:  # after the checkpoint at step 45, a decoder weight becomes NaN
            with torch.no_grad():
                next(_agent.world_model.decoder.parameters()).fill_(float("nan"))

    with pytest.raises(NonFiniteLossError, match="world model loss was not finite at env step 48"):
        agent.learn(100, run_dir=tmp_path, callback=poison, reset_num_timesteps=False)
    state = load_state(tmp_path / "state.safetensors")
    assert state["counters"]["env_steps"] == 45
    assert all(torch.isfinite(t).all() for t in state["world_model"].values() if t.is_floating_point())


def test_recurrent_acting_carries_one_state_and_matches_a_parallel_pass():
    cfg = small_run_config(acting_mode="recurrent")
    agent = DramaAgent(cfg, env=make_env("Catch", cfg.env, seed=0), device="cpu")
    agent.learn(50)
    env = make_env("Catch", cfg.env, seed=1)
    obs, _ = env.reset()
    zs, actions = [], []
    for _ in range(6):
        action = agent.act(obs)
        zs.append(agent._acting.last_z)
        actions.append(action)
        obs, *_ = env.step(action)
    # The first action of an episode is the acting generator's first random draw (learning does not use it).
    assert actions[0] == np.random.default_rng(cfg.seed + 2).integers(3)
    # The carried state after 6 steps is the state of one parallel pass over the same 5 earlier (z, a) pairs.
    carried = agent._acting.sequence
    kept = [tuple(t.clone() for t in layer) for layer in carried]
    agent.act(obs)  # a value: acting again leaves the state it started from as it was
    for layer, copy in zip(carried, kept, strict=True):
        assert all(torch.equal(a, b) for a, b in zip(layer, copy, strict=True))
    with torch.no_grad():
        _, parallel = agent.world_model.sequence_model(torch.cat(zs[:5])[None], torch.tensor([actions[:5]]))
    for mine, theirs in zip(carried, parallel, strict=True):
        for a, b in zip(mine, theirs, strict=True):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_window_acting_reuses_encodings_only_while_the_weights_stay(precision):
    cfg = small_run_config(precision=precision)
    agent = DramaAgent(cfg, env=make_env("Catch", cfg.env, seed=0), device="cpu")
    agent.learn(50)
    world_model, actor = agent.world_model.eval(), agent.actor_critic.eval().actor
    env = make_env("Catch", cfg.env, seed=1)
    obs, _ = env.reset()
    states = {True: ActingState(), False: ActingState()}
    generators = {reuse: torch.Generator().manual_seed(7) for reuse in states}
    rngs = {reuse: np.random.default_rng(7) for reuse in states}
    with resolve_precision(precision, "cpu").autocast():
        for _ in range(3 * cfg.train.act_context):
            actions = {}
            for reuse, state in states.items():
                act_args = (obs, state, "window", cfg.train.act_context, rngs[reuse], generators[reuse])
                actions[reuse], states[reuse] = act(world_model, actor, *act_args, reuse_encodings=reuse)
            # Same actions and the same random streams afterwards as re-encoding the whole window every step.
            assert actions[True] == actions[False]
            assert torch.equal(generators[True].get_state(), generators[False].get_state())
            obs, _, terminated, truncated, _ = env.step(actions[True])
            if terminated or truncated:
                obs, _ = env.reset()
                states = dict.fromkeys(states, ActingState())
    kept, autocast = states[True], resolve_precision(precision, "cpu").autocast
    assert len(kept.encoded) == len(kept.obs) - 1 and not states[False].encoded
    window = torch.as_tensor(np.stack(kept.obs))[None]
    with torch.no_grad(), autocast():
        reused = torch.cat(encode_window(world_model, kept, torch.device("cpu"), weights_version(world_model)), 1)
        # Frames encoded one at a time equal the window encoded at once: bit for bit in bf16, to fp32 rounding.
        tolerance = 0 if precision == "bf16" else 1e-5
        torch.testing.assert_close(reused, world_model.encode(window), rtol=0, atol=tolerance)
    with torch.no_grad():
        next(world_model.post_head.parameters()).mul_(1.5)  # the weights change: nothing kept is reused
    with torch.no_grad(), autocast():  # a new autocast context: the one before caches its casts of the weights
        again = torch.cat(encode_window(world_model, kept, torch.device("cpu"), weights_version(world_model)), 1)
        assert torch.equal(again, world_model.encode(window))
        assert not torch.allclose(again, reused)


def test_bf16_acting_with_bf16_layer_copies_equals_autocast_of_the_originals_and_follows_weight_changes():
    cfg = small_run_config(precision="bf16")
    agent = DramaAgent(cfg, env=make_env("Catch", cfg.env, seed=0), device="cpu")
    agent.learn(50)
    env = make_env("Catch", cfg.env, seed=1)

    def play(steps: int) -> None:
        obs, _ = env.reset(seed=3)
        agent.reset()
        state, rng = ActingState(), np.random.default_rng(5)
        agent.random.acting_actions, generator = np.random.default_rng(5), torch.Generator().manual_seed(9)
        agent.random.acting.manual_seed(9)
        for _ in range(steps):
            # the originals under autocast, re-encoding the window: what the agent computes without its copies
            with torch.no_grad(), resolve_precision("bf16", "cpu").autocast():
                wm, actor = agent.world_model.eval(), agent.actor_critic.eval().actor
                want, state = act(wm, actor, obs, state, "window", cfg.train.act_context, rng, generator)
            assert agent.act(obs) == want
            assert torch.equal(agent.random.acting.get_state(), generator.get_state())
            obs, _, terminated, truncated, _ = env.step(want)
            if terminated or truncated:
                obs, _ = env.reset()
                agent.reset()
                state = ActingState()

    play(3 * cfg.train.act_context)
    copies = agent._bf16_acting
    assert copies is not None and next(copies[1].encoder.parameters()).dtype == torch.bfloat16
    with torch.no_grad():
        next(agent.actor_critic.actor.parameters()).mul_(1.5)  # the weights change: new copies
    play(cfg.train.act_context)
    assert agent._bf16_acting is not copies and agent._bf16_acting[0] != copies[0]

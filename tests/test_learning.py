"""Learning, not just running: the debug agent beats the random policy on the built-in Catch game."""

import pytest
import torch

from drama_agent import DramaAgent, DramaConfig, make_env
from drama_agent.cpu import cpu_has_native_bf16
from drama_agent.envs import random_policy_return

EMULATED_BF16 = pytest.mark.skipif(
    not cpu_has_native_bf16(),
    reason="this CPU has no native bf16 (precision auto runs fp32 here); emulated, the bf16 run takes over 15 minutes",
)


@pytest.fixture
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a fixed reduction order: the run is the same on every machine with this torch
    yield
    torch.set_num_threads(threads)


@pytest.mark.slow
@pytest.mark.parametrize("precision", ["fp32", pytest.param("bf16", marks=EMULATED_BF16)])
def test_debug_agent_beats_random_on_catch(one_thread, precision):
    cfg = DramaConfig.preset("debug").replace_path("train.precision", precision)
    agent = DramaAgent(cfg, env=make_env("Catch", cfg.env, seed=0), device="cpu")
    agent.learn(total_timesteps=4_000)
    result = agent.evaluate(make_env("Catch", cfg.env, seed=5), n_episodes=20, deterministic=True)
    random_return = random_policy_return()  # -3.75: a policy that ignores the screen catches 1 ball in 8
    # 5 balls per episode; +2 over random = two more balls caught per episode than chance.
    assert result["mean"] > random_return + 2.0, result

"""train.compile: compiled networks give eager losses and gradients, same state-dict keys; no compiler: an error."""

import os
import subprocess
import sys
import textwrap

import pytest
import torch

from drama_agent import DramaAgent, DramaConfig, make_env
from drama_agent.compiled import compiled_modules

CFG = DramaConfig.preset("debug").replace_path("train.warmup_steps", 40).replace_path("train.precision", "fp32")


def warm_trainer(compile_: bool):
    """A trainer whose replay is just warm enough for its first update (none made yet)."""
    cfg = CFG.replace_path("train.compile", compile_)
    trainer = DramaAgent(cfg, env=make_env("Catch", cfg.env, seed=0), device="cpu").trainer
    while not trainer.learning:
        trainer.step()
    return trainer


@pytest.mark.slow
def test_compiled_networks_give_eager_losses_and_gradients_and_keep_the_state_dict_keys() -> None:
    eager, compiled = warm_trainer(False), warm_trainer(True)
    modules = compiled_modules(compiled.world_model, compiled.actor_critic)
    assert all(getattr(m, "_compiled_call_impl", None) is not None for m in modules)
    for name in ("world_model", "actor_critic"):  # no `_orig_mod.` prefixes: checkpoints load either way
        assert list(getattr(compiled, name).state_dict()) == list(getattr(eager, name).state_dict())
    # the first update of each model on the same batches, drawn from the same generators; inductor's fused
    # kernels round differently, so float32 rounding, not bit equality
    rollout, compiled_rollout = eager.imagine(), compiled.imagine()
    torch.testing.assert_close(compiled_rollout[0].features, rollout[0].features, rtol=1e-4, atol=1e-5)
    want = eager.update_world_model() | eager.update_actor_critic(*rollout)
    got = compiled.update_world_model() | compiled.update_actor_critic(*compiled_rollout)
    for key in ("world_model/loss", "actor_critic/loss"):
        torch.testing.assert_close(got[key], want[key], rtol=1e-4, atol=1e-6)
    for name in ("world_model", "actor_critic"):
        # tolerance against the model's largest gradient: the convolution biases before BatchNorm have a true
        # gradient of 0 and carry rounding noise only, which differs between the two
        eager_grads = {key: p.grad for key, p in getattr(eager, name).named_parameters() if p.grad is not None}
        scale = max(grad.abs().max().item() for grad in eager_grads.values())
        for key, param in getattr(compiled, name).named_parameters():
            if param.grad is not None:
                torch.testing.assert_close(param.grad, eager_grads[key], rtol=1e-3, atol=1e-3 * scale, msg=key)


def test_without_a_cpp_compiler_training_with_compile_is_refused_at_once(tmp_path) -> None:
    code = textwrap.dedent(
        """
        from drama_agent import DramaAgent, DramaConfig, make_env
        from drama_agent.compiled import CompileUnavailableError
        cfg = DramaConfig.preset("debug").replace_path("train.compile", True)
        try:
            DramaAgent(cfg, env=make_env("Catch", cfg.env, seed=0), device="cpu").trainer
        except CompileUnavailableError as error:
            print(error)
        """
    )
    env = os.environ | {"PATH": str(tmp_path)}  # no g++ (nor anything else) on the path
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert "needs a C++ compiler" in out and "train.compile false" in out

"""`train.compile`: torch.compile the networks whose shapes stay fixed during training, in place.

Compiled in place (`nn.Module.compile`), the modules keep their parameters and state-dict keys, so checkpoints
are the same with and without it. The sequence model stays eager: its chunked scan takes a different length
for every window it is given. On CPU inductor writes C++ and needs a compiler; without one, `compile_networks`
refuses at once instead of failing at the first update.
"""

from __future__ import annotations

import torch
from torch import nn


class CompileUnavailableError(RuntimeError):
    """train.compile was asked for where torch.compile cannot build code."""


def compiler_problem(device: torch.device) -> str | None:
    """Why torch.compile cannot build code for `device` here, or None when it can (CPU: a C++ compiler)."""
    if device.type != "cpu":
        return None
    from torch._inductor.cpp_builder import get_cpp_compiler

    try:
        get_cpp_compiler()
    except RuntimeError as error:
        return f"torch.compile on CPU needs a C++ compiler ({error}); install g++ or set train.compile false"
    return None


def compiled_modules(world_model: nn.Module, actor_critic: nn.Module) -> list[nn.Module]:
    """The modules `compile_networks` compiles."""
    return [
        world_model.encoder,
        world_model.decoder,
        world_model.reward_head,
        world_model.termination_head,
        actor_critic.actor.net,
        actor_critic.critic.net,
        actor_critic.slow_critic.net,
    ]


def compile_networks(world_model: nn.Module, actor_critic: nn.Module, device: torch.device) -> None:
    """Compile `compiled_modules` in place (they build at their first call); raise where that cannot work."""
    problem = compiler_problem(device)
    if problem is not None:
        raise CompileUnavailableError(problem)
    for module in compiled_modules(world_model, actor_critic):
        module.compile()

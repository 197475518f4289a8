"""Acting in a real environment from the world model's view of the recent past.

See docs/algorithm.md §Training loop and acting.

Both modes act on [ẑ_t ; d_{t−1}], where d_{t−1} summarises the real (o, a) pairs before t and
ẑ_t ~ prior(d_{t−1}); the first step of an episode takes a random action, as the authors' code does.

* `window` (official): keep the last `context` real (obs, action) pairs and re-run them from a zero
  state at every step.
* `recurrent`: carry the sequence state forward, one `step` per env step (O(1), unbounded context).

`ActingState` is an immutable value per environment; `act` returns the action and the next state and never
changes the state it is given.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch
from torch import Tensor

from drama_agent.behavior.actor_critic import Actor
from drama_agent.sequence.model import State
from drama_agent.world_model import WorldModel


@dataclass(frozen=True)
class ActingState:
    """What one environment's agent remembers between steps (a value: `act` returns a new one)."""

    obs: tuple[np.ndarray, ...] = ()  # window mode: last real observations (S, S, 3) uint8
    actions: tuple[int, ...] = ()  # the actions taken at them
    sequence: State | None = None  # recurrent mode: state after the previous (z, a)
    last_z: Tensor | None = None  # recurrent mode: (1, Z) posterior sample of the previous observation
    last_action: int | None = None


@torch.no_grad()
def act(
    world_model: WorldModel,
    actor: Actor,
    obs: np.ndarray,
    state: ActingState,
    mode: str,
    context: int,
    rng: np.random.Generator,
    generator: torch.Generator | None,
    deterministic: bool = False,
) -> tuple[int, ActingState]:
    """Choose the action for observation `obs` (S, S, 3) uint8 and remember (obs, action).

    Models must be in `eval()` mode. `rng` draws the first random action of an episode; `generator`
    (on the models' device) drives the latent and policy samples.
    """
    device = next(world_model.parameters()).device
    d_prev, sequence = None, state.sequence
    if mode == "window":
        if state.actions:
            past = torch.as_tensor(np.stack(state.obs), device=device).unsqueeze(0)  # (1, L, S, S, 3)
            past_actions = torch.as_tensor(state.actions, device=device).unsqueeze(0)  # (1, L)
            z = world_model.sample(world_model.encode(past), generator)  # (1, L, Z)
            d, _ = world_model.sequence_model(z, past_actions)
            d_prev = d[:, -1]  # (1, D)
    elif mode == "recurrent":
        if state.last_z is not None:
            previous = torch.tensor([state.last_action], device=device)
            sequence = sequence or world_model.sequence_model.initial_state(1, device)
            d_prev, sequence = world_model.sequence_model.step(state.last_z, previous, sequence)
    else:
        raise ValueError(f"acting mode must be 'window' or 'recurrent', got {mode!r}")

    if d_prev is None:
        action = int(rng.integers(actor.num_actions))
    else:
        z_hat = world_model.sample(world_model.prior(d_prev), generator)  # (1, Z)
        action = int(actor.act(torch.cat([z_hat, d_prev], -1), deterministic, generator).item())

    if mode == "window":
        kept = np.array(obs, copy=True)  # the caller may reuse its array (vectorised envs do)
        return action, replace(state, obs=(*state.obs, kept)[-context:], actions=(*state.actions, action)[-context:])
    frame = torch.as_tensor(obs, device=device)[None, None]  # (1, 1, S, S, 3)
    last_z = world_model.sample(world_model.encode(frame), generator)[:, 0]  # (1, Z)
    return action, ActingState(sequence=sequence, last_z=last_z, last_action=action)

"""Acting in a real environment from the world model's view of the recent past.

See docs/algorithm.md §Training loop and acting.

Both modes act on [ẑ_t ; d_{t−1}], where d_{t−1} summarises the real (o, a) pairs before t and
ẑ_t ~ prior(d_{t−1}); the first step of an episode takes a random action, as the authors' code does.

* `window` (official): keep the last `context` real (obs, action) pairs and re-run them from a zero
  state at every step. With `reuse_encodings` the posterior logits of each frame are kept with the state and
  only new frames are encoded while the world model's weights stay the same (acting of a fixed agent); the
  latents are sampled afresh at every step either way, so the actions are those of re-encoding the window.
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
    encoded: tuple[Tensor, ...] = ()  # window mode: posterior logits (1, 1, K, C) of the first len(encoded) obs
    encoded_with: int | None = None  # `weights_version` of the world model that encoded them
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
    reuse_encodings: bool = False,
    version: int | None = None,
) -> tuple[int, ActingState]:
    """Choose the action for observation `obs` (S, S, 3) uint8 and remember (obs, action).

    Models must be in `eval()` mode. `rng` draws the first random action of an episode; `generator`
    (on the models' device) drives the latent and policy samples. `reuse_encodings` keeps the window's
    encodings in the state (see the module docstring), keyed on `version`: the `weights_version` of the world
    model whose weights `world_model` holds (default: its own; a caller acting with a copy passes the original's).
    """
    device = next(world_model.parameters()).device
    d_prev, sequence, encoded = None, state.sequence, ()
    if not reuse_encodings:
        version = None
    elif version is None:
        version = weights_version(world_model)
    if mode == "window":
        if state.actions:
            encoded = encode_window(world_model, state, device, version)
            past_actions = torch.as_tensor(state.actions, device=device).unsqueeze(0)  # (1, L)
            z = world_model.sample(torch.cat(encoded, 1), generator)  # (1, L, Z)
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
        window = (*state.obs, kept)[-context:]
        dropped = len(state.obs) + 1 - len(window)
        return action, replace(
            state,
            obs=window,
            actions=(*state.actions, action)[-context:],
            encoded=encoded[dropped:] if reuse_encodings else (),
            encoded_with=version,
        )
    frame = torch.as_tensor(obs, device=device)[None, None]  # (1, 1, S, S, 3)
    last_z = world_model.sample(world_model.encode(frame), generator)[:, 0]  # (1, Z)
    return action, ActingState(sequence=sequence, last_z=last_z, last_action=action)


def weights_version(module: torch.nn.Module) -> int:
    """A number that grows with every in-place change of `module`'s parameters and buffers (optimiser steps,
    `load_state_dict`, normaliser and BatchNorm statistics), so equal numbers mean unchanged weights."""
    return sum(t._version for t in (*module.parameters(), *module.buffers()))


def encode_window(
    world_model: WorldModel, state: ActingState, device: torch.device, version: int | None
) -> tuple[Tensor, ...]:
    """Posterior logits (1, 1, K, C) of each frame of `state.obs`; given the world model's `weights_version`, the
    state's encodings made by those weights are kept and only the frames after them are encoded (None: all are)."""
    known = state.encoded if version is not None and state.encoded_with == version else ()
    new = state.obs[len(known) :]
    if not new:
        return known
    frames = torch.as_tensor(np.stack(new), device=device).unsqueeze(0)  # (1, n, S, S, 3)
    return known + tuple(world_model.encode(frames).split(1, dim=1))

"""Capture and restore a Gymnasium environment's exact state, for resuming training mid-episode.

Every layer of the wrapper chain contributes its plain attributes (counters, flags, lives) and its
`np_random` state; an ALE game adds its emulator state with RNG (`cloneState(include_rng=True)`).
Nothing is pickled: the result is made of numbers, strings, dicts and bytes.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym

_PLAIN = (bool, int, float, str, type(None))


def _layers(env: gym.Env) -> list[gym.Env]:
    layers = [env]
    while hasattr(layers[-1], "env"):
        layers.append(layers[-1].env)
    return layers


def get_env_state(env: gym.Env) -> list[dict[str, Any]]:
    """One dict per wrapper layer, outermost first."""
    states = []
    for layer in _layers(env):
        attrs = {k: v for k, v in vars(layer).items() if isinstance(v, _PLAIN)}
        rng = vars(layer).get("_np_random")
        ale = vars(layer).get("ale")
        states.append(
            {
                "attrs": attrs,
                "np_random": None if rng is None else rng.bit_generator.state,
                "ale": None if ale is None else ale.cloneState(include_rng=True).serialize(),
            }
        )
    return states


def set_env_state(env: gym.Env, states: list[dict[str, Any]]) -> None:
    """Restore a state from `get_env_state` into an environment built the same way."""
    layers = _layers(env)
    if len(layers) != len(states):
        raise ValueError(f"the environment has {len(layers)} wrapper layers, the saved state {len(states)}")
    for layer, state in zip(layers, states, strict=True):
        for name, value in state["attrs"].items():
            setattr(layer, name, value)
        if state["np_random"] is not None:
            rng = layer.np_random  # creates the generator if the layer has none yet
            rng.bit_generator.state = state["np_random"]
        if state["ale"] is not None:
            import ale_py

            layer.ale.restoreState(ale_py.ALEState(state["ale"]))

"""Capture and restore a Gymnasium environment's exact state, for resuming training mid-episode.

Every layer of the wrapper chain contributes its plain attributes (counters, flags, lives) and its
`np_random` state; an ALE game adds its emulator state with RNG (`cloneState(include_rng=True)`).
Nothing is pickled: the result is made of numbers, strings, dicts and bytes.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym

_PLAIN = (bool, int, float, str, type(None))
_CACHES = {"_cached_spec"}  # Gymnasium's wrappers cache their EnvSpec here: derived, not state


def _layers(env: gym.Env) -> list[gym.Env]:
    layers = [env]
    while hasattr(layers[-1], "env"):
        layers.append(layers[-1].env)
    return layers


def get_env_state(env: gym.Env) -> list[dict[str, Any]]:
    """One dict per wrapper layer, outermost first."""
    states = []
    for layer in _layers(env):
        attrs = {k: v for k, v in vars(layer).items() if isinstance(v, _PLAIN) and k not in _CACHES}
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
    """Restore a state from `get_env_state` into an environment built the same way.

    A malformed state, or emulator bytes the game cannot restore, raises ValueError naming the wrapper
    layer and leaves the environment as it was.
    """
    layers = _layers(env)
    if not isinstance(states, list) or len(layers) != len(states):
        count = len(states) if isinstance(states, list) else type(states).__name__
        raise ValueError(f"the environment has {len(layers)} wrapper layers, the saved state {count}")
    for index, (layer, state) in enumerate(zip(layers, states, strict=True)):
        problem = _malformed(layer, state)
        if problem:
            raise ValueError(f"saved environment state, layer {index} ({type(layer).__name__}): {problem}")
    backup = get_env_state(env)
    try:
        _restore(layers, states)
    except ValueError:
        _restore(layers, backup)
        raise


def _malformed(layer: gym.Env, state: Any) -> str | None:
    """Why `state` cannot be a saved state of `layer`, or None."""
    if not isinstance(state, dict) or set(state) != {"attrs", "np_random", "ale"}:
        return "expected a dict with 'attrs', 'np_random' and 'ale'"
    attrs = state["attrs"]
    if not isinstance(attrs, dict) or not all(isinstance(k, str) and isinstance(v, _PLAIN) for k, v in attrs.items()):
        return "'attrs' must map names to plain values"
    if not (state["np_random"] is None or isinstance(state["np_random"], dict)):
        return "'np_random' must be a bit-generator state (a dict) or None"
    has_ale = vars(layer).get("ale") is not None
    if has_ale and not isinstance(state["ale"], bytes):
        return "the emulator state (bytes) is missing"
    if not has_ale and state["ale"] is not None:
        return "it holds an emulator state, but this layer has no emulator (another game?)"
    return None


def _restore(layers: list[gym.Env], states: list[dict[str, Any]]) -> None:
    for index, (layer, state) in enumerate(zip(layers, states, strict=True)):
        where = f"saved environment state, layer {index} ({type(layer).__name__})"
        if state["ale"] is not None:
            import ale_py

            try:
                layer.ale.restoreState(ale_py.ALEState(state["ale"]))
            except (SystemError, RuntimeError, ValueError, TypeError) as err:
                raise ValueError(
                    f"{where}: the {len(state['ale'])} bytes of emulator state are not a state this game can "
                    f"restore (damaged, or saved by another game or ALE version)"
                ) from err
        if state["np_random"] is not None:
            rng = layer.np_random  # creates the generator if the layer has none yet
            try:
                rng.bit_generator.state = state["np_random"]
            except (ValueError, TypeError, KeyError) as err:
                raise ValueError(f"{where}: the random-generator state cannot be restored: {err!r}") from None
        for name, value in state["attrs"].items():
            setattr(layer, name, value)

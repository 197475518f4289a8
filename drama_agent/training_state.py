"""A run folder's training states: the last two kept, each verified on load, a damaged latest falls back.

`save_training_state` writes `state.safetensors` atomically and keeps the state it replaces as
`state.prev.safetensors`. `load_training_state` verifies the latest (its SHA-256, finite values,
counters that agree with each other) and, when that fails, warns loudly and loads the previous one.
`check_fits` turns a state that does not fit the models it is loaded into (another preset, a wrong
shape, a missing tensor, an empty optimiser state) into one clear sentence before anything changes.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from drama_agent.atomic import temp_path
from drama_agent.config import DramaConfig
from drama_agent.serialization import StateFileError, load_state, save_state

STATE_FILE = "state.safetensors"
PREVIOUS_STATE_FILE = "state.prev.safetensors"
_COUNTERS = ("env_steps", "updates", "episodes", "episode_length")
_OPTIMIZERS = (("wm_optim", "wm_schedule"), ("ac_optim", "ac_schedule"))


class CheckpointFallbackWarning(UserWarning):
    """The latest training state failed verification and the previous one was loaded instead."""


def save_training_state(state: dict[str, Any], run_dir: str | os.PathLike) -> Path:
    """Write `<run_dir>/state.safetensors` atomically, keeping the state it replaces as the previous one.

    A full disk raises `drama_agent.atomic.WriteError` (one line: path, reason, free space) and leaves
    both files as they were.
    """
    run_dir = Path(run_dir)
    path = run_dir / STATE_FILE
    save_state(state, path, previous=run_dir / PREVIOUS_STATE_FILE)
    return path


def remove_stale_temp_files(run_dir: str | os.PathLike) -> list[Path]:
    """Delete temporary files that a killed save left in `run_dir` (each can be as large as a state)."""
    run_dir = Path(run_dir)
    stale = [temp_path(run_dir / name) for name in (STATE_FILE, PREVIOUS_STATE_FILE, "metrics.csv")]
    removed = [path for path in stale if path.is_file()]
    for path in removed:
        path.unlink()
    return removed


def has_training_state(run_dir: str | os.PathLike) -> bool:
    """Whether `run_dir` holds a saved training state (latest or previous) to resume from."""
    return any((Path(run_dir) / name).is_file() for name in (STATE_FILE, PREVIOUS_STATE_FILE))


def load_training_state(run_dir: str | os.PathLike) -> tuple[dict[str, Any], Path]:
    """The latest verified training state of `run_dir` and the file it came from.

    When the latest is missing, damaged or impossible, a `CheckpointFallbackWarning` says why and the
    previous state is loaded; when both fail, the error names both files.
    """
    run_dir = Path(run_dir)
    latest, previous = run_dir / STATE_FILE, run_dir / PREVIOUS_STATE_FILE
    try:
        return _load_verified(latest), latest
    except (FileNotFoundError, StateFileError) as err:
        if not previous.is_file():
            raise
        warnings.warn(
            f"{err}; loading the previous training state {previous} instead (the steps since are lost)",
            CheckpointFallbackWarning,
            stacklevel=2,
        )
        try:
            return _load_verified(previous), previous
        except (FileNotFoundError, StateFileError) as err_previous:
            raise StateFileError(f"no usable training state in {run_dir}: {err}; and {err_previous}") from None


def _load_verified(path: Path) -> dict[str, Any]:
    state = load_state(path)
    check_state(state, str(path))
    return state


def check_state(state: Any, source: str) -> None:
    """StateFileError unless `state` is a training state with finite values and counters that agree."""
    if not isinstance(state, dict) or not isinstance(state.get("counters"), dict):
        raise StateFileError(f"{source} is not a drama-agent training state (it has no step counters)")
    for where, value in _leaves({k: v for k, v in state.items() if k != "config"}):
        if not _finite(value):
            raise StateFileError(f"{source} holds non-finite values (NaN or infinity) in {where}")
    counters = state["counters"]
    for name in _COUNTERS:
        value = counters.get(name)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise StateFileError(f"{source} has an impossible counter: {name} = {value!r} (must be an int >= 0)")
    env_steps, updates = counters["env_steps"], counters["updates"]
    # env_steps counts from the last restart (learn(reset_num_timesteps=True)); the replay counts every step.
    total = _field(state, "replay", "total_added", env_steps)
    for name, value, bound, bound_name in (
        ("env_steps", env_steps, total, "the replay's total_added"),
        ("episode_length", counters["episode_length"], env_steps, "env_steps"),
        ("episodes", counters["episodes"], total, "the replay's total_added"),
        ("updates", updates, total, "the replay's total_added"),
    ):
        if value > bound:
            raise StateFileError(f"{source} has counters that disagree: {name} = {value} > {bound_name} = {bound}")
    for optim_key, schedule_key in _OPTIMIZERS:
        schedule_steps = _field(state, schedule_key, "last_epoch", updates)
        if schedule_steps > updates:  # a schedule ahead of the update count: saved in the middle of a step
            raise StateFileError(
                f"{source} has counters that disagree: the {schedule_key} made {schedule_steps} steps but "
                f"updates = {updates} (saved in the middle of a training step)"
            )
        optim = state.get(optim_key)
        if optim is not None and schedule_steps > 0 and not (isinstance(optim, dict) and optim.get("state")):
            raise StateFileError(f"{source} has an empty {optim_key} state after {schedule_steps} updates")


def _field(state: dict[str, Any], part: str, name: str, default: Any) -> Any:
    section = state.get(part)
    return section.get(name, default) if isinstance(section, dict) else default


def _leaves(node: Any, where: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(node, Mapping):
        for key, value in node.items():
            yield from _leaves(value, f"{where}/{key}".lstrip("/"))
    elif isinstance(node, (list, tuple)):
        for index, value in enumerate(node):
            yield from _leaves(value, f"{where}/{index}".lstrip("/"))
    else:
        yield where, node


def _finite(value: Any) -> bool:
    if isinstance(value, torch.Tensor):
        return not value.is_floating_point() or bool(torch.isfinite(value).all())
    if isinstance(value, float):
        return math.isfinite(value)
    return True


def check_fits(
    state: dict[str, Any],
    source: str,
    cfg: DramaConfig,
    modules: Mapping[str, nn.Module],
    optimizers: Mapping[str, torch.optim.Optimizer],
) -> None:
    """ValueError naming the first part of `state` that does not fit `cfg` and the given models/optimisers.

    `modules` and `optimizers` map a state key ('world_model', 'wm_optim', ...) to the live object.
    """
    _check_config(state.get("config"), cfg, source)
    for key, module in modules.items():
        _check_module(state.get(key), module, f"{source}: {key}")
    for key, optimizer in optimizers.items():
        _check_optimizer(state.get(key), optimizer, f"{source}: {key}")


def _check_config(saved: Any, cfg: DramaConfig, source: str) -> None:
    try:
        there = dict(_leaves(DramaConfig.from_dict(saved).to_dict()))
    except (TypeError, ValueError, AttributeError) as err:
        raise ValueError(f"{source} has no valid configuration: {err}") from None
    here = dict(_leaves(cfg.to_dict()))
    differ = [name for name in sorted(here.keys() | there.keys()) if here.get(name) != there.get(name)]
    if differ:
        shown = "; ".join(f"{n.replace('/', '.')}: {there.get(n)!r} saved, {here.get(n)!r} here" for n in differ[:5])
        more = f" and {len(differ) - 5} more" if len(differ) > 5 else ""
        raise ValueError(f"{source} was saved with a different configuration ({shown}{more})")


def _check_module(saved: Any, module: nn.Module, where: str) -> None:
    expected = module.state_dict()
    if not isinstance(saved, dict):
        raise ValueError(f"{where} is missing from the training state")
    missing, unknown = sorted(expected.keys() - saved.keys()), sorted(saved.keys() - expected.keys())
    if missing or unknown:
        raise ValueError(
            f"{where} does not fit this model (saved by another preset or version?): "
            f"missing {missing[:3]}{'...' if len(missing) > 3 else ''}, "
            f"unexpected {unknown[:3]}{'...' if len(unknown) > 3 else ''}"
        )
    for name, tensor in expected.items():
        value = saved[name]
        if not isinstance(value, torch.Tensor) or value.shape != tensor.shape or value.dtype != tensor.dtype:
            got = f"{value.dtype} {tuple(value.shape)}" if isinstance(value, torch.Tensor) else type(value).__name__
            raise ValueError(
                f"{where}.{name} is {got} in the training state but {tensor.dtype} {tuple(tensor.shape)} in this "
                "model (saved by another preset?)"
            )


def _check_optimizer(saved: Any, optimizer: torch.optim.Optimizer, where: str) -> None:
    if not isinstance(saved, dict) or not isinstance(saved.get("param_groups"), list) or "state" not in saved:
        raise ValueError(f"{where} is not an optimiser state (it has no 'state' and 'param_groups')")
    groups = saved["param_groups"]
    sizes = [len(g.get("params", [])) if isinstance(g, dict) else -1 for g in groups]
    live_sizes = [len(g["params"]) for g in optimizer.param_groups]
    if sizes != live_sizes:
        raise ValueError(f"{where} covers parameter groups of sizes {sizes}, this model's optimiser {live_sizes}")
    ids = [i for g in groups for i in g["params"]]
    params = [p for g in optimizer.param_groups for p in g["params"]]
    for index, (saved_id, param) in enumerate(zip(ids, params, strict=True)):
        for name, value in saved["state"].get(saved_id, {}).items():
            if isinstance(value, torch.Tensor) and value.dim() > 0 and value.shape != param.shape:
                raise ValueError(
                    f"{where}: {name} of parameter {index} has shape {tuple(value.shape)}, the parameter "
                    f"{tuple(param.shape)} (saved by another preset?)"
                )

"""Validation of a `DramaConfig` when it is built: every error names the field (e.g. `replay.seq_len`)."""

from __future__ import annotations

import dataclasses
import math
import typing
from typing import Any

NON_NEGATIVE = {
    "train.freeze_steps",
    "train.warmup_steps",
    "train.world_model_only_steps",
    "train.lr_warmup_updates",
    "seed",
}
"""Integer fields that may be 0; every other integer field must be positive."""
UNIT_INTERVAL = {
    "world_model.unimix",
    "actor_critic.gamma",
    "actor_critic.lambda_",
    "actor_critic.slow_critic_decay",
    "actor_critic.return_norm_decay",
    "actor_critic.return_norm_low",
    "actor_critic.return_norm_high",
}
"""Float fields that must lie in [0, 1]."""
NON_NEGATIVE_FLOATS = {
    "actor_critic.entropy_coef",
    "world_model.dyn_scale",
    "world_model.rep_scale",
    "world_model.free_bits",
    "train.weight_decay",
    "replay.alpha",
    "replay.beta",
}
"""Float fields that may be 0; every other float field must be positive, except the bin edges."""
ANY_SIGN = {"world_model.bin_low", "world_model.bin_high", "actor_critic.value_bin_low", "actor_critic.value_bin_high"}


def validate(cfg: Any) -> None:
    """Raise ValueError naming the first field of `cfg` (a DramaConfig) that is out of range or inconsistent."""
    for name, value, hint in _fields(cfg, ""):
        _check_field(name, value, hint)
    _require(cfg.sequence.d_inner % cfg.sequence.headdim == 0, "sequence.headdim", "must divide expand * d_model")
    _require(cfg.sequence.d_model % cfg.sequence.n_heads == 0, "sequence.n_heads", "must divide d_model")
    _require(cfg.sequence.dt_min <= cfg.sequence.dt_max, "sequence.dt_min", "must be <= sequence.dt_max")
    _require(cfg.sequence.a_init_min <= cfg.sequence.a_init_max, "sequence.a_init_min", "must be <= a_init_max")
    wm = cfg.world_model
    _require(len(wm.encoder_channels) == len(wm.encoder_strides), "world_model.encoder_strides", "one per channel")
    _require(wm.bin_low < wm.bin_high, "world_model.bin_low", "must be < world_model.bin_high")
    ac = cfg.actor_critic
    _require(ac.value_bin_low < ac.value_bin_high, "actor_critic.value_bin_low", "must be < value_bin_high")
    _require(ac.return_norm_low < ac.return_norm_high, "actor_critic.return_norm_low", "must be < return_norm_high")
    replay, train = cfg.replay, cfg.train
    _require(replay.seq_len <= replay.capacity, "replay.seq_len", f"must fit in replay.capacity={replay.capacity}")
    _require(
        cfg.imagination.context <= replay.capacity,
        "imagination.context",
        f"must fit in replay.capacity={replay.capacity}",
    )
    _require(
        train.world_model_only_steps == 0 or train.warmup_steps + train.world_model_only_steps < replay.capacity,
        "train.world_model_only_steps",
        f"with train.warmup_steps must stay below replay.capacity={replay.capacity} (else the policy never learns)",
    )
    # The first update may come after warmup_steps + 1 steps; each of its batches needs that many distinct windows.
    for batch, length, what in (
        (replay.batch_size, replay.seq_len, "replay.batch_size windows of replay.seq_len"),
        (cfg.imagination.batch_size, cfg.imagination.context, "imagination.batch_size windows of imagination.context"),
    ):
        _require(
            train.warmup_steps + 2 - length >= batch,
            "train.warmup_steps",
            f"must be >= {batch + length - 2}: updates start after warmup_steps + 1 steps and need {batch} distinct "
            f"windows of {length} steps ({what})",
        )


def _fields(section: Any, prefix: str) -> typing.Iterator[tuple[str, Any, Any]]:
    hints = typing.get_type_hints(type(section))
    for f in dataclasses.fields(section):
        value = getattr(section, f.name)
        if dataclasses.is_dataclass(value):
            yield from _fields(value, f"{prefix}{f.name}.")
        else:
            yield f"{prefix}{f.name}", value, hints[f.name]


def _check_field(name: str, value: Any, hint: Any) -> None:
    origin = typing.get_origin(hint)
    if origin is typing.Literal:
        choices = typing.get_args(hint)
        _require(value in choices, name, f"must be one of {', '.join(map(repr, choices))}, got {value!r}")
    elif hint is bool:
        _require(isinstance(value, bool), name, f"must be True or False, got {value!r}")
    elif hint is int:
        _require(isinstance(value, int) and not isinstance(value, bool), name, f"must be an integer, got {value!r}")
        low = 0 if name in NON_NEGATIVE else 1
        _require(value >= low, name, f"must be >= {low}, got {value}")
    elif hint is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        _require(ok, name, f"must be a finite number, got {value!r}")
        if name in UNIT_INTERVAL:
            _require(0.0 <= value <= 1.0, name, f"must be in [0, 1], got {value}")
        elif name in NON_NEGATIVE_FLOATS:
            _require(value >= 0.0, name, f"must be >= 0, got {value}")
        elif name not in ANY_SIGN:
            _require(value > 0.0, name, f"must be > 0, got {value}")
    elif origin is tuple:
        ok = isinstance(value, tuple) and len(value) > 0
        _require(ok and all(isinstance(v, (int, float)) and v > 0 for v in value), name, f"got {value!r}")


def _require(ok: bool, name: str, message: str) -> None:
    if not ok:
        raise ValueError(f"config field {name}: {message}")

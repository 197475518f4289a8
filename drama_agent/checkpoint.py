"""The checkpoint format: a folder with `config.json` and `model.safetensors`, written and read strictly.

`config.json` holds `format_version` (folders newer than `FORMAT_VERSION` are refused), the package version,
the agent's config, env id, action count, observation shape, action meanings, steps trained, the
evaluation and the SHA-256 of `model.safetensors` (`model_sha256`, verified on load when present). The
tensors are stored in the models' own dtypes; a folder whose floating-point weights were converted to a
lower precision says so in `weights_dtype` (e.g. "bfloat16") and is cast up on load; any other dtype
mismatch is refused. `model.safetensors` holds the world model's and
the actor-critic's state dicts (normaliser and EMA statistics included) under the prefixes `world_model.`
and `actor_critic.`. Loading is safetensors-only and refuses missing, extra or mis-shaped keys. A shared
folder may also hold a `README.md` model card (`drama_agent.model_card`) and a `rollout.gif`;
`drama_agent.hub` finds, downloads and uploads folders.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from drama_agent.atomic import os_error
from drama_agent.config import DramaConfig

FORMAT_VERSION = 1
"""Version of the checkpoint layout written by this package; newer folders are refused."""

CHECKPOINT_FILES = ("config.json", "model.safetensors", "README.md", "rollout.gif")
"""Every file a checkpoint may hold (the last is optional); nothing else is fetched or pushed."""
REQUIRED_FILES = ("config.json", "model.safetensors")
"""Files without which a folder is not a checkpoint."""
MODULES = ("world_model", "actor_critic")
"""The modules whose state dicts `model.safetensors` holds, each under its name as prefix."""

_MAX_LISTED_KEYS = 20


class CheckpointFormatError(ValueError):
    """A checkpoint exists but cannot be loaded: missing files, bad config, corrupt weights, wrong keys."""


def write_checkpoint(
    folder: str | os.PathLike,
    config: dict[str, Any],
    modules: dict[str, torch.nn.Module],
    weights_dtype: torch.dtype | None = None,
) -> Path:
    """Write `model.safetensors` of `modules`, then `config.json` with `format_version` and the file's SHA-256
    (`model_sha256`), into `folder`.

    Tensors keep their own dtypes unless `weights_dtype` names a lower floating precision (e.g.
    `torch.bfloat16`, half the size): then every wider floating tensor is stored in it and `config.json`
    records it as `weights_dtype`, so that loading casts it back up.

    Files are written in place: write into the temporary folder of `drama_agent.atomic.atomic_folder` so
    that readers never see a mix of old and new files.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {f"{name}.{k}": v for name, module in modules.items() for k, v in module.state_dict().items()}
    tensors = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    if weights_dtype is not None:
        tensors = {
            k: v.to(weights_dtype) if _lower_precision(v.to(weights_dtype), v, weights_dtype) else v
            for k, v in tensors.items()
        }
        config = {**config, "weights_dtype": str(weights_dtype).removeprefix("torch.")}
    try:
        save_file(tensors, str(folder / "model.safetensors"))
    except SafetensorError as err:
        raise os_error(err) from err
    config = {"format_version": FORMAT_VERSION, **config, "model_sha256": file_sha256(folder / "model.safetensors")}
    (folder / "config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
    return folder


@torch.no_grad()
def round_weights(modules: dict[str, torch.nn.Module], weights_dtype: torch.dtype) -> None:
    """Round every wider floating tensor of `modules` to `weights_dtype` in place (keeping its dtype), so the
    agent plays exactly as it will after `write_checkpoint(..., weights_dtype)` and loading."""
    for module in modules.values():
        for value in module.state_dict().values():
            if _lower_precision(value.to(weights_dtype), value, weights_dtype):
                value.copy_(value.to(weights_dtype))


def file_sha256(path: Path) -> str:
    """SHA-256 (hex) of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def read_agent_config(folder: str | os.PathLike) -> tuple[dict[str, Any], DramaConfig, int, str]:
    """`config.json` of an agent checkpoint -> (the raw dict, its DramaConfig, action count, env id)."""
    config = read_checkpoint_config(folder)
    try:
        cfg = DramaConfig.from_dict(config["config"])
        num_actions, env_id = int(config["num_actions"]), config["env_id"]
    except (KeyError, TypeError, ValueError) as err:
        path = Path(folder) / "config.json"
        raise CheckpointFormatError(f"{path} does not describe a Drama agent: {err}") from None
    return config, cfg, num_actions, env_id


def load_modules(
    folder: str | os.PathLike, modules: dict[str, torch.nn.Module], config: dict[str, Any] | None = None
) -> None:
    """Load `model.safetensors` strictly into `modules` (name -> module); keys of no module are refused.

    With the folder's `config` the file is first checked against its `model_sha256`, and floating-point
    tensors may be stored in the lower precision its `weights_dtype` names (they are cast up on load).
    """
    config = config or {}
    tensors = load_checkpoint_tensors(folder, config.get("model_sha256"))
    stored = getattr(torch, str(config.get("weights_dtype")), None)
    for name, module in modules.items():
        strict_load(module, tensors, f"{name}.", stored if isinstance(stored, torch.dtype) else None)
    stray = sorted(k for k in tensors if not k.startswith(tuple(f"{name}." for name in modules)))
    if stray:
        raise CheckpointFormatError(f"unexpected keys in {Path(folder) / 'model.safetensors'}: {stray[:10]}")


def read_checkpoint_config(folder: str | os.PathLike) -> dict[str, Any]:
    """Parse `folder/config.json`; refuse a missing or malformed file and a format newer than FORMAT_VERSION."""
    path = Path(folder) / "config.json"
    if not path.is_file():
        raise CheckpointFormatError(f"{path} is missing: {Path(folder)} is not a drama-agent checkpoint")
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CheckpointFormatError(f"{path} is not valid JSON: {err}") from None
    if not isinstance(config, dict):
        raise CheckpointFormatError(f"{path} must hold a JSON object, not {type(config).__name__}")
    version = config.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise CheckpointFormatError(f"{path} has no valid 'format_version' (a positive integer); got {version!r}")
    if version > FORMAT_VERSION:
        writer = config.get("package_version", "a newer version")
        raise CheckpointFormatError(
            f"{path} has format_version {version}, but this drama-agent reads format_version <= {FORMAT_VERSION}. "
            f"It was written by drama-agent {writer}; upgrade with `pip install -U drama-agent`."
        )
    return config


def load_checkpoint_tensors(folder: str | os.PathLike, sha256: str | None = None) -> dict[str, torch.Tensor]:
    """Read `folder/model.safetensors` on the CPU; a missing, truncated or corrupt file, or one whose SHA-256
    is not `sha256` (when given), raises CheckpointFormatError."""
    path = Path(folder) / "model.safetensors"
    if not path.is_file():
        pickles = sorted(p.name for p in Path(folder).glob("*") if p.suffix in (".bin", ".pt", ".pth", ".ckpt"))
        note = f" (found {', '.join(pickles)}: pickle files are never loaded)" if pickles else ""
        raise CheckpointFormatError(f"{path} is missing{note}")
    if sha256 is not None and file_sha256(path) != sha256:
        raise CheckpointFormatError(
            f"{path} does not match the SHA-256 recorded in config.json: it was damaged or replaced after saving. "
            "Download or copy the folder again."
        )
    try:
        return load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError) as err:
        size = path.stat().st_size
        raise CheckpointFormatError(
            f"{path} ({size} bytes) is not a readable safetensors file, it is truncated or corrupt: {err}. "
            "Download or copy it again."
        ) from None


def strict_load(
    module: torch.nn.Module, tensors: dict[str, torch.Tensor], prefix: str = "", stored: torch.dtype | None = None
) -> None:
    """Load the entries of `tensors` under `prefix` into `module`, refusing missing, extra, mis-shaped and
    mis-typed keys; a floating-point tensor may be in the lower precision `stored` (it is cast up).

    Keys outside `prefix` belong to other modules and are left alone. The error names every offending key.
    """
    own = {key[len(prefix) :]: value for key, value in tensors.items() if key.startswith(prefix)}
    expected = module.state_dict()
    missing = sorted(set(expected) - set(own))
    unexpected = sorted(set(own) - set(expected))
    mismatched = sorted(
        f"{prefix}{key}: checkpoint {tuple(own[key].shape)} vs model {tuple(expected[key].shape)}"
        for key in set(own) & set(expected)
        if own[key].shape != expected[key].shape
    )
    mistyped = sorted(
        f"{prefix}{key}: checkpoint {own[key].dtype} vs model {expected[key].dtype}"
        for key in set(own) & set(expected)
        if own[key].dtype != expected[key].dtype and not _lower_precision(own[key], expected[key], stored)
    )
    problems = []
    if missing:
        problems.append(f"missing keys ({len(missing)}): {_key_list([prefix + k for k in missing])}")
    if unexpected:
        problems.append(f"unexpected keys ({len(unexpected)}): {_key_list([prefix + k for k in unexpected])}")
        if all(k.startswith("_orig_mod.") for k in unexpected):
            problems.append("the '_orig_mod.' prefix comes from saving a torch.compile'd module; save the original")
    if mismatched:
        problems.append(f"shape mismatches ({len(mismatched)}): {_key_list(mismatched)}")
    if mistyped:
        problems.append(
            f"dtype mismatches ({len(mistyped)}): {_key_list(mistyped)} (config.json's weights_dtype does not "
            "declare a lower precision)"
        )
    if problems:
        name = type(module).__name__
        raise CheckpointFormatError(f"checkpoint does not match {name} (prefix {prefix!r}): " + "; ".join(problems))
    module.load_state_dict(own, strict=True)


def _lower_precision(value: torch.Tensor, target: torch.Tensor, stored: torch.dtype | None) -> bool:
    """Whether `value` is a floating tensor in the declared lower precision `stored` of a wider `target`."""
    return (
        stored is not None
        and stored.is_floating_point
        and value.dtype == stored
        and target.is_floating_point()
        and torch.finfo(stored).bits < torch.finfo(target.dtype).bits
    )


def checked_folder(folder: Path, source: str) -> Path:
    """Return `folder` if it holds every required file, else raise CheckpointFormatError naming the missing ones."""
    missing = [name for name in REQUIRED_FILES if not (folder / name).is_file()]
    if missing:
        raise CheckpointFormatError(f"{source} is not a drama-agent checkpoint: it has no {', '.join(missing)}")
    return folder


def _key_list(keys: list[str]) -> str:
    """Comma-separated keys, at most _MAX_LISTED_KEYS of them."""
    shown = ", ".join(keys[:_MAX_LISTED_KEYS])
    return shown if len(keys) <= _MAX_LISTED_KEYS else f"{shown}, ... ({len(keys) - _MAX_LISTED_KEYS} more)"

"""Pickle-free, verified, atomic storage of nested training state in one safetensors file.

A state is any nesting of dicts, lists and tuples whose leaves are tensors, numpy arrays, bytes,
numbers, strings, booleans or None. Tensors (and arrays/bytes, stored as tensors) go into the
safetensors payload; the nesting and the plain leaves go into its JSON metadata, together with a
SHA-256 over that nesting and every tensor (name, dtype, shape, bytes). `load_state` recomputes the
digest, so a flipped bit anywhere in the file is reported instead of loaded (files written before the
digest was recorded load unverified). `save_state` writes atomically (see `drama_agent.atomic`) and can
keep the file it replaces as a previous version.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from drama_agent.atomic import atomic_path, os_error, temp_path

_META_KEY = "drama_state"
_DIGEST_KEY = "drama_state_sha256"
_NO_HARD_LINKS = {errno.EPERM, errno.EXDEV, errno.EMLINK, errno.ENOTSUP, errno.EOPNOTSUPP}


class StateFileError(ValueError):
    """A training-state file that cannot be used: unreadable, damaged, or not a training state."""


def flatten_state(state: Any) -> tuple[dict[str, torch.Tensor], Any]:
    """Split `state` into a flat dict of tensors and a JSON-serialisable skeleton that refers to them."""
    tensors: dict[str, torch.Tensor] = {}

    def walk(node: Any) -> Any:
        if isinstance(node, torch.Tensor):
            key = str(len(tensors))
            tensors[key] = node.detach().cpu().contiguous()
            return {"__tensor__": key}
        if isinstance(node, np.ndarray):
            key = str(len(tensors))
            tensors[key] = torch.from_numpy(np.ascontiguousarray(node))
            return {"__ndarray__": key}
        if isinstance(node, bytes):
            key = str(len(tensors))
            tensors[key] = torch.tensor(np.frombuffer(node, dtype=np.uint8))
            return {"__bytes__": key}
        if isinstance(node, dict):
            if not all(isinstance(k, str) for k in node):
                return {"__intdict__": [[k, walk(v)] for k, v in node.items()]}
            return {"__dict__": {k: walk(v) for k, v in node.items()}}
        if isinstance(node, (list, tuple)):
            return {"__tuple__" if isinstance(node, tuple) else "__list__": [walk(v) for v in node]}
        if isinstance(node, (np.integer, np.floating, np.bool_)):
            return node.item()
        if node is None or isinstance(node, (bool, int, float, str)):
            return node
        raise TypeError(f"cannot store a {type(node).__name__} in a training state")

    skeleton = walk(state)
    return tensors, skeleton


def unflatten_state(tensors: dict[str, torch.Tensor], skeleton: Any, source: str = "the state") -> Any:
    """Inverse of `flatten_state`; a tensor the skeleton names but `tensors` lacks is a `StateFileError`."""

    def tensor(key: str, where: str) -> torch.Tensor:
        if key not in tensors:
            raise StateFileError(f"{source} lacks the tensor of {where or 'the state'}")
        return tensors[key]

    def walk(node: Any, where: str) -> Any:
        if not isinstance(node, dict):
            return node
        if len(node) != 1:
            raise StateFileError(f"{source} has a malformed entry at {where or 'the top level'}")
        ((kind, value),) = node.items()
        if kind == "__tensor__":
            return tensor(value, where)
        if kind == "__ndarray__":
            return tensor(value, where).numpy()
        if kind == "__bytes__":
            return tensor(value, where).numpy().tobytes()
        if kind == "__dict__":
            return {k: walk(v, f"{where}/{k}".lstrip("/")) for k, v in value.items()}
        if kind == "__intdict__":
            return {k: walk(v, f"{where}/{k}".lstrip("/")) for k, v in value}
        if kind in ("__tuple__", "__list__"):
            items = [walk(v, f"{where}/{i}".lstrip("/")) for i, v in enumerate(value)]
            return tuple(items) if kind == "__tuple__" else items
        raise StateFileError(f"{source} has an entry of unknown kind {kind!r} at {where or 'the top level'}")

    return walk(skeleton, "")


def state_digest(tensors: dict[str, torch.Tensor], skeleton_json: str) -> str:
    """SHA-256 (hex) of the JSON skeleton and of every tensor's name, dtype, shape and bytes, by name."""
    digest = hashlib.sha256(skeleton_json.encode("utf-8"))
    for key in sorted(tensors):
        value = tensors[key].detach().cpu().contiguous()
        digest.update(f"\n{key}:{value.dtype}:{tuple(value.shape)}\n".encode())
        digest.update(value.reshape(-1).view(torch.uint8).numpy())  # the raw bytes, without a copy
    return digest.hexdigest()


def save_state(state: Any, path: str | os.PathLike, previous: str | os.PathLike | None = None) -> None:
    """Write `state` to `path` atomically; with `previous`, the file it replaces is kept under that name.

    At every moment `path` holds a complete state (the old one or the new one); `previous` holds the old
    one from just before the rename on (so for an instant both names hold the old state). An `OSError`
    (a full disk) raises `drama_agent.atomic.WriteError` with a one-line message and leaves both files as
    they were.
    """
    path = Path(path)
    tensors, skeleton = flatten_state(state)
    text = json.dumps(skeleton)
    metadata = {_META_KEY: text, _DIGEST_KEY: state_digest(tensors, text)}
    with atomic_path(path) as tmp:
        try:
            save_file(tensors, str(tmp), metadata=metadata)
        except SafetensorError as err:
            raise os_error(err) from err
        if previous is not None and path.exists():
            _keep_previous(path, Path(previous))


def _keep_previous(path: Path, previous: Path) -> None:
    """Make `previous` the current content of `path` without ever leaving `path` missing."""
    link = temp_path(previous)
    link.unlink(missing_ok=True)
    try:
        os.link(path, link)  # a second name for the same data: no copy, no extra space
    except OSError as err:
        if err.errno not in _NO_HARD_LINKS:
            raise
        shutil.copyfile(path, link)
    os.replace(link, previous)


def load_state(path: str | os.PathLike) -> Any:
    """Read and verify a state written by `save_state`; a missing, damaged or foreign file raises a clear error.

    FileNotFoundError when there is no file; `StateFileError` (a ValueError) naming the file otherwise.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no training state at {path}")
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as err:
        raise StateFileError(f"{path} is not a readable safetensors file (truncated or corrupt?): {err}") from err
    text = metadata.get(_META_KEY)
    if text is None:
        raise StateFileError(f"{path} is a safetensors file but not a drama-agent training state")
    recorded = metadata.get(_DIGEST_KEY)
    if recorded is not None and recorded != state_digest(tensors, text):
        raise StateFileError(f"{path} is damaged: its contents do not match the SHA-256 recorded when it was written")
    try:
        skeleton = json.loads(text)
    except json.JSONDecodeError as err:
        raise StateFileError(f"{path} has unreadable training-state metadata: {err}") from err
    return unflatten_state(tensors, skeleton, source=str(path))

"""Pickle-free, atomic storage of nested training state in one safetensors file.

A state is any nesting of dicts (string keys), lists and tuples whose leaves are tensors, numpy arrays,
bytes, numbers, strings, booleans or None. Tensors (and arrays/bytes, stored as tensors) go into the
safetensors payload; the nesting and the plain leaves go into its JSON metadata. `save_state` writes a
temporary file and renames it over the target, so a kill at any moment leaves the previous file intact.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

_META_KEY = "drama_state"


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


def unflatten_state(tensors: dict[str, torch.Tensor], skeleton: Any) -> Any:
    """Inverse of `flatten_state`."""

    def walk(node: Any) -> Any:
        if not isinstance(node, dict):
            return node
        ((kind, value),) = node.items()
        if kind == "__tensor__":
            return tensors[value]
        if kind == "__ndarray__":
            return tensors[value].numpy()
        if kind == "__bytes__":
            return tensors[value].numpy().tobytes()
        if kind == "__dict__":
            return {k: walk(v) for k, v in value.items()}
        if kind == "__intdict__":
            return {k: walk(v) for k, v in value}
        if kind == "__tuple__":
            return tuple(walk(v) for v in value)
        return [walk(v) for v in value]

    return walk(skeleton)


def save_state(state: Any, path: str | os.PathLike) -> None:
    """Write `state` to `path` atomically (temporary file in the same folder, fsync, rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors, skeleton = flatten_state(state)
    tmp = path.with_name(path.name + ".tmp")
    save_file(tensors, str(tmp), metadata={_META_KEY: json.dumps(skeleton)})
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)


def load_state(path: str | os.PathLike) -> Any:
    """Read a state written by `save_state`; a missing or damaged file raises a clear error."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no training state at {path}")
    try:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as err:
        raise ValueError(f"{path} is not a readable safetensors file (truncated or corrupt?): {err}") from err
    if _META_KEY not in metadata:
        raise ValueError(f"{path} is a safetensors file but not a drama-agent training state")
    return unflatten_state(tensors, json.loads(metadata[_META_KEY]))

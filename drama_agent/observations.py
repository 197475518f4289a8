"""The one check of observation arrays: uint8 frames (..., S, S, 3) with the expected leading dimensions."""

from __future__ import annotations

from typing import Any


def check_frames(obs: Any, frame_size: int, leading: tuple[str, ...] = (), name: str = "observation") -> None:
    """ValueError naming `name` unless `obs` (numpy or torch) is uint8 of shape (*leading, S, S, 3).

    `leading` names the dimensions before the frame, e.g. ("B", "L"); only their count is checked.
    """
    dims = (*leading, str(frame_size), str(frame_size), "3")
    dtype = str(obs.dtype).removeprefix("torch.")
    shape = tuple(obs.shape)
    if dtype != "uint8" or len(shape) != len(dims) or shape[len(leading) :] != (frame_size, frame_size, 3):
        raise ValueError(f"{name} must be uint8 ({', '.join(dims)}), got {dtype} {shape}")

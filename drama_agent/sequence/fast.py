"""Optional CUDA path: `mamba_ssm`'s Triton SSD scan and state update for the Mamba-2 mixer.

`mamba_ssm` is imported lazily, the first time a CUDA tensor reaches the mixer, so importing drama_agent
never touches it (its package import needs a CUDA extension and may fail in many ways on a CPU machine).
Which path is active is logged once per process. `pure_pytorch()` forces the reference path.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import Tensor

logger = logging.getLogger(__name__)

_kernels: tuple[Callable[..., Any], Callable[..., Any]] | None = None
_import_tried = False
_enabled = True
_logged = False


def _load_kernels() -> tuple[Callable[..., Any], Callable[..., Any]] | None:
    global _kernels, _import_tried
    if not _import_tried:
        _import_tried = True
        try:
            from mamba_ssm.ops.triton.selective_state_update import selective_state_update
            from mamba_ssm.ops.triton.ssd_combined import mamba_chunk_scan_combined

            _kernels = (mamba_chunk_scan_combined, selective_state_update)
        except Exception as error:  # noqa: BLE001 — any failure (missing package, CUDA ABI) means the pure path
            logger.info("mamba_ssm kernels unavailable (%s: %s)", type(error).__name__, error)
    return _kernels


def use_fast_path(u: Tensor) -> bool:
    """True if `u` is a float32/bf16/fp16 CUDA tensor, the path is enabled and mamba_ssm's kernels import."""
    global _logged
    if not u.is_cuda or u.dtype == torch.float64:
        return False
    fast = _enabled and _load_kernels() is not None
    if not _logged:
        _logged = True
        path = "mamba_ssm Triton kernels" if fast else "pure-PyTorch chunked SSD"
        logger.info("Mamba-2 on CUDA uses the %s", path)
    return fast


@contextlib.contextmanager
def pure_pytorch() -> Iterator[None]:
    """Within this block the Mamba-2 mixer uses the pure-PyTorch SSD even where the kernels are available."""
    global _enabled
    previous, _enabled = _enabled, False
    try:
        yield
    finally:
        _enabled = previous


def chunk_scan(
    x: Tensor,
    dt: Tensor,
    A: Tensor,
    B: Tensor,
    C: Tensor,
    D: Tensor,
    dt_bias: Tensor,
    chunk_size: int,
    initial_state: Tensor,
) -> tuple[Tensor, Tensor]:
    """The chunked SSD including softplus(dt + dt_bias) and the D skip; shapes as `ssd.ssd_chunked`."""
    scan, _ = _load_kernels()
    y, final_state = scan(
        x,
        dt,
        A.float(),
        B,
        C,
        chunk_size,
        D=D.float(),
        dt_bias=dt_bias.float(),
        initial_states=initial_state.float(),
        dt_softplus=True,
        return_final_states=True,
    )
    return y, final_state


def state_update(
    state: Tensor, x: Tensor, dt: Tensor, A: Tensor, B: Tensor, C: Tensor, D: Tensor, dt_bias: Tensor
) -> tuple[Tensor, Tensor]:
    """One recurrent step including softplus(dt + dt_bias) and the D skip; shapes as `ssd.ssd_step`.

    The kernel writes the state in place, so it runs on a copy: the caller's state is left as it was.
    """
    _, update = _load_kernels()
    nheads, headdim, dstate = state.shape[1:]
    state = state.clone()
    y = update(
        state,
        x,
        dt.unsqueeze(-1).expand(-1, -1, headdim),
        A.float()[:, None, None].expand(nheads, headdim, dstate),
        B,
        C,
        D=D.float()[:, None].expand(nheads, headdim),
        dt_bias=dt_bias.float()[:, None].expand(nheads, headdim),
        dt_softplus=True,
    )
    return y, state

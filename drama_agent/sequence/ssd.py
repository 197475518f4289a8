"""State-space duality (SSD) of Mamba-2 in pure PyTorch: the chunked scan and the one-step recurrence.

Per head h the scan is S_t = exp(dt_t * A_h) * S_{t-1} + dt_t * x_t ⊗ B_t and y_t = S_t · C_t, with the
state S of shape (headdim P, d_state N). `ssd_chunked` evaluates it in chunks: the quadratic
(attention-like) form inside each chunk and the linear recurrence across chunks. The skip term D·x and the
gate are added by the layer, not here.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """The scan runs in float64 for float64 inputs and in float32 otherwise (also under bf16 autocast)."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def segment_sum(log_decay: Tensor) -> Tensor:
    """Pairwise sums out[..., i, j] = sum_{k=j+1..i} log_decay[..., k] for j <= i and -inf above the diagonal.

    Built from a masked cumulative sum (no difference of two long cumulative sums), so it stays exact
    for long chunks. `log_decay` (..., L) -> (..., L, L).
    """
    length = log_decay.shape[-1]
    expanded = log_decay.unsqueeze(-1).expand(*log_decay.shape, length)  # (..., L_k, L_j)
    strictly_lower = torch.ones(length, length, dtype=torch.bool, device=log_decay.device).tril(-1)
    sums = expanded.masked_fill(~strictly_lower, 0.0).cumsum(dim=-2)  # (..., L_i, L_j)
    lower = torch.ones(length, length, dtype=torch.bool, device=log_decay.device).tril(0)
    return sums.masked_fill(~lower, float("-inf"))


def ssd_chunked(
    x: Tensor, dt: Tensor, A: Tensor, B: Tensor, C: Tensor, chunk_size: int, initial_state: Tensor | None = None
) -> tuple[Tensor, Tensor]:
    """Chunked SSD scan.

    Args:
        x: (batch, T, H, P) inputs per head.
        dt: (batch, T, H) positive step sizes (softplus already applied).
        A: (H,) negative decay rates.
        B, C: (batch, T, G, N) input and output projections shared by H/G heads per group.
        chunk_size: any positive length; T need not be a multiple (the tail is padded with dt = 0, x = 0,
            which leaves the state untouched). Sequences shorter than a chunk use one chunk of length T.
        initial_state: (batch, H, P, N) state before the first step, zeros if None.

    Returns:
        y (batch, T, H, P) and the final state (batch, H, P, N), in the compute dtype.
    """
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be positive, got {chunk_size}")
    batch, length, nheads, headdim = x.shape
    ngroups, dstate = B.shape[2], B.shape[3]
    dtype = compute_dtype(x.dtype)
    chunk_size = min(chunk_size, max(length, 1))
    with torch.autocast(device_type=x.device.type, enabled=False):
        x, dt, A, B, C = (t.to(dtype) for t in (x, dt, A, B, C))
        B = B.repeat_interleave(nheads // ngroups, dim=2)  # (batch, T, H, N)
        C = C.repeat_interleave(nheads // ngroups, dim=2)
        pad = (-length) % chunk_size
        if pad:
            x = F.pad(x, (0, 0, 0, 0, 0, pad))
            dt = F.pad(dt, (0, 0, 0, pad))
            B = F.pad(B, (0, 0, 0, 0, 0, pad))
            C = F.pad(C, (0, 0, 0, 0, 0, pad))
        nchunks = x.shape[1] // chunk_size
        # (batch, c, l, ...) with c chunks of length l
        xdt = (x * dt.unsqueeze(-1)).reshape(batch, nchunks, chunk_size, nheads, headdim)
        B = B.reshape(batch, nchunks, chunk_size, nheads, dstate)
        C = C.reshape(batch, nchunks, chunk_size, nheads, dstate)
        log_decay = (dt * A).reshape(batch, nchunks, chunk_size, nheads).permute(0, 3, 1, 2)  # (batch, H, c, l)
        cum = log_decay.cumsum(dim=-1)  # (batch, H, c, l)

        # 1. within each chunk: y_i = sum_{j<=i} C_i·B_j exp(sum_{j<k<=i} log_decay_k) xdt_j
        decay_matrix = torch.exp(segment_sum(log_decay))  # (batch, H, c, l, l)
        scores = torch.einsum("bclhn,bcshn->bhcls", C, B) * decay_matrix
        y = torch.einsum("bhcls,bcshp->bclhp", scores, xdt)

        # 2. the state each chunk adds by its end: sum_j exp(cum_end - cum_j) xdt_j ⊗ B_j
        decay_to_end = torch.exp(cum[..., -1:] - cum)  # (batch, H, c, l)
        chunk_states = torch.einsum("bclhn,bhcl,bclhp->bchpn", B, decay_to_end, xdt)

        # 3. linear recurrence across chunks: the state entering every chunk
        chunk_decay = torch.exp(cum[..., -1])  # (batch, H, c)
        state = x.new_zeros(batch, nheads, headdim, dstate) if initial_state is None else initial_state.to(dtype)
        entering = []
        for c in range(nchunks):
            entering.append(state)
            state = chunk_decay[:, :, c, None, None] * state + chunk_states[:, c]
        states_in = torch.stack(entering, dim=1)  # (batch, c, H, P, N)

        # 4. contribution of the entering state to every output of the chunk
        y = y + torch.einsum("bclhn,bchpn,bhcl->bclhp", C, states_in, torch.exp(cum))
        y = y.reshape(batch, nchunks * chunk_size, nheads, headdim)[:, :length]
    return y, state


def ssd_step(state: Tensor, x: Tensor, dt: Tensor, A: Tensor, B: Tensor, C: Tensor) -> tuple[Tensor, Tensor]:
    """One step of the recurrence.

    state (batch, H, P, N), x (batch, H, P), dt (batch, H), A (H,), B and C (batch, G, N)
    -> y (batch, H, P) and the new state, in the compute dtype.
    """
    nheads, ngroups = x.shape[1], B.shape[1]
    dtype = compute_dtype(x.dtype)
    with torch.autocast(device_type=x.device.type, enabled=False):
        x, dt, A, B, C, state = (t.to(dtype) for t in (x, dt, A, B, C, state))
        B = B.repeat_interleave(nheads // ngroups, dim=1)  # (batch, H, N)
        C = C.repeat_interleave(nheads // ngroups, dim=1)
        batch, headdim, dstate = x.shape[0], x.shape[2], B.shape[2]
        decay = torch.exp(dt * A)  # (batch, H)
        # one fresh state tensor, updated in place: the state is large at imagination batch sizes
        state = (decay[..., None, None] * state).contiguous()
        flat = state.view(batch * nheads, headdim, dstate)
        flat.baddbmm_((dt.unsqueeze(-1) * x).reshape(-1, headdim, 1), B.reshape(-1, 1, dstate))  # += dt x ⊗ B
        y = torch.bmm(flat, C.reshape(-1, dstate, 1)).view(batch, nheads, headdim)
    return y, state

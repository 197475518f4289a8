"""State-space duality (SSD) of Mamba-2 in pure PyTorch: the chunked scan and the one-step recurrence.

Per head h the scan is S_t = exp(dt_t * A_h) * S_{t-1} + dt_t * x_t ⊗ B_t and y_t = S_t · C_t, with the
state S of shape (headdim P, d_state N). `ssd_chunked` evaluates it in chunks: the quadratic
(attention-like) form inside each chunk and the linear recurrence across chunks. The skip term D·x and the
gate are added by the layer, not here.

CPU layout: heads are split into (groups G, heads per group) so that C·Bᵀ is formed once per group, every
product is a batched matmul over contiguous (chunk, ·) matrices, and the (chunk × chunk) decay matrix of each
head is never kept for backward (`_IntraChunk` recomputes it). Decays are clamped from below at
exp(`decay_floor`) so that no exp or product produces subnormal numbers, which the CPU handles at a small
fraction of its normal speed; the clamped terms are below 1e-26 (float32) of the unclamped ones.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """The scan runs in float64 for float64 inputs and in float32 otherwise (also under bf16 autocast)."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def decay_floor(dtype: torch.dtype) -> float:
    """Lowest log-decay used: 0.7 · log(smallest normal number), -61 in float32 and -496 in float64."""
    return 0.7 * math.log(torch.finfo(dtype).tiny)


def _decay_matrix(cum: Tensor) -> Tensor:
    """exp(cum_i - cum_j) for j <= i; 1 above the diagonal (the caller's lower-triangular C·Bᵀ zeroes it).

    cum (..., l) is non-increasing along l, so every exponent below the diagonal is <= 0; (..., l) -> (..., l, l).
    """
    diff = cum.unsqueeze(-1) - cum.unsqueeze(-2)  # (..., l_i, l_j)
    return diff.clamp_(decay_floor(cum.dtype), 0.0).exp_()


def _bmm(a: Tensor, b: Tensor, transpose_a: bool = False, transpose_b: bool = False) -> Tensor:
    """Batched matmul over all leading dims of two equally batched tensors (..., m, k) @ (..., k, n) -> (b, m, n)."""
    a, b = a.flatten(0, -3), b.flatten(0, -3)
    return torch.bmm(a.transpose(1, 2) if transpose_a else a, b.transpose(1, 2) if transpose_b else b)


class _IntraChunk(torch.autograd.Function):
    """y_i = sum_{j<=i} (C_i·B_j) exp(cum_i - cum_j) xdt_j inside every chunk, per head.

    Saves only its inputs for backward and rebuilds the (l × l) decay matrix there.
    """

    @staticmethod
    def forward(ctx, cum: Tensor, cb: Tensor, xdt: Tensor) -> Tensor:
        # cum (b, G, h, c, l), cb (b, G, 1, c, l, l) lower-triangular, xdt (b, G, h, c, l, P)
        ctx.save_for_backward(cum, cb, xdt)
        scores = _decay_matrix(cum).mul_(cb)  # (b, G, h, c, l, l)
        return _bmm(scores, xdt).view(xdt.shape)

    @staticmethod
    def backward(ctx, grad_y: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        cum, cb, xdt = ctx.saved_tensors
        decay = _decay_matrix(cum)  # (b, G, h, c, l, l)
        grad = _bmm(grad_y, xdt, transpose_b=True).view(decay.shape).mul_(decay)  # d/d(cb) per head
        grad_cb = grad.sum(dim=2, keepdim=True)
        grad.mul_(cb)  # d/d(cum_i - cum_j)
        grad_cum = grad.sum(dim=-1) - grad.sum(dim=-2)
        grad_xdt = _bmm(decay.mul_(cb), grad_y, transpose_a=True).view(xdt.shape)
        return grad_cum, grad_cb, grad_xdt


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
    per_group = nheads // ngroups
    dtype = compute_dtype(x.dtype)
    floor = decay_floor(dtype)
    chunk_size = min(chunk_size, max(length, 1))
    with torch.autocast(device_type=x.device.type, enabled=False):
        x, dt, A, B, C = (t.to(dtype) for t in (x, dt, A, B, C))
        pad = (-length) % chunk_size
        if pad:
            x = F.pad(x, (0, 0, 0, 0, 0, pad))
            dt = F.pad(dt, (0, 0, 0, pad))
            B = F.pad(B, (0, 0, 0, 0, 0, pad))
            C = F.pad(C, (0, 0, 0, 0, 0, pad))
        nchunks = x.shape[1] // chunk_size
        # c chunks of length l; heads split into (G, h = H / G)
        xdt = (x * dt.unsqueeze(-1)).view(batch, nchunks, chunk_size, ngroups, per_group, headdim)
        xdt = xdt.permute(0, 3, 4, 1, 2, 5).contiguous()  # (batch, G, h, c, l, P)
        B = B.view(batch, nchunks, chunk_size, ngroups, dstate).permute(0, 3, 1, 2, 4).contiguous()  # (b, G, c, l, N)
        C = C.view(batch, nchunks, chunk_size, ngroups, dstate).permute(0, 3, 1, 2, 4).contiguous()
        log_decay = (dt * A).view(batch, nchunks, chunk_size, ngroups, per_group).permute(0, 3, 4, 1, 2)
        cum = log_decay.cumsum(dim=-1)  # (batch, G, h, c, l)

        # 1. within each chunk: y_i = sum_{j<=i} C_i·B_j exp(cum_i - cum_j) xdt_j
        cb = (C @ B.transpose(-1, -2)).tril_().unsqueeze(2)  # (batch, G, 1, c, l, l)
        y = _IntraChunk.apply(cum, cb, xdt)  # (batch, G, h, c, l, P)

        # 2. the state each chunk adds by its end: sum_j exp(cum_end - cum_j) xdt_j ⊗ B_j
        decay_to_end = torch.exp((cum[..., -1:] - cum).clamp(min=floor))  # (batch, G, h, c, l)
        chunk_states = xdt.transpose(-1, -2) @ (B.unsqueeze(2) * decay_to_end.unsqueeze(-1))  # (b, G, h, c, P, N)

        # 3. linear recurrence across chunks: the state entering every chunk
        chunk_decay = torch.exp(cum[..., -1].clamp(min=floor))  # (batch, G, h, c)
        if initial_state is None:
            state = x.new_zeros(batch, ngroups, per_group, headdim, dstate)
        else:
            state = initial_state.to(dtype).view(batch, ngroups, per_group, headdim, dstate)
        entering = []
        for decay_c, added_c in zip(chunk_decay.unbind(-1), chunk_states.unbind(3), strict=True):
            entering.append(state)
            state = decay_c[..., None, None] * state + added_c
        states_in = torch.stack(entering, dim=3)  # (batch, G, h, c, P, N)

        # 4. contribution of the entering state: y_i += exp(cum_i) C_i · S_in
        c_decayed = C.unsqueeze(2) * torch.exp(cum.clamp(min=floor)).unsqueeze(-1)  # (batch, G, h, c, l, N)
        y = torch.baddbmm(y.flatten(0, -3), c_decayed.flatten(0, -3), states_in.flatten(0, -3).transpose(1, 2))
        y = y.view(batch, ngroups, per_group, nchunks, chunk_size, headdim).permute(0, 3, 4, 1, 2, 5)
        y = y.reshape(batch, nchunks * chunk_size, nheads, headdim)[:, :length]
    return y, state.view(batch, nheads, headdim, dstate)


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

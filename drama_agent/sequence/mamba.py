"""Mamba-1 mixer (selective scan) for the paper's ablation, parameter names as `mamba_ssm.Mamba`.

in_proj maps u to [x ; z] (d_inner each); a depthwise causal conv + SiLU runs over x; x_proj gives
(dt_rank, B, C); dt = softplus(dt_proj(dt_low)); per channel and state h_t = exp(dt·A)·h_{t-1} + dt·B_t·x_t,
y_t = h_t·C_t + D·x_t, gated by SiLU(z). `forward` runs the scan in chunks (`selective_scan`), `step` one step.
State per layer: (conv_state (B, d_inner, d_conv), ssm_state (B, d_inner, N)).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.autograd.function import once_differentiable

from drama_agent.config import SequenceConfig
from drama_agent.sequence.ssd import compute_dtype

MambaState = tuple[Tensor, Tensor]


# Largest exponent the in-chunk factorisation may use: exp(±range) must stay finite and its rounding (about
# range·eps relative) small, so the range is tighter in float32 than in float64.
_EXPONENT_RANGE = {torch.float32: 20.0, torch.float64: 200.0}


def scan_chunk_sizes(dt: Tensor, A: Tensor, max_chunk: int) -> list[int]:
    """Split T steps into chunks of at most `max_chunk` whose log-decay range stays within `_EXPONENT_RANGE`.

    A chunk's range is the largest Σ dt·|A| over its steps but the first (the first step's decay only enters
    exp(A·Δ_end) <= 1); it is bounded here per step by the largest dt·|A| over batch, channels and states.
    Large step sizes thus only shorten the chunks around them (down to one step) and never overflow.
    dt (batch, T, D), A (D, N) -> chunk lengths summing to T.
    """
    rates = (dt.detach() * A.detach().abs().amax(dim=-1)).amax(dim=(0, 2)).tolist()  # (T,)
    limit = _EXPONENT_RANGE[dt.dtype]
    sizes, length, span = [], 0, 0.0
    for rate in rates:
        if length == max_chunk or (length > 0 and span + rate > limit):
            sizes.append(length)
            length, span = 0, 0.0
        span += rate if length > 0 else 0.0
        length += 1
    return [*sizes, length]


class _ChunkSums(torch.autograd.Function):
    """The (batch, l, D, N) part of one chunk, with a backward that keeps only `shrink` and `sums` of that size.

    forward(shrink, dtx, B, C, carried) with shrink = exp(A·ρ) (batch, l, D, N), dtx = dt·x (batch, l, D),
    B and C (batch, l, N) and carried (batch, D, N) the entering state decayed to the chunk end, returns
    y_t = (sums_t / shrink_t)·C_t (batch, l, D) and the chunk's final state sums_end (batch, D, N), where
    sums_t = carried + Σ_{s<=t} shrink_s·dtx_s·B_s. Autograd would also keep dtx ⊗ B, shrink·dtx and the
    states (three more tensors of that size); the backward recomputes what it needs instead.
    """

    @staticmethod
    def forward(ctx, shrink: Tensor, dtx: Tensor, B: Tensor, C: Tensor, carried: Tensor) -> tuple[Tensor, Tensor]:
        batch, length = dtx.shape[:2]
        causal = torch.ones(length, length, dtype=dtx.dtype, device=dtx.device).tril_()
        weighted = shrink * dtx.unsqueeze(-1) * B.unsqueeze(2)  # (batch, l, D, N)
        # cumulative sum over the chunk as a product with a lower-triangular matrix of ones
        sums = torch.matmul(causal, weighted.view(batch, length, -1)).view_as(weighted)
        sums += carried.unsqueeze(1)
        ctx.save_for_backward(shrink, dtx, B, C, sums, causal)
        y = torch.matmul(sums / shrink, C.unsqueeze(-1)).squeeze(-1)  # (batch, l, D)
        return y, sums[:, -1].clone()  # ρ = 0 at the chunk end: its state is sums_end exactly

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_y: Tensor, grad_final: Tensor) -> tuple[Tensor, ...]:
        shrink, dtx, B, C, sums, causal = ctx.saved_tensors
        batch, length = dtx.shape[:2]
        states = sums / shrink  # (batch, l, D, N)
        grad_c = torch.matmul(grad_y.unsqueeze(-2), states).squeeze(-2)  # (batch, l, N)
        grad_sums = grad_y.unsqueeze(-1) * C.unsqueeze(2)  # first d/d states, then d/d sums
        grad_sums[:, -1] += grad_final
        grad_sums /= shrink
        grad_shrink = states.mul_(grad_sums).neg_()
        grad_weighted = torch.matmul(causal.T, grad_sums.view(batch, length, -1)).view_as(grad_sums)
        grad_shrink.addcmul_(grad_weighted, dtx.unsqueeze(-1) * B.unsqueeze(2))
        grad_drive = grad_weighted.mul_(shrink)  # d/d (dtx ⊗ B)
        grad_dtx = torch.matmul(grad_drive, B.unsqueeze(-1)).squeeze(-1)  # (batch, l, D)
        grad_b = torch.matmul(dtx.unsqueeze(-2), grad_drive).squeeze(-2)  # (batch, l, N)
        return grad_shrink, grad_dtx, grad_b, grad_c, grad_sums.sum(dim=1)


def selective_scan(
    dt: Tensor, A: Tensor, B: Tensor, C: Tensor, x: Tensor, initial_state: Tensor, max_chunk: int = 32
) -> tuple[Tensor, Tensor]:
    """Mamba-1 recurrence h_t = exp(dt_t·A)·h_{t-1} + dt_t·x_t·B_t, y_t = h_t·C_t, evaluated chunk by chunk.

    With Δ_t the step sizes summed from the chunk start and ρ_t = Δ_end − Δ_t >= 0, every state of a chunk is
    h_t = exp(−A·ρ_t) ⊙ (exp(A·Δ_end) ⊙ h_in + Σ_{s<=t} exp(A·ρ_s) ⊙ dt_s·x_s·B_s): one cumulative sum per chunk
    and a loop over chunks only. The chunk lengths (`scan_chunk_sizes`) bound A·ρ, so both exponentials
    stay finite and the result matches the step-by-step recurrence to rounding for any dt and A.

    Args (float32 or float64):
        dt: (batch, T, D) positive step sizes. x: (batch, T, D) inputs.
        A: (D, N) negative decay rates. B, C: (batch, T, N) input and output projections.
        initial_state: (batch, D, N) state before the first step.
        max_chunk: longest chunk; T need not be a multiple.

    Returns:
        y (batch, T, D) without the skip term, and the state after the last step (batch, D, N).
    """
    if max_chunk < 1:
        raise ValueError(f"max_chunk must be positive, got {max_chunk}")
    sizes = scan_chunk_sizes(dt, A, max_chunk)
    state = initial_state
    outputs = []
    # split (not indexing) so the backward concatenates the chunks' gradients instead of scattering each one
    for dt_k, x_k, b_k, c_k in zip(*(t.split(sizes, dim=1) for t in (dt, x, B, C)), strict=True):
        delta = dt_k.cumsum(dim=1)  # (batch, l, D)
        shrink = ((delta[:, -1:] - delta).unsqueeze(-1) * A).exp()  # (batch, l, D, N), exp(A·ρ) in (0, 1]
        carried = (delta[:, -1].unsqueeze(-1) * A).exp() * state  # (batch, D, N)
        y_k, state = _ChunkSums.apply(shrink, dt_k * x_k, b_k, c_k, carried)
        outputs.append(y_k)
    return torch.cat(outputs, dim=1), state


class MambaMixer(nn.Module):
    """Mamba-1 layer with `forward(u, state)` over (B, T, d_model) and `step(u_t, state)`."""

    def __init__(self, cfg: SequenceConfig) -> None:
        super().__init__()
        self.d_inner, self.d_state, self.d_conv = cfg.d_inner, cfg.d_state, cfg.d_conv
        self.dt_rank = math.ceil(cfg.d_model / 16)
        self.in_proj = nn.Linear(cfg.d_model, 2 * self.d_inner, bias=False)
        self.conv1d = nn.Conv1d(self.d_inner, self.d_inner, cfg.d_conv, groups=self.d_inner, bias=True)
        self.x_proj = nn.Linear(self.d_inner, self.dt_rank + 2 * self.d_state, bias=False)
        self.dt_proj = nn.Linear(self.dt_rank, self.d_inner, bias=True)
        nn.init.uniform_(self.dt_proj.weight, -(self.dt_rank**-0.5), self.dt_rank**-0.5)
        dt = torch.exp(torch.empty(self.d_inner).uniform_(math.log(cfg.dt_min), math.log(cfg.dt_max)))
        dt = dt.clamp(min=cfg.dt_init_floor)
        with torch.no_grad():
            self.dt_proj.bias.copy_(dt + torch.log(-torch.expm1(-dt)))  # softplus⁻¹(dt)
        a = torch.arange(1, self.d_state + 1, dtype=torch.float32).repeat(self.d_inner, 1)  # (d_inner, N)
        self.A_log = nn.Parameter(torch.log(a))
        self.D = nn.Parameter(torch.ones(self.d_inner))
        self.out_proj = nn.Linear(self.d_inner, cfg.d_model, bias=False)

    def initial_state(self, batch: int, device: torch.device | str | None = None) -> MambaState:
        dtype = self.in_proj.weight.dtype
        conv = torch.zeros(batch, self.d_inner, self.d_conv, device=device, dtype=dtype)
        ssm = torch.zeros(batch, self.d_inner, self.d_state, device=device, dtype=compute_dtype(dtype))
        return conv, ssm

    def _ssm_inputs(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """x (..., d_inner) -> dt (..., d_inner), B and C (..., N), A (d_inner, N) in the compute dtype."""
        dtype = compute_dtype(x.dtype)
        dt_low, b, c = self.x_proj(x).split([self.dt_rank, self.d_state, self.d_state], dim=-1)
        dt = F.softplus(self.dt_proj(dt_low).to(dtype))
        return dt, b.to(dtype), c.to(dtype), -torch.exp(self.A_log.to(dtype))

    def forward(self, u: Tensor, state: MambaState | None = None) -> tuple[Tensor, MambaState]:
        """u (B, T, d_model) -> y (B, T, d_model) and the state after the last step."""
        conv_state, h = self.initial_state(u.shape[0], u.device) if state is None else state
        x, z = self.in_proj(u).chunk(2, dim=-1)  # (B, T, d_inner) each
        history = torch.cat([conv_state[..., 1:].to(x.dtype), x.transpose(1, 2)], dim=-1)  # (B, d_inner, d_conv-1+T)
        new_conv_state = history[..., -self.d_conv :].to(conv_state.dtype)
        x = F.silu(F.conv1d(history, self.conv1d.weight, self.conv1d.bias, groups=self.d_inner)).transpose(1, 2)
        dt, b, c, A = self._ssm_inputs(x)
        xc = x.to(A.dtype)
        with torch.autocast(device_type=u.device.type, enabled=False):
            y, h = selective_scan(dt, A, b, c, xc, h.to(A.dtype))  # (B, T, d_inner)
        y = y + xc * self.D.to(A.dtype)
        y = y.to(u.dtype) * F.silu(z)
        return self.out_proj(y), (new_conv_state, h)

    def step(self, u: Tensor, state: MambaState) -> tuple[Tensor, MambaState]:
        """u (B, d_model) -> y (B, d_model) and the state after this step."""
        conv_state, h = state
        x, z = self.in_proj(u).chunk(2, dim=-1)  # (B, d_inner) each
        conv_state = torch.cat([conv_state[..., 1:], x.unsqueeze(-1).to(conv_state.dtype)], dim=-1)
        x = F.silu(((conv_state * self.conv1d.weight.squeeze(1)).sum(dim=-1) + self.conv1d.bias).to(u.dtype))
        dt, b, c, A = self._ssm_inputs(x)
        xc = x.to(A.dtype)
        h = (dt.unsqueeze(-1) * A).exp_() * h.to(A.dtype)  # (B, d_inner, N), one fresh tensor updated in place
        h.addcmul_((dt * xc).unsqueeze(-1), b.unsqueeze(1))
        y = torch.bmm(h, c.unsqueeze(-1)).squeeze(-1) + xc * self.D.to(A.dtype)  # (B, d_inner)
        y = y.to(u.dtype) * F.silu(z)
        return self.out_proj(y), (conv_state, h)

"""The Mamba-2 mixer (docs/algorithm.md §World model), parameter names and shapes as `mamba_ssm.modules.mamba2.Mamba2`.

in_proj maps u (d_model) to [z (d_inner) ; xBC (d_inner + 2·G·N) ; dt (H)]; a depthwise causal conv + SiLU
runs over xBC; the SSD scan mixes x over time; y + D·x is gated by SiLU(z), RMS-normalised and projected
back. State per layer: (conv_state (batch, d_inner + 2·G·N, d_conv), ssm_state (batch, H, headdim, N)).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from drama_agent.config import SequenceConfig
from drama_agent.sequence import fast
from drama_agent.sequence.ssd import compute_dtype, ssd_chunked, ssd_step

Mamba2State = tuple[Tensor, Tensor]


class GatedRMSNorm(nn.Module):
    """RMSNorm(y ⊙ SiLU(z)) · weight, normalised over groups of `group_size` channels (mamba_ssm's RMSNormGated)."""

    def __init__(self, dim: int, group_size: int, eps: float) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.group_size = group_size
        self.eps = eps

    def forward(self, y: Tensor, z: Tensor) -> Tensor:
        dtype = compute_dtype(y.dtype)
        gated = (y.to(dtype) * F.silu(z.to(dtype))).unflatten(-1, (-1, self.group_size))  # (..., G, d/G)
        normed = gated * torch.rsqrt(gated.pow(2).mean(dim=-1, keepdim=True) + self.eps)
        return (normed.flatten(-2) * self.weight).to(y.dtype)


class Mamba2Mixer(nn.Module):
    """Mamba-2 layer: `forward(u, state)` over (B, T, d_model) with the chunked SSD, `step` with the recurrence."""

    def __init__(self, cfg: SequenceConfig) -> None:
        super().__init__()
        if cfg.d_inner % cfg.headdim:
            raise ValueError(f"d_inner {cfg.d_inner} is not a multiple of headdim {cfg.headdim}")
        if cfg.nheads % cfg.ngroups:
            raise ValueError(f"nheads {cfg.nheads} is not a multiple of ngroups {cfg.ngroups}")
        self.cfg = cfg
        self.d_inner, self.nheads, self.headdim = cfg.d_inner, cfg.nheads, cfg.headdim
        self.ngroups, self.d_state, self.d_conv = cfg.ngroups, cfg.d_state, cfg.d_conv
        self.conv_dim = self.d_inner + 2 * self.ngroups * self.d_state
        self.in_proj = nn.Linear(cfg.d_model, self.d_inner + self.conv_dim + self.nheads, bias=False)
        self.conv1d = nn.Conv1d(self.conv_dim, self.conv_dim, cfg.d_conv, groups=self.conv_dim, bias=True)
        dt = torch.exp(torch.empty(self.nheads).uniform_(math.log(cfg.dt_min), math.log(cfg.dt_max)))
        dt = dt.clamp(min=cfg.dt_init_floor)
        self.dt_bias = nn.Parameter(dt + torch.log(-torch.expm1(-dt)))  # softplus⁻¹(dt)
        self.A_log = nn.Parameter(torch.log(torch.empty(self.nheads).uniform_(cfg.a_init_min, cfg.a_init_max)))
        self.D = nn.Parameter(torch.ones(self.nheads))
        self.norm = GatedRMSNorm(self.d_inner, self.d_inner // self.ngroups, eps=1e-5)
        self.out_proj = nn.Linear(self.d_inner, cfg.d_model, bias=False)

    def initial_state(self, batch: int, device: torch.device | str | None = None) -> Mamba2State:
        """Zero conv and SSM states."""
        dtype = self.in_proj.weight.dtype
        conv = torch.zeros(batch, self.conv_dim, self.d_conv, device=device, dtype=dtype)
        ssm = torch.zeros(batch, self.nheads, self.headdim, self.d_state, device=device, dtype=compute_dtype(dtype))
        return conv, ssm

    def _split(self, zxbcdt: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        return zxbcdt.split([self.d_inner, self.conv_dim, self.nheads], dim=-1)

    def _split_xbc(self, xbc: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        x, b, c = xbc.split([self.d_inner, self.ngroups * self.d_state, self.ngroups * self.d_state], dim=-1)
        return (
            x.unflatten(-1, (self.nheads, self.headdim)),
            b.unflatten(-1, (self.ngroups, self.d_state)),
            c.unflatten(-1, (self.ngroups, self.d_state)),
        )

    def forward(self, u: Tensor, state: Mamba2State | None = None) -> tuple[Tensor, Mamba2State]:
        """u (B, T, d_model) -> y (B, T, d_model) and the state after the last step."""
        batch, length, _ = u.shape
        conv_state, ssm_state = self.initial_state(batch, u.device) if state is None else state
        z, xbc, dt = self._split(self.in_proj(u))  # (B, T, d_inner), (B, T, conv_dim), (B, T, H)
        # causal depthwise conv, continued from the last d_conv - 1 inputs of the previous call
        history = torch.cat([conv_state[..., 1:].to(xbc.dtype), xbc.transpose(1, 2)], dim=-1)  # (B, conv, d_conv-1+T)
        new_conv_state = history[..., -self.d_conv :].to(conv_state.dtype)
        xbc = F.silu(F.conv1d(history, self.conv1d.weight, self.conv1d.bias, groups=self.conv_dim)).transpose(1, 2)
        x, b, c = self._split_xbc(xbc)  # (B, T, H, P), (B, T, G, N), (B, T, G, N)
        A = -torch.exp(self.A_log.to(compute_dtype(u.dtype)))  # (H,)
        if fast.use_fast_path(u):
            y, new_ssm_state = fast.chunk_scan(x, dt, A, b, c, self.D, self.dt_bias, self.cfg.chunk_size, ssm_state)
        else:
            dt = F.softplus(dt.to(A.dtype) + self.dt_bias.to(A.dtype))  # (B, T, H)
            y, new_ssm_state = ssd_chunked(x, dt, A, b, c, self.cfg.chunk_size, ssm_state)
            y = y + x.to(y.dtype) * self.D.to(y.dtype)[:, None]
        y = self.norm(y.flatten(-2).to(u.dtype), z)  # (B, T, d_inner)
        return self.out_proj(y), (new_conv_state, new_ssm_state)

    def step(self, u: Tensor, state: Mamba2State) -> tuple[Tensor, Mamba2State]:
        """u (B, d_model) -> y (B, d_model) and the state after this step."""
        conv_state, ssm_state = state
        z, xbc, dt = self._split(self.in_proj(u))  # (B, d_inner), (B, conv_dim), (B, H)
        conv_state = torch.cat([conv_state[..., 1:], xbc.unsqueeze(-1).to(conv_state.dtype)], dim=-1)
        xbc = (conv_state * self.conv1d.weight.squeeze(1)).sum(dim=-1) + self.conv1d.bias  # (B, conv_dim)
        x, b, c = self._split_xbc(F.silu(xbc.to(u.dtype)))  # (B, H, P), (B, G, N), (B, G, N)
        A = -torch.exp(self.A_log.to(compute_dtype(u.dtype)))
        if fast.use_fast_path(u) and not torch.is_grad_enabled():  # the Triton update has no backward
            y, ssm_state = fast.state_update(ssm_state, x, dt, A, b, c, self.D, self.dt_bias)
        else:
            dt = F.softplus(dt.to(A.dtype) + self.dt_bias.to(A.dtype))  # (B, H)
            y, ssm_state = ssd_step(ssm_state, x, dt, A, b, c)
            y = y + x.to(y.dtype) * self.D.to(y.dtype)[:, None]
        y = self.norm(y.flatten(-2).to(u.dtype), z)  # (B, d_inner)
        return self.out_proj(y), (conv_state, ssm_state)

"""Mamba-1 mixer (selective scan) for the paper's ablation, parameter names as `mamba_ssm.Mamba`.

in_proj maps u to [x ; z] (d_inner each); a depthwise causal conv + SiLU runs over x; x_proj gives
(dt_rank, B, C); dt = softplus(dt_proj(dt_low)); per channel and state h_t = exp(dt·A)·h_{t-1} + dt·B_t·x_t,
y_t = h_t·C_t + D·x_t, gated by SiLU(z). The scan is sequential in pure PyTorch.
State per layer: (conv_state (B, d_inner, d_conv), ssm_state (B, d_inner, N)).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from drama_agent.config import SequenceConfig
from drama_agent.sequence.ssd import compute_dtype

MambaState = tuple[Tensor, Tensor]


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
        decay = torch.exp(dt.unsqueeze(-1) * A)  # (B, T, d_inner, N)
        drive = (dt * xc).unsqueeze(-1) * b.unsqueeze(2)  # (B, T, d_inner, N)
        h = h.to(A.dtype)
        ys = []
        for decay_t, drive_t, c_t in zip(decay.unbind(1), drive.unbind(1), c.unbind(1), strict=True):
            h = decay_t * h + drive_t  # (B, d_inner, N)
            ys.append(torch.einsum("bdn,bn->bd", h, c_t))
        y = torch.stack(ys, dim=1) + xc * self.D.to(A.dtype)  # (B, T, d_inner)
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

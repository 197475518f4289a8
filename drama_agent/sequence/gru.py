"""GRU mixer for the paper's ablation: one `nn.GRU` layer of width d_model; state (h (B, D),)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from drama_agent.config import SequenceConfig


class GRUMixer(nn.Module):
    """Single-layer GRU; `step` runs the same weights for one step (the GRUCell update)."""

    def __init__(self, cfg: SequenceConfig) -> None:
        super().__init__()
        self.d_model = cfg.d_model
        self.gru = nn.GRU(cfg.d_model, cfg.d_model, batch_first=True)

    def initial_state(self, batch: int, device: torch.device | str | None = None) -> tuple[Tensor]:
        return (torch.zeros(batch, self.d_model, device=device, dtype=self.gru.weight_hh_l0.dtype),)

    def forward(self, u: Tensor, state: tuple[Tensor] | None = None) -> tuple[Tensor, tuple[Tensor]]:
        """u (B, T, D) -> y (B, T, D), (h_T,)."""
        h = self.initial_state(u.shape[0], u.device)[0] if state is None else state[0]
        y, h_last = self.gru(u, h.unsqueeze(0).to(u.dtype))  # h: (1, B, D)
        return y, (h_last.squeeze(0),)

    def step(self, u: Tensor, state: tuple[Tensor]) -> tuple[Tensor, tuple[Tensor]]:
        """u (B, D) -> y (B, D) = h_t, (h_t,)."""
        w_ih, w_hh, b_ih, b_hh = self.gru.weight_ih_l0, self.gru.weight_hh_l0, self.gru.bias_ih_l0, self.gru.bias_hh_l0
        h = torch.gru_cell(u, state[0].to(u.dtype), w_ih, w_hh, b_ih, b_hh)
        return h, (h,)

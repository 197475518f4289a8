"""Token model for the grid world: embedding → backbone stack → linear classifier over the token vocabulary."""

from __future__ import annotations

import dataclasses

from torch import Tensor, nn

from drama_agent.checks import count_parameters
from drama_agent.config import Backbone, SequenceConfig
from drama_agent.sequence import build_backbone
from gridworld_task.env import VOCAB_SIZE

BACKBONES: tuple[Backbone, ...] = ("mamba2", "mamba", "gru", "transformer")


class GridTokenModel(nn.Module):
    """Next-token model: `forward(tokens (B, T)) -> logits (B, T, VOCAB_SIZE)`.

    The backbone is `drama_agent.sequence.build_backbone(cfg)` (pre-norm residual blocks of the chosen
    mixer and a final RMSNorm), causal, so the logits at position i depend on tokens[:, : i + 1] only.
    """

    def __init__(self, cfg: SequenceConfig, vocab_size: int = VOCAB_SIZE) -> None:
        super().__init__()
        self.cfg = cfg
        self.embed = nn.Embedding(vocab_size, cfg.d_model)
        self.backbone = build_backbone(cfg)
        self.head = nn.Linear(cfg.d_model, vocab_size)

    def forward(self, tokens: Tensor) -> Tensor:
        x = self.embed(tokens)  # (B, T, D)
        y, _ = self.backbone(x)  # (B, T, D)
        return self.head(y)  # (B, T, V)


def _params_at(cfg: SequenceConfig, d_model: int) -> int:
    return count_parameters(GridTokenModel(dataclasses.replace(cfg, d_model=d_model)))


def matched_configs(
    base: SequenceConfig, backbones: tuple[Backbone, ...] = BACKBONES
) -> dict[Backbone, SequenceConfig]:
    """One config per backbone with parameter counts matched to Mamba-2 at `base.d_model`.

    Mamba-2 keeps `base` as is; every other backbone gets the d_model on its width grid (multiples
    of 2 · n_heads for the transformer (even head size), of 2 otherwise, up to 4 × base.d_model) whose `GridTokenModel`
    parameter count is closest to Mamba-2's, found by bisection (the count grows with the width).
    All other fields (n_layers, expand, d_state, n_heads, ...) are taken from `base`.
    """
    reference = _params_at(dataclasses.replace(base, backbone="mamba2"), base.d_model)
    configs: dict[Backbone, SequenceConfig] = {}
    for name in backbones:
        cfg = dataclasses.replace(base, backbone=name)
        if name != "mamba2":
            step = 2 * cfg.n_heads if name == "transformer" else 2
            lo, hi = 1, 4 * base.d_model // step  # widths lo * step .. hi * step
            while lo < hi:  # smallest multiple whose count reaches the reference
                mid = (lo + hi) // 2
                lo, hi = (mid + 1, hi) if _params_at(cfg, mid * step) < reference else (lo, mid)
            candidates = [d * step for d in (lo - 1, lo) if d >= 1]
            best = min(candidates, key=lambda d: abs(_params_at(cfg, d) - reference))
            cfg = dataclasses.replace(cfg, d_model=best)
        configs[name] = cfg
    return configs

"""The sequence model: stem over [z ; onehot(a)], pre-norm residual stack of mixers, final RMSNorm.

See docs/algorithm.md §World model.

Every mixer (mamba2, mamba, gru, transformer) has `forward(u, state) -> (y, state)` over (B, T, D),
`step(u_t, state) -> (y_t, state)` over (B, D) and `initial_state(batch, device)`; its state is a tuple of
tensors with the batch first. The stack's state is a list with one such tuple per layer. States are values
passed in and returned; nothing is kept on the modules.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from drama_agent.config import DramaConfig, SequenceConfig
from drama_agent.precision import RMSNorm
from drama_agent.sequence.gru import GRUMixer
from drama_agent.sequence.mamba import MambaMixer
from drama_agent.sequence.mamba2 import Mamba2Mixer
from drama_agent.sequence.transformer import TransformerMixer

LayerState = tuple[Tensor, ...]
State = list[LayerState]

MIXERS: dict[str, Callable[[SequenceConfig], nn.Module]] = {
    "mamba2": Mamba2Mixer,
    "mamba": MambaMixer,
    "gru": GRUMixer,
    "transformer": TransformerMixer,
}
RESCALED_MIXERS = ("mamba2", "mamba")
"""Backbones whose `out_proj.weight` mamba_ssm's init divides by sqrt(n_layers) (`SequenceConfig.mamba_ssm_init`)."""


def state_index(state: State, index: Tensor | slice | list[int]) -> State:
    """Select (or repeat) batch rows of every tensor in a state, e.g. `state_index(s, torch.tensor([0, 0, 2]))`."""
    return [tuple(t[index] for t in layer) for layer in state]


def _residual_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.promote_types(dtype, torch.float32)


class ResidualStack(nn.Module):
    """`n_layers` blocks r <- r + mixer(RMSNorm(r)) with the residual kept in (at least) fp32, then RMSNorm.

    Both norms use `cfg.norm_eps`. With `cfg.mamba_ssm_init` a Mamba mixer's `out_proj.weight` starts at its
    default init divided by sqrt(n_layers), as mamba_ssm's model init leaves it.
    """

    def __init__(self, cfg: SequenceConfig) -> None:
        super().__init__()
        if cfg.backbone not in MIXERS:
            raise ValueError(f"unknown backbone {cfg.backbone!r}; choose one of {sorted(MIXERS)}")
        self.cfg = cfg
        self.norms = nn.ModuleList(RMSNorm(cfg.d_model, eps=cfg.norm_eps) for _ in range(cfg.n_layers))
        self.mixers = nn.ModuleList(MIXERS[cfg.backbone](cfg) for _ in range(cfg.n_layers))
        self.norm_f = RMSNorm(cfg.d_model, eps=cfg.norm_eps)
        if cfg.mamba_ssm_init and cfg.backbone in RESCALED_MIXERS:
            with torch.no_grad():  # GPT-2's residual rescaling: one residual branch per block
                for mixer in self.mixers:
                    mixer.out_proj.weight.div_(math.sqrt(cfg.n_layers))

    def initial_state(self, batch: int, device: torch.device | str | None = None) -> State:
        """Zero state (empty KV caches for the transformer) for `batch` sequences."""
        return [mixer.initial_state(batch, device) for mixer in self.mixers]

    def _check_state(self, state: State, batch: int) -> None:
        if not isinstance(state, (list, tuple)) or len(state) != len(self.mixers):
            raise ValueError(f"state must be a list of {len(self.mixers)} per-layer tuples")
        for i, layer in enumerate(state):
            for t in layer:
                if t.shape[0] != batch:
                    raise ValueError(f"state of layer {i} has batch size {t.shape[0]}, the input has {batch}")

    def forward(self, x: Tensor, state: State | None = None) -> tuple[Tensor, State]:
        """x (B, T, D) -> y (B, T, D) in the residual dtype, and the state after the last step."""
        if x.dim() != 3 or x.shape[-1] != self.cfg.d_model:
            raise ValueError(f"input must have shape (B, T, {self.cfg.d_model}), got {tuple(x.shape)}")
        if x.shape[1] < 1:
            raise ValueError("input sequence must have at least one step")
        if state is None:
            state = self.initial_state(x.shape[0], x.device)
        self._check_state(state, x.shape[0])
        residual = x.to(_residual_dtype(x.dtype))
        new_state = []
        for norm, mixer, layer_state in zip(self.norms, self.mixers, state, strict=True):
            out, layer_state = mixer(norm(residual).to(x.dtype), layer_state)
            residual = residual + out.to(residual.dtype)
            new_state.append(layer_state)
        return self.norm_f(residual), new_state

    def step(self, x: Tensor, state: State) -> tuple[Tensor, State]:
        """x (B, D) -> y (B, D) and the state after this step."""
        if x.dim() != 2 or x.shape[-1] != self.cfg.d_model:
            raise ValueError(f"input must have shape (B, {self.cfg.d_model}), got {tuple(x.shape)}")
        self._check_state(state, x.shape[0])
        residual = x.to(_residual_dtype(x.dtype))
        new_state = []
        for norm, mixer, layer_state in zip(self.norms, self.mixers, state, strict=True):
            out, layer_state = mixer.step(norm(residual).to(x.dtype), layer_state)
            residual = residual + out.to(residual.dtype)
            new_state.append(layer_state)
        return self.norm_f(residual), new_state


class SequenceModel(nn.Module):
    """d_t from (z_t, a_t): SiLU(RMSNorm(Linear([z ; onehot(a)]))) -> residual stack.

    See docs/algorithm.md §World model. The stem's RMSNorm uses `cfg.stem_norm_eps`; with
    `cfg.mamba_ssm_init` the stem Linear's bias starts at 0.
    """

    def __init__(self, cfg: SequenceConfig, latent_dim: int, num_actions: int) -> None:
        super().__init__()
        if num_actions < 1:
            raise ValueError(f"num_actions must be positive, got {num_actions}")
        self.latent_dim, self.num_actions = latent_dim, num_actions
        self.stem = nn.Linear(latent_dim + num_actions, cfg.d_model)
        if cfg.mamba_ssm_init:
            nn.init.zeros_(self.stem.bias)
        self.stem_norm = RMSNorm(cfg.d_model, eps=cfg.stem_norm_eps)
        self.backbone = ResidualStack(cfg)

    @property
    def d_model(self) -> int:
        return self.backbone.cfg.d_model

    def initial_state(self, batch: int, device: torch.device | str | None = None) -> State:
        """Zero state for `batch` sequences."""
        return self.backbone.initial_state(batch, device)

    def _embed(self, z: Tensor, a: Tensor) -> Tensor:
        if z.shape[-1] != self.latent_dim:
            raise ValueError(f"z has feature size {z.shape[-1]}, the model expects {self.latent_dim}")
        if a.shape != z.shape[:-1]:
            raise ValueError(f"actions have shape {tuple(a.shape)}, expected {tuple(z.shape[:-1])} to match z")
        if a.dtype.is_floating_point or a.dtype == torch.bool:
            raise ValueError(f"actions must be integer indices, got dtype {a.dtype}")
        # checked on the CPU only: on a GPU reading a.min() would wait for the device at every imagined step,
        # and one_hot's own device-side assert stops an out-of-range action there
        if a.numel() and a.device.type == "cpu" and (int(a.min()) < 0 or int(a.max()) >= self.num_actions):
            raise ValueError(f"action out of range [0, {self.num_actions}): min {int(a.min())}, max {int(a.max())}")
        za = torch.cat([z, F.one_hot(a.long(), self.num_actions).to(z.dtype)], dim=-1)  # (..., Z + A)
        h = self.stem(za)  # (..., D)
        return F.silu(self.stem_norm(h.to(_residual_dtype(h.dtype))))

    def forward(self, z: Tensor, a: Tensor, state: State | None = None) -> tuple[Tensor, State]:
        """z (B, T, Z) float, a (B, T) int -> d (B, T, D) and the state after the last step."""
        if z.dim() != 3:
            raise ValueError(f"z must have shape (B, T, {self.latent_dim}), got {tuple(z.shape)}")
        return self.backbone(self._embed(z, a), state)

    def step(self, z: Tensor, a: Tensor, state: State) -> tuple[Tensor, State]:
        """z (B, Z), a (B,) -> d (B, D) and the state after this step."""
        if z.dim() != 2:
            raise ValueError(f"z must have shape (B, {self.latent_dim}), got {tuple(z.shape)}")
        return self.backbone.step(self._embed(z, a), state)


def build_backbone(cfg: SequenceConfig) -> ResidualStack:
    """The residual stack alone (blocks + final RMSNorm), for token models such as the grid-world test."""
    return ResidualStack(cfg)


def build_sequence_model(cfg: DramaConfig, num_actions: int) -> SequenceModel:
    """The world model's sequence model for `num_actions` discrete actions."""
    return SequenceModel(cfg.sequence, cfg.world_model.latent_dim, num_actions)

"""Transformer mixer for the paper's ablation: causal multi-head attention with RoPE, then an MLP.

Given the normalised residual u, the mixer returns a + MLP(RMSNorm(u + a)) with a = Attention(u), so a
block of the residual stack is a standard pre-norm attention + MLP layer. Rotary position embeddings
are applied at absolute positions, so `step` continues from a KV cache: the state is
(keys (B, heads, L, head_dim), values (B, heads, L, head_dim)) with L the steps seen so far (at most max_len).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from drama_agent.config import SequenceConfig
from drama_agent.precision import RMSNorm

KVCache = tuple[Tensor, Tensor]


def rotate(x: Tensor, start: int, base: float = 10_000.0) -> Tensor:
    """Rotary embedding of x (B, heads, T, head_dim) at positions start .. start + T - 1."""
    half = x.shape[-1] // 2
    dtype = torch.float64 if x.dtype == torch.float64 else torch.float32
    inv_freq = base ** (-torch.arange(half, device=x.device, dtype=dtype) / half)  # (half,)
    positions = torch.arange(start, start + x.shape[-2], device=x.device, dtype=dtype)
    angles = positions[:, None] * inv_freq  # (T, half)
    cos, sin = angles.cos().to(x.dtype), angles.sin().to(x.dtype)
    x1, x2 = x[..., :half], x[..., half:]
    return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)


class TransformerMixer(nn.Module):
    """Causal self-attention (RoPE, KV cache) followed by an MLP of width expand · d_model."""

    def __init__(self, cfg: SequenceConfig) -> None:
        super().__init__()
        if cfg.d_model % cfg.n_heads or (cfg.d_model // cfg.n_heads) % 2:
            raise ValueError(f"d_model {cfg.d_model} must split into {cfg.n_heads} heads of even size")
        self.n_heads, self.head_dim, self.max_len = cfg.n_heads, cfg.d_model // cfg.n_heads, cfg.max_len
        self.qkv = nn.Linear(cfg.d_model, 3 * cfg.d_model, bias=False)
        self.out_proj = nn.Linear(cfg.d_model, cfg.d_model, bias=False)
        self.mlp_norm = RMSNorm(cfg.d_model, eps=cfg.norm_eps)
        self.mlp_in = nn.Linear(cfg.d_model, cfg.expand * cfg.d_model, bias=False)
        self.mlp_out = nn.Linear(cfg.expand * cfg.d_model, cfg.d_model, bias=False)

    def initial_state(self, batch: int, device: torch.device | str | None = None) -> KVCache:
        """Empty KV cache (length 0)."""
        empty = torch.zeros(batch, self.n_heads, 0, self.head_dim, device=device, dtype=self.qkv.weight.dtype)
        return empty, empty.clone()

    def forward(self, u: Tensor, state: KVCache | None = None) -> tuple[Tensor, KVCache]:
        """u (B, T, D) -> y (B, T, D) and the cache extended by T steps."""
        batch, length, width = u.shape
        k_cache, v_cache = self.initial_state(batch, u.device) if state is None else state
        start = k_cache.shape[2]
        if start + length > self.max_len:
            raise ValueError(f"sequence of {start + length} steps exceeds the transformer's max_len {self.max_len}")
        q, k, v = self.qkv(u).view(batch, length, 3, self.n_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k = rotate(q, start), rotate(k, start)  # (B, heads, T, head_dim)
        k = torch.cat([k_cache.to(k.dtype), k], dim=2)  # (B, heads, start + T, head_dim)
        v = torch.cat([v_cache.to(v.dtype), v], dim=2)
        mask = None
        if length > 1:  # query i (position start + i) sees keys 0 .. start + i
            mask = torch.ones(length, start + length, dtype=torch.bool, device=u.device).tril(diagonal=start)
        attn = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)  # (B, heads, T, head_dim)
        a = self.out_proj(attn.transpose(1, 2).reshape(batch, length, width))
        y = a + self.mlp_out(F.silu(self.mlp_in(self.mlp_norm(u + a))))
        return y, (k, v)

    def step(self, u: Tensor, state: KVCache) -> tuple[Tensor, KVCache]:
        """u (B, D) -> y (B, D) and the cache extended by one step."""
        y, state = self.forward(u.unsqueeze(1), state)
        return y.squeeze(1), state

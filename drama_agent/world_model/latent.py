"""The K×C categorical latent: unimix, straight-through one-hot samples, KL and entropy.

See docs/algorithm.md §World model.

Convention: every "logits" tensor of shape (..., K, C) handed around by the world model holds the
normalised log-probabilities of the *unimix* distribution, so `logits.exp()` sums to 1 over C and
each class has probability ≥ u / C.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def unimix_logits(raw: Tensor, unimix: float) -> Tensor:
    """(..., C) raw logits -> (..., C) log of (1 − u)·softmax(raw) + u/C, computed in float32."""
    log_probs = F.log_softmax(raw.float(), dim=-1)
    if unimix == 0.0:
        return log_probs
    probs = (1.0 - unimix) * log_probs.exp() + unimix / raw.shape[-1]
    return probs.log()


def sample_one_hot(logits: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Draw one class per categorical; (..., K, C) logits -> (..., K, C) float one-hots.

    The value is an exact one-hot; the gradient is that of the probabilities (straight-through:
    onehot + p − sg(p)). Sampling uses the exponential race argmax_c p_c / E_c, E_c ~ Exp(1), which
    draws c with probability p_c; `generator` (on the logits' device) makes it reproducible.
    """
    probs = logits.float().softmax(-1)
    race = torch.empty_like(probs).exponential_(generator=generator)
    index = (probs.detach() / race).argmax(-1)
    one_hot = F.one_hot(index, probs.shape[-1]).to(probs.dtype)
    return one_hot + (probs - probs.detach())  # p − sg(p) is exactly 0, so the values stay exact one-hots


def categorical_kl(p_logits: Tensor, q_logits: Tensor) -> Tensor:
    """KL(p ‖ q) summed over the K categoricals: (..., K, C), (..., K, C) -> (...)."""
    log_p = F.log_softmax(p_logits.float(), -1)
    log_q = F.log_softmax(q_logits.float(), -1)
    return (log_p.exp() * (log_p - log_q)).sum((-2, -1))


def categorical_entropy(logits: Tensor) -> Tensor:
    """Entropy summed over the K categoricals: (..., K, C) -> (...)."""
    log_p = F.log_softmax(logits.float(), -1)
    return -(log_p.exp() * log_p).sum((-2, -1))

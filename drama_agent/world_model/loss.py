"""The world-model loss as a pure function (docs/algorithm.md §World model)."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from drama_agent.config import WorldModelConfig
from drama_agent.distributions import SymlogTwoHot
from drama_agent.world_model.latent import categorical_entropy, categorical_kl


def world_model_loss(
    cfg: WorldModelConfig,
    two_hot: SymlogTwoHot,
    frames: Tensor,
    frames_hat: Tensor,
    post_logits: Tensor,
    prior_logits: Tensor,
    reward_logits: Tensor,
    rewards: Tensor,
    termination_logits: Tensor,
    terminations: Tensor,
) -> tuple[Tensor, dict[str, Tensor]]:
    """Total loss and detached metrics.

    Shapes: frames / frames_hat (B, T, 3, S, S) in [0, 1]; post_logits / prior_logits (B, T, K, C);
    reward_logits (B, T, bins); rewards, termination_logits, terminations (B, T).

    Alignment: index t of reward_logits / termination_logits is read from d_t, the sequence output after
    (z_t, a_t), and is trained on r_t / e_t, the reward and termination flag of that same transition
    (the authors' `update`). prior_logits[:, t] predicts post_logits[:, t + 1].

    recon = Σ_CHW (ô − o)², averaged over (B, T); reward = symlog two-hot CE; termination = BCE;
    dyn = max(free_bits, mean KL(sg(post_{t+1}) ‖ prior_t)); rep = max(free_bits, mean KL(post_{t+1} ‖ sg(prior_t)))
    with the KL summed over the K categoricals and averaged over (B, T − 1) before the free-bits clip;
    total = recon + reward + termination + dyn_scale · dyn + rep_scale · rep.
    """
    recon = (frames_hat.float() - frames.float()).square().sum((-3, -2, -1)).mean()
    reward = two_hot.loss(reward_logits, rewards).mean()
    termination = F.binary_cross_entropy_with_logits(termination_logits.float(), terminations.float())
    post_next, prior_now = post_logits[:, 1:], prior_logits[:, :-1]  # (B, T − 1, K, C)
    dyn_kl = categorical_kl(post_next.detach(), prior_now).mean()
    rep_kl = categorical_kl(post_next, prior_now.detach()).mean()
    dyn = dyn_kl.clamp(min=cfg.free_bits)
    rep = rep_kl.clamp(min=cfg.free_bits)
    total = recon + reward + termination + cfg.dyn_scale * dyn + cfg.rep_scale * rep
    metrics = {
        "loss": total,
        "recon": recon,
        "reward": reward,
        "termination": termination,
        "dyn": dyn,
        "rep": rep,
        "kl": dyn_kl,
        "post_entropy": categorical_entropy(post_logits).mean(),
        "prior_entropy": categorical_entropy(prior_logits).mean(),
    }
    return total, {name: value.detach() for name, value in metrics.items()}

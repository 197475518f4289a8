"""Actor-critic loss on an imagined rollout (docs/algorithm.md §Behaviour policy)."""

from __future__ import annotations

import torch
from torch import Tensor
from torch.distributions import Categorical

from drama_agent.behavior.actor_critic import ActorCritic
from drama_agent.behavior.returns import lambda_returns
from drama_agent.config import ActorCriticConfig


def actor_critic_loss(
    model: ActorCritic,
    features: Tensor,
    actions: Tensor,
    rewards: Tensor,
    continues: Tensor,
    cfg: ActorCriticConfig,
) -> tuple[Tensor, dict[str, Tensor]]:
    """Policy-gradient, value and slow-value losses of one imagined batch; returns (loss, metrics).

    The trajectory contract (B rollouts of H imagined steps):

    * features (B, H+1, F): [ẑ ; d] of the states s_0..s_H;
    * actions (B, H) int64: a_k, the action taken in s_k;
    * rewards (B, H): r_k, the imagined reward credited to the transition s_k → s_{k+1};
    * continues (B, H): 1 − hard termination of that transition (a termination logit > 0 gives 0).

    Which world-model output is r_k (read before or after a_k, docs/algorithm.md §Departures 1) is the
    imagination's choice.

    loss = −mean(log π(a_k|s_k)·sg(A_k)) + CE(V(s_k), sg(G_k)) + CE(V(s_k), sg(G^slow_k)) − η·mean(H[π(·|s_k)])
    with G the λ-returns bootstrapped from the critic, G^slow those bootstrapped from the slow critic,
    A_k = (G_k − V(s_k)) / max(1, S) and S the return scale.

    Side effects: updates the return normaliser's EMAs and, when the actor is in training mode,
    its input statistics (with all H+1 states, as the authors' code does).
    """
    batch, steps, _ = features.shape
    horizon = steps - 1
    if actions.shape != (batch, horizon) or rewards.shape != (batch, horizon) or continues.shape != (batch, horizon):
        raise ValueError(
            f"features {tuple(features.shape)} need actions/rewards/continues of shape {(batch, horizon)}; got "
            f"{tuple(actions.shape)}, {tuple(rewards.shape)}, {tuple(continues.shape)}"
        )
    logits = model.actor(features)  # (B, H+1, A)
    policy = Categorical(logits=logits[:, :-1].float())  # over s_0..s_{H-1}
    log_prob = policy.log_prob(actions)  # (B, H)
    entropy = policy.entropy().mean()

    value_logits = model.critic(features)  # (B, H+1, bins)
    values = model.critic.two_hot.mean(value_logits).detach()  # (B, H+1)
    with torch.no_grad():
        slow_values = model.slow_critic.value(features)  # (B, H+1)

    rewards, continues = rewards.float(), continues.float()
    ret_args = (cfg.gamma, cfg.lambda_, cfg.bootstrap_from_current)
    returns = lambda_returns(rewards, values, continues, *ret_args)  # (B, H)
    slow_returns = lambda_returns(rewards, slow_values, continues, *ret_args)  # (B, H)

    value_loss = model.critic.two_hot.loss(value_logits[:, :-1], returns).mean()
    slow_value_loss = model.critic.two_hot.loss(value_logits[:, :-1], slow_returns).mean()

    norm = model.return_norm.update(returns)
    advantages = (returns - values[:, :-1]) / norm  # (B, H)
    policy_loss = -(log_prob * advantages).mean()

    loss = policy_loss + value_loss + slow_value_loss - cfg.entropy_coef * entropy
    metrics = {
        "policy_loss": policy_loss.detach(),
        "value_loss": value_loss.detach(),
        "slow_value_loss": slow_value_loss.detach(),
        "entropy": entropy.detach(),
        "return_scale": model.return_norm.scale.clone(),
        "return_norm": norm,
        "return_mean": returns.mean(),
        "value_mean": values.mean(),
        "advantage_abs_mean": advantages.abs().mean(),
        "loss": loss.detach(),
    }
    return loss, metrics

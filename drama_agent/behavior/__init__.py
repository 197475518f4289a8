"""Behaviour policy learned in imagination: actor, critic, normalisers, λ-returns and loss.

See docs/algorithm.md §Behaviour policy.
"""

from drama_agent.behavior.actor_critic import Actor, ActorCritic, Critic, build_actor_critic
from drama_agent.behavior.loss import actor_critic_loss
from drama_agent.behavior.normalizers import ReturnNormalizer, RunningMeanStd, percentile
from drama_agent.behavior.returns import lambda_returns

__all__ = [
    "Actor",
    "ActorCritic",
    "Critic",
    "ReturnNormalizer",
    "RunningMeanStd",
    "actor_critic_loss",
    "build_actor_critic",
    "lambda_returns",
    "percentile",
]

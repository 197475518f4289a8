"""LaProp, the linear learning-rate warm-up and gradient-norm clipping (docs/algorithm.md §Training loop and acting).

LaProp (Ziyin et al. 2020) normalises the gradient by the second moment *before* the momentum:

    v ← β2·v + (1 − β2)·g²
    m ← β1·m + (1 − β1)·lr·g / (sqrt(v / c2) + eps)
    p ← p − m / c1 (− weight_decay·p)

with c2 = 1 − β2^t and c1 = ℓ_t / lr, where ℓ_t ← β1·ℓ_{t−1} + (1 − β1)·lr is an EMA of the
learning rate (ℓ_0 = 0). With a constant lr, c1 = 1 − β1^t (Adam's bias correction); under a
changing lr (warm-up) the momentum stays a correctly weighted average of lr-scaled steps. This is the
update of the authors' implementation; its weight decay is decoupled and not scaled by lr.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import Tensor
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR

from drama_agent.config import TrainConfig


class LaProp(Optimizer):
    """LaProp with the authors' lr-aware bias correction; `foreach` vectorises over parameters."""

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict[str, Any]],
        lr: float = 4e-5,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-20,
        weight_decay: float = 0.0,
        foreach: bool = True,
    ) -> None:
        if lr < 0.0:
            raise ValueError(f"invalid learning rate {lr}")
        if eps < 0.0:
            raise ValueError(f"invalid epsilon {eps}")
        if not (0.0 <= betas[0] < 1.0 and 0.0 <= betas[1] < 1.0):
            raise ValueError(f"invalid betas {betas}")
        if weight_decay < 0.0:
            raise ValueError(f"invalid weight decay {weight_decay}")
        defaults = dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay, foreach=foreach)
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None, apply: Tensor | None = None) -> float | None:
        """One update. `apply`, a 0-dim bool tensor, skips it where False without reading it on the host.

        A skipped update leaves parameters and moments exactly as they were (non-finite gradients never reach
        them); its lr and step counters, kept on the host, still advance.
        """
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            # Parameters whose scalar state (step count, lr EMA) agrees share one vectorised update.
            buckets: dict[tuple[float, float], list[Tensor]] = {}
            for p in group["params"]:
                if p.grad is None:
                    continue
                if p.grad.is_sparse:
                    raise RuntimeError("LaProp does not support sparse gradients")
                state = self.state[p]
                if not state:
                    state["step"] = 0
                    state["lr_avg"] = 0.0
                    state["sq_weight"] = 0.0
                    state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                beta1, beta2 = group["betas"]
                state["step"] += 1
                state["lr_avg"] = state["lr_avg"] * beta1 + (1 - beta1) * group["lr"]
                state["sq_weight"] = state["sq_weight"] * beta2 + (1 - beta2)
                buckets.setdefault((state["lr_avg"], state["sq_weight"]), []).append(p)
            for (lr_avg, sq_weight), params in buckets.items():
                states = [self.state[p] for p in params]
                if apply is None:
                    update = _update_foreach if group["foreach"] else _update_single
                    update(params, states, group, lr_avg, sq_weight)
                else:
                    _update_masked(params, states, group, lr_avg, sq_weight, apply)
        return loss


def _step_size(group: dict[str, Any], lr_avg: float) -> float:
    """1 / c1 with c1 = lr_avg / lr (1 when lr is 0, as in the authors' code)."""
    return group["lr"] / lr_avg if group["lr"] != 0.0 else 1.0


def _update_single(
    params: list[Tensor], states: list[dict[str, Any]], group: dict[str, Any], lr_avg: float, sq_weight: float
) -> None:
    beta1, beta2 = group["betas"]
    step_size = _step_size(group, lr_avg)
    for p, state in zip(params, states, strict=True):
        grad, exp_avg, exp_avg_sq = p.grad, state["exp_avg"], state["exp_avg_sq"]
        exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
        denom = exp_avg_sq.div(sq_weight).sqrt_().add_(group["eps"])
        exp_avg.mul_(beta1).addcdiv_(grad, denom, value=(1 - beta1) * group["lr"])
        p.add_(exp_avg, alpha=-step_size)
        if group["weight_decay"] != 0.0:
            p.add_(p, alpha=-group["weight_decay"])


def _update_foreach(
    params: list[Tensor], states: list[dict[str, Any]], group: dict[str, Any], lr_avg: float, sq_weight: float
) -> None:
    beta1, beta2 = group["betas"]
    step_size = _step_size(group, lr_avg)
    grads = [p.grad for p in params]
    exp_avgs = [s["exp_avg"] for s in states]
    exp_avg_sqs = [s["exp_avg_sq"] for s in states]
    torch._foreach_mul_(exp_avg_sqs, beta2)
    torch._foreach_addcmul_(exp_avg_sqs, grads, grads, value=1 - beta2)
    denoms = torch._foreach_div(exp_avg_sqs, sq_weight)
    torch._foreach_sqrt_(denoms)
    torch._foreach_add_(denoms, group["eps"])
    torch._foreach_mul_(exp_avgs, beta1)
    torch._foreach_addcdiv_(exp_avgs, grads, denoms, value=(1 - beta1) * group["lr"])
    torch._foreach_add_(params, exp_avgs, alpha=-step_size)
    if group["weight_decay"] != 0.0:
        torch._foreach_add_(params, params, alpha=-group["weight_decay"])


def _update_masked(
    params: list[Tensor],
    states: list[dict[str, Any]],
    group: dict[str, Any],
    lr_avg: float,
    sq_weight: float,
    apply: Tensor,
) -> None:
    """`_update_foreach`, bit for bit where `apply` is True; where False every tensor keeps its value.

    Gradients are zeroed, decays become 1 and the parameter change is selected away by `torch.where`, so
    non-finite gradients never reach the state and nothing is read on the host.
    """
    beta1, beta2 = group["betas"]
    grads = [p.grad.masked_fill_(~apply, 0.0) for p in params]
    exp_avgs = [s["exp_avg"] for s in states]
    exp_avg_sqs = [s["exp_avg_sq"] for s in states]
    one = torch.ones((), dtype=params[0].dtype, device=params[0].device)
    torch._foreach_mul_(exp_avg_sqs, torch.where(apply, beta2, one))
    torch._foreach_addcmul_(exp_avg_sqs, grads, grads, value=1 - beta2)
    denoms = torch._foreach_div(exp_avg_sqs, sq_weight)
    torch._foreach_sqrt_(denoms)
    torch._foreach_add_(denoms, group["eps"])
    torch._foreach_mul_(exp_avgs, torch.where(apply, beta1, one))
    torch._foreach_addcdiv_(exp_avgs, grads, denoms, value=(1 - beta1) * group["lr"])
    torch._foreach_add_(params, [torch.where(apply, m, 0.0) for m in exp_avgs], alpha=-_step_size(group, lr_avg))
    if group["weight_decay"] != 0.0:
        torch._foreach_add_(params, [torch.where(apply, p, 0.0) for p in params], alpha=-group["weight_decay"])


def linear_warmup(optimizer: Optimizer, warmup_updates: int) -> LambdaLR:
    """lr of update k (0-based, i.e. after k scheduler steps) = base lr · min(1, (k + 1) / warmup_updates)."""
    if warmup_updates < 1:
        raise ValueError(f"warmup_updates must be at least 1, got {warmup_updates}")
    return LambdaLR(optimizer, lambda k: min(1.0, (k + 1) / warmup_updates))


def build_optimizer(params: Iterable[Tensor], cfg: TrainConfig, lr_scale: float = 1.0) -> tuple[LaProp, LambdaLR]:
    """LaProp with the configured lr (times lr_scale), betas, eps and weight decay, and its linear warm-up schedule."""
    lr = cfg.lr * lr_scale
    optimizer = LaProp(params, lr=lr, betas=cfg.betas, eps=cfg.eps, weight_decay=cfg.weight_decay)
    return optimizer, linear_warmup(optimizer, cfg.lr_warmup_updates)


def clip_grad_norm(params: Iterable[Tensor], max_norm: float) -> Tensor:
    """Scale the gradients to a total 2-norm of at most `max_norm`; return the norm before clipping (detached)."""
    return torch.nn.utils.clip_grad_norm_(list(params), max_norm).detach()

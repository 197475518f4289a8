import copy
import math

import pytest
import torch

from drama_agent import DramaAgent, DramaConfig, make_env
from drama_agent.optim import LaProp, build_optimizer, clip_grad_norm, linear_warmup

SHAPES = [(7, 5), (5,), (3, 2, 4), ()]


def make_params(dtype: torch.dtype, seed: int = 0) -> list[torch.nn.Parameter]:
    gen = torch.Generator().manual_seed(seed)
    return [torch.nn.Parameter(torch.randn(s, generator=gen, dtype=dtype)) for s in SHAPES]


def random_grads(steps: int, dtype: torch.dtype, seed: int = 1) -> list[list[torch.Tensor]]:
    gen = torch.Generator().manual_seed(seed)
    return [[torch.randn(s, generator=gen, dtype=dtype) * 10 ** (k % 3 - 1) for s in SHAPES] for k in range(steps)]


def lr_at(k: int) -> float:
    return 1e-2 * min(1.0, (k + 1) / 5)  # a warm-up, so the lr-aware bias correction is exercised


def reference_laprop(params, grads, betas, eps, weight_decay):
    """Naive LaProp, one parameter and one scalar at a time (the authors' update rule)."""
    beta1, beta2 = betas
    params = [p.detach().clone() for p in params]
    m = [torch.zeros_like(p) for p in params]
    v = [torch.zeros_like(p) for p in params]
    lr_avg, sq_weight = 0.0, 0.0
    for k, step_grads in enumerate(grads):
        lr = lr_at(k)
        lr_avg = beta1 * lr_avg + (1 - beta1) * lr
        sq_weight = beta2 * sq_weight + (1 - beta2)
        assert sq_weight == pytest.approx(1 - beta2 ** (k + 1), rel=1e-12)
        for i, g in enumerate(step_grads):
            v[i] = beta2 * v[i] + (1 - beta2) * g * g
            m[i] = beta1 * m[i] + (1 - beta1) * lr * g / (torch.sqrt(v[i] / sq_weight) + eps)
            params[i] = params[i] - (lr / lr_avg) * m[i]
            params[i] = params[i] - weight_decay * params[i]
    return params


def run_laprop(params, grads, foreach, **kwargs):
    opt = LaProp(params, foreach=foreach, **kwargs)
    for k, step_grads in enumerate(grads):
        opt.param_groups[0]["lr"] = lr_at(k)
        for p, g in zip(params, step_grads, strict=True):
            p.grad = g.clone()
        opt.step()
    return opt


@pytest.mark.parametrize("foreach", [True, False])
@pytest.mark.parametrize("weight_decay", [0.0, 1e-3])
def test_laprop_matches_naive_reference_float64(foreach, weight_decay):
    kwargs = dict(betas=(0.9, 0.999), eps=1e-8, weight_decay=weight_decay)
    params = make_params(torch.float64)
    grads = random_grads(20, torch.float64)
    expected = reference_laprop(params, grads, **kwargs)
    run_laprop(params, grads, foreach, **kwargs)
    for got, want in zip(params, expected, strict=True):
        torch.testing.assert_close(got.detach(), want, atol=1e-12, rtol=0)
    moved = max((a.detach() - b).abs().max().item() for a, b in zip(params, make_params(torch.float64), strict=True))
    assert moved > 1e-3  # the parameters did move


def test_laprop_constant_lr_equals_adam_style_bias_correction():
    # With a constant lr, c1 = 1 − β1^t: the first step moves every element by lr·sign(g)·|g|/(|g| + eps') ≈ lr.
    p = torch.nn.Parameter(torch.zeros(4, dtype=torch.float64))
    opt = LaProp([p], lr=0.1, eps=1e-20)
    p.grad = torch.tensor([3.0, -0.5, 1e-3, -7.0], dtype=torch.float64)
    opt.step()
    torch.testing.assert_close(
        p.detach(), torch.tensor([-0.1, 0.1, -0.1, 0.1], dtype=torch.float64), atol=1e-15, rtol=0
    )


def test_foreach_and_single_tensor_paths_agree_bitwise():
    grads = random_grads(20, torch.float32)
    a, b = make_params(torch.float32), make_params(torch.float32)
    run_laprop(a, grads, foreach=True, eps=1e-20, weight_decay=1e-4)
    run_laprop(b, grads, foreach=False, eps=1e-20, weight_decay=1e-4)
    for x, y in zip(a, b, strict=True):
        assert torch.equal(x, y)


def test_parameters_without_gradient_are_skipped():
    params = make_params(torch.float32)
    opt = LaProp(params, lr=1e-2)
    frozen = params[1].detach().clone()
    for p in params:
        p.grad = torch.ones_like(p)
    params[1].grad = None
    opt.step()
    assert torch.equal(params[1].detach(), frozen) and params[1] not in opt.state
    assert opt.state[params[0]]["step"] == 1


def test_state_dict_round_trip_resumes_bit_exactly():
    grads = random_grads(10, torch.float32)
    params = make_params(torch.float32)
    opt = LaProp(params, lr=3e-3, eps=1e-20)
    schedule = linear_warmup(opt, 4)

    def train(params, opt, schedule, step_grads):
        for g_list in step_grads:
            for p, g in zip(params, g_list, strict=True):
                p.grad = g.clone()
            opt.step()
            schedule.step()

    train(params, opt, schedule, grads[:5])
    saved_params = [p.detach().clone() for p in params]
    saved_opt, saved_sched = copy.deepcopy(opt.state_dict()), copy.deepcopy(schedule.state_dict())
    train(params, opt, schedule, grads[5:])

    resumed = [torch.nn.Parameter(t.clone()) for t in saved_params]
    opt2 = LaProp(resumed, lr=3e-3, eps=1e-20)
    schedule2 = linear_warmup(opt2, 4)
    opt2.load_state_dict(saved_opt)
    schedule2.load_state_dict(saved_sched)
    assert opt2.param_groups[0]["lr"] == opt.param_groups[0]["lr"] == 3e-3
    train(resumed, opt2, schedule2, grads[5:])
    for a, b in zip(params, resumed, strict=True):
        assert torch.equal(a, b)
    for key in ("exp_avg", "exp_avg_sq"):
        assert torch.equal(opt.state[params[0]][key], opt2.state[resumed[0]][key])


def test_linear_warmup_lr_values():
    param = torch.nn.Parameter(torch.zeros(1))
    param.grad = torch.zeros(1)
    opt = LaProp([param], lr=4e-5)
    schedule = linear_warmup(opt, 1000)
    lrs = {}
    for step in range(2001):
        lrs[step] = opt.param_groups[0]["lr"]
        opt.step()
        schedule.step()
    # update k (after k scheduler steps) uses lr · min(1, (k + 1) / 1000), as pytorch_warmup's LinearWarmup
    assert lrs[0] == 4e-5 * 0.001
    assert lrs[1] == 4e-5 * 0.002
    assert lrs[500] == 4e-5 * 0.501
    assert lrs[998] == 4e-5 * 0.999
    assert lrs[999] == lrs[1000] == lrs[2000] == 4e-5
    with pytest.raises(ValueError):
        linear_warmup(opt, 0)


def test_build_optimizer_uses_train_config():
    cfg = DramaConfig.preset("xs").train
    opt, schedule = build_optimizer([torch.nn.Parameter(torch.zeros(3))], cfg)
    group = opt.param_groups[0]
    assert group["betas"] == (0.9, 0.999) and group["eps"] == 1e-20 and group["weight_decay"] == 0.0
    assert group["lr"] == 4e-5 / 1000 and schedule.base_lrs == [4e-5]


def test_clip_grad_norm_returns_detached_pre_clip_norm():
    a = torch.nn.Parameter(torch.zeros(2))
    b = torch.nn.Parameter(torch.zeros(1))
    a.grad, b.grad = torch.tensor([3.0, 4.0]), torch.tensor([12.0])  # total norm 13
    norm = clip_grad_norm([a, b], 6.5)
    assert not norm.requires_grad and norm.item() == pytest.approx(13.0)
    total = math.sqrt(sum(g.square().sum().item() for g in (a.grad, b.grad)))
    assert total == pytest.approx(6.5, rel=1e-5)
    torch.testing.assert_close(a.grad, torch.tensor([1.5, 2.0]), atol=1e-5, rtol=0)
    norm = clip_grad_norm([a, b], 100.0)  # below the limit: untouched
    assert norm.item() == pytest.approx(6.5, rel=1e-5)
    torch.testing.assert_close(b.grad, torch.tensor([6.0]), atol=1e-5, rtol=0)


def test_masked_step_equals_plain_step_bitwise_and_a_skip_changes_nothing():
    """`step(apply=...)`: True gives the plain update bit for bit; False (here with NaN and inf gradients)
    leaves parameters and moments exactly as they were."""
    grads = random_grads(6, torch.float32)
    plain, masked = make_params(torch.float32), make_params(torch.float32)
    run_laprop(plain, grads, foreach=True, eps=1e-20, weight_decay=1e-4)
    opt = LaProp(masked, eps=1e-20, weight_decay=1e-4)
    for k, g_list in enumerate(grads):
        opt.param_groups[0]["lr"] = lr_at(k)
        for p, g in zip(masked, g_list, strict=True):
            p.grad = g.clone()
        opt.step(apply=torch.tensor(True))
    for x, y in zip(plain, masked, strict=True):
        assert torch.equal(x, y)
    before = [p.detach().clone() for p in masked]
    moments = [(opt.state[p]["exp_avg"].clone(), opt.state[p]["exp_avg_sq"].clone()) for p in masked]
    for p in masked:
        p.grad = torch.full_like(p, float("nan"))
    masked[0].grad[0] = float("inf")
    opt.step(apply=torch.tensor(False))
    for p, old, (m, v) in zip(masked, before, moments, strict=True):
        assert torch.equal(p.detach(), old)
        assert torch.equal(opt.state[p]["exp_avg"], m) and torch.equal(opt.state[p]["exp_avg_sq"], v)


def test_trainer_scales_the_actor_critic_learning_rate():
    cfg = DramaConfig.preset("debug").replace_path("train.lr", 6e-4).replace_path("train.ac_lr_scale", 0.25)
    trainer = DramaAgent(cfg, env=make_env("Catch", cfg.env, seed=0), device="cpu").trainer
    assert trainer.wm_schedule.base_lrs == [6e-4] and trainer.ac_schedule.base_lrs == [6e-4 * 0.25]
    assert DramaConfig.preset("debug").train.ac_lr_scale == 1.0  # by default one rate for both, as in the paper

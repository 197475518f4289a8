import dataclasses

import numpy as np
import pytest
import torch

from drama_agent.behavior import (
    ActorCritic,
    ReturnNormalizer,
    RunningMeanStd,
    actor_critic_loss,
    build_actor_critic,
    lambda_returns,
    percentile,
)
from drama_agent.config import DramaConfig
from drama_agent.optim import build_optimizer, clip_grad_norm


def n_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize("num_actions", [4, 6, 18])
def test_parameter_counts_xs(num_actions):
    model = build_actor_critic(DramaConfig.preset("xs"), num_actions)
    assert model.feature_dim == 1536
    assert n_params(model.actor) == 525_824 + 257 * num_actions
    assert n_params(model.critic) == 1_444_607
    assert n_params(model.slow_critic) == 1_444_607
    assert sum(p.numel() for p in model.trainable_parameters()) == 525_824 + 257 * num_actions + 1_444_607
    assert not any(p.requires_grad for p in model.slow_critic.parameters())


def test_debug_build_shapes_and_init():
    cfg = DramaConfig.preset("debug")
    model = build_actor_critic(cfg, 5)
    feature_dim = cfg.world_model.latent_dim + cfg.sequence.d_model
    assert model.feature_dim == feature_dim == 128
    x = torch.randn(3, 7, feature_dim)
    assert model.actor(x).shape == (3, 7, 5)
    assert model.critic(x).shape == (3, 7, 255)
    assert model.critic.value(x).shape == (3, 7)
    first, last = model.actor.net[0], model.actor.net[-1]
    torch.testing.assert_close(first.weight @ first.weight.T, 2.0 * torch.eye(32), atol=1e-5, rtol=0)
    torch.testing.assert_close(last.weight @ last.weight.T, 1e-6 * torch.eye(5), atol=1e-11, rtol=0)
    assert torch.count_nonzero(first.bias) == 0 and torch.count_nonzero(last.bias) == 0
    for a, b in zip(model.critic.parameters(), model.slow_critic.parameters(), strict=True):
        assert torch.equal(a, b)


# λ-returns on B=1, H=3: γ = 0.9, λ = 0.5, r = (1, 0, 2), V(s_0..s_3) = (0.5, 1, −1, 4), worked by hand.
REWARDS = torch.tensor([[1.0, 0.0, 2.0]], dtype=torch.float64)
VALUES = torch.tensor([[0.5, 1.0, -1.0, 4.0]], dtype=torch.float64)


@pytest.mark.parametrize(
    ("bootstrap_from_current", "continues", "expected"),
    [
        # G_2 = 2 + .9(.5·4 + .5·4) = 5.6; G_1 = .9(.5·(−1) + .5·5.6) = 2.07; G_0 = 1 + .9(.5·1 + .5·2.07)
        (False, [1.0, 1.0, 1.0], [2.3815, 2.07, 5.6]),
        # G_2 = 2 + .9(.5·(−1) + .5·4) = 3.35; G_1 = .9(.5·1 + .5·3.35) = 1.9575; G_0 = 1 + .9(.5·.5 + .5·1.9575)
        (True, [1.0, 1.0, 1.0], [2.105875, 1.9575, 3.35]),
        # a termination on the transition s_1 -> s_2 cuts everything behind it: G_1 = r_1 = 0
        (False, [1.0, 0.0, 1.0], [1.45, 0.0, 5.6]),
        (True, [1.0, 0.0, 1.0], [1.225, 0.0, 3.35]),
    ],
)
def test_lambda_returns_hand_computed(bootstrap_from_current, continues, expected):
    cont = torch.tensor([continues], dtype=torch.float64)
    got = lambda_returns(REWARDS, VALUES, cont, 0.9, 0.5, bootstrap_from_current)
    torch.testing.assert_close(got, torch.tensor([expected], dtype=torch.float64), atol=1e-12, rtol=0)


def test_lambda_returns_lambda_one_is_discounted_sum_and_shape_checked():
    rewards, values = torch.rand(4, 6), torch.rand(4, 7)
    got = lambda_returns(rewards, values, torch.ones(4, 6), 0.9, 1.0, True)
    expected = sum(0.9**i * rewards[:, i] for i in range(6)) + 0.9**6 * values[:, -1]
    torch.testing.assert_close(got[:, 0], expected, atol=1e-6, rtol=0)
    with pytest.raises(ValueError, match="values"):
        lambda_returns(rewards, values[:, :-1], torch.ones(4, 6), 0.9, 0.95, True)


def test_running_mean_std_matches_numpy_over_a_stream():
    gen = torch.Generator().manual_seed(0)
    norm = RunningMeanStd(5)
    batches = [3.0 + 2.0 * torch.randn(n, 5, generator=gen) for n in (1, 7, 64, 3, 200, 50, 1, 128)]
    for batch in batches:
        norm(batch.reshape(-1, 1, 5))  # training mode: every call updates (any leading shape)
    stream = torch.cat(batches).double().numpy()
    n, c = len(stream), 1e-4  # the statistics start from a prior: mean 0, variance 1, weight c
    mean, var = stream.mean(0), stream.var(0)
    assert norm.count.item() == pytest.approx(n + c, abs=1e-9)
    np.testing.assert_allclose(norm.mean.double().numpy(), n * mean / (n + c), atol=1e-6, rtol=0)
    np.testing.assert_allclose(
        norm.var.double().numpy(), (c + n * var + mean**2 * c * n / (n + c)) / (n + c), atol=1e-6, rtol=0
    )
    # the prior's weight is negligible: numpy's plain statistics agree to 1e-5
    np.testing.assert_allclose(norm.mean.double().numpy(), mean, atol=1e-5, rtol=0)
    np.testing.assert_allclose(norm.var.double().numpy(), var, atol=1e-5, rtol=0)


def test_running_mean_std_clip_eval_and_state_dict():
    norm = RunningMeanStd(3, clip=10.0)
    norm(torch.randn(100, 3))
    norm.eval()
    stats = [t.clone() for t in (norm.mean, norm.var, norm.count)]
    out = norm(torch.tensor([[1e6, -1e6, 0.0]]))
    assert out[0, 0].item() == 10.0 and out[0, 1].item() == -10.0 and abs(out[0, 2].item()) < 10.0
    for before, after in zip(stats, (norm.mean, norm.var, norm.count), strict=True):
        assert torch.equal(before, after)  # eval mode leaves the statistics alone
    assert set(norm.state_dict()) == {"mean", "var", "count"}
    fresh = RunningMeanStd(3)
    fresh.load_state_dict(norm.state_dict())
    fresh.eval()
    x = torch.randn(4, 3)
    assert torch.equal(fresh(x), norm(x))


def test_percentile_rule():
    x = torch.tensor([3.0, -2.0, 7.0, 0.0, 5.0, 11.0, -4.0, 8.0, 1.0, 6.0])
    assert percentile(x, 0.05).item() == -4.0  # k = max(int(0.5), 1) = 1
    assert percentile(x, 0.95).item() == 8.0  # k = int(9.5) = 9
    assert percentile(x.reshape(2, 5), 0.5).item() == 3.0  # k = 5 of the flattened tensor


def test_return_normalizer_hand_computed_sequence():
    rn = ReturnNormalizer(0.99, 0.05, 0.95)
    x = torch.tensor([3.0, -2.0, 7.0, 0.0, 5.0, 11.0, -4.0, 8.0, 1.0, 6.0])
    # step 1: P5 = −4, P95 = 8 -> low = −0.04, high = 0.08, S = 0.12, divisor max(1, S) = 1
    assert rn.update(x).item() == 1.0
    torch.testing.assert_close(torch.stack([rn.low, rn.high]), torch.tensor([-0.04, 0.08]))
    # step 2: P5 = −400, P95 = 800 -> low = −0.0396 − 4, high = 0.0792 + 8
    norm = rn.update(100 * x)
    torch.testing.assert_close(torch.stack([rn.low, rn.high]), torch.tensor([-4.0396, 8.0792]))
    torch.testing.assert_close(norm, torch.tensor(12.1188))
    # step 3: −10..19 (N = 30): k = 1 -> −10, k = int(28.5) = 28 -> 17
    norm = rn.update(torch.arange(30.0) - 10)
    torch.testing.assert_close(torch.stack([rn.low, rn.high]), torch.tensor([-4.099204, 8.168408]))
    torch.testing.assert_close(norm, torch.tensor(12.267612))
    assert set(rn.state_dict()) == {"low", "high"}


def test_state_dict_holds_all_state_and_round_trips():
    cfg = DramaConfig.preset("debug")
    model = build_actor_critic(cfg, 3)
    feats = torch.randn(4, 5, model.feature_dim) * 3 + 1
    loss, _ = actor_critic_loss(
        model, feats, torch.zeros(4, 4, dtype=torch.long), torch.ones(4, 4), torch.ones(4, 4), cfg.actor_critic
    )
    model.update_slow_critic()
    state = model.state_dict()
    for key in (
        "actor.normalizer.mean",
        "actor.normalizer.var",
        "actor.normalizer.count",
        "return_norm.low",
        "return_norm.high",
        "slow_critic.net.0.weight",
    ):
        assert key in state
    assert state["actor.normalizer.count"].item() == pytest.approx(20 + 1e-4)
    assert state["return_norm.high"].item() != 0.0
    restored = build_actor_critic(cfg, 3)
    restored.load_state_dict(state)
    for key, value in restored.state_dict().items():
        assert torch.equal(value, state[key]), key
    model.eval()
    restored.eval()
    assert torch.equal(model.actor(feats), restored.actor(feats))


def test_slow_critic_ema():
    model = build_actor_critic(DramaConfig.preset("debug"), 3)
    with torch.no_grad():
        for p in model.critic.parameters():
            p.add_(1.0)
    old = [p.clone() for p in model.slow_critic.parameters()]
    model.update_slow_critic()
    for slow, prev, new in zip(model.slow_critic.parameters(), old, model.critic.parameters(), strict=True):
        torch.testing.assert_close(slow, 0.98 * prev + 0.02 * new, atol=1e-7, rtol=0)


def _tiny_policy_case(entropy_coef: float, reward: float) -> tuple[ActorCritic, torch.Tensor, dict]:
    """B = 1, H = 1, A = 3, logits = b for every state (last actor weight zeroed), V ≈ 0 (last critic weight zeroed)."""
    cfg = DramaConfig.preset("debug")
    cfg = cfg.replace_path("actor_critic.entropy_coef", entropy_coef)
    model = build_actor_critic(cfg, 3)
    bias = torch.tensor([0.5, -0.25, 0.0])
    with torch.no_grad():
        model.actor.net[-1].weight.zero_()
        model.actor.net[-1].bias.copy_(bias)
        for critic in (model.critic, model.slow_critic):
            critic.net[-1].weight.zero_()
    feats = torch.randn(1, 2, model.feature_dim)
    loss, metrics = actor_critic_loss(
        model, feats, torch.tensor([[1]]), torch.tensor([[reward]]), torch.ones(1, 1), cfg.actor_critic
    )
    loss.backward()
    return model, bias, metrics


def test_policy_gradient_matches_hand_derivation():
    model, bias, metrics = _tiny_policy_case(entropy_coef=0.0, reward=2.0)
    # V ≈ 0 everywhere, so G_0 = r = 2; first return-normaliser update gives S = 0, divisor 1; advantage = 2.
    # loss = −2·log softmax(b)[1]  =>  ∂loss/∂b = −2·(onehot(1) − softmax(b))
    assert metrics["return_norm"].item() == 1.0
    expected = -2.0 * (torch.tensor([0.0, 1.0, 0.0]) - bias.softmax(-1))
    torch.testing.assert_close(model.actor.net[-1].bias.grad, expected, atol=1e-5, rtol=0)
    assert torch.count_nonzero(model.actor.net[0].weight.grad) == 0  # nothing flows back through the zeroed layer


def test_entropy_term_gradient_and_sign():
    eta = 0.5
    model, bias, metrics = _tiny_policy_case(entropy_coef=eta, reward=0.0)
    p = bias.softmax(-1)
    entropy = -(p * p.log()).sum()
    torch.testing.assert_close(metrics["entropy"], entropy)
    # ∂(−η·H)/∂b_i = η·p_i·(log p_i + H); the advantage is ~0 (|V| < 1e-6)
    expected = eta * p * (p.log() + entropy)
    torch.testing.assert_close(model.actor.net[-1].bias.grad, expected, atol=1e-5, rtol=0)
    stepped = (bias - 0.1 * model.actor.net[-1].bias.grad).softmax(-1)
    assert -(stepped * stepped.log()).sum() > entropy  # descending the loss raises the entropy


def test_loss_checks_shapes_and_returns_detached_metrics():
    cfg = DramaConfig.preset("debug")
    model = build_actor_critic(cfg, 3)
    feats = torch.randn(2, 5, model.feature_dim)
    loss, metrics = actor_critic_loss(
        model, feats, torch.zeros(2, 4, dtype=torch.long), torch.zeros(2, 4), torch.ones(2, 4), cfg.actor_critic
    )
    assert loss.requires_grad and loss.shape == ()
    assert all(not m.requires_grad and m.shape == () for m in metrics.values())
    with pytest.raises(ValueError, match="actions"):
        actor_critic_loss(
            model, feats, torch.zeros(2, 5, dtype=torch.long), torch.zeros(2, 4), torch.ones(2, 4), cfg.actor_critic
        )


def test_act_sampling_and_greedy():
    model = build_actor_critic(DramaConfig.preset("debug"), 4).eval()
    with torch.no_grad():
        model.actor.net[-1].bias.copy_(torch.tensor([0.0, 3.0, 0.0, 1.0]))
    feats = torch.randn(2, 500, model.feature_dim)
    assert torch.equal(model.actor.act(feats, deterministic=True), torch.ones(2, 500, dtype=torch.long))
    a = model.actor.act(feats, generator=torch.Generator().manual_seed(1))
    b = model.actor.act(feats, generator=torch.Generator().manual_seed(1))
    assert torch.equal(a, b) and a.shape == (2, 500)
    frac = (a == 1).float().mean().item()
    assert 0.75 < frac < 0.90  # softmax(0, 3, 0, 1)[1] = 0.8214


@pytest.mark.parametrize("bootstrap_from_current", [True, False])
def test_bandit_learns_rewarded_action(bootstrap_from_current):
    """Fixed features, reward 1 for action 0 and 0 otherwise: 300 updates make π(0) > 0.9 in every state."""
    torch.manual_seed(0)
    cfg = DramaConfig.preset("debug")
    ac_cfg = dataclasses.replace(cfg.actor_critic, bootstrap_from_current=bootstrap_from_current)
    model = ActorCritic(ac_cfg, 128, 4)
    optimizer, schedule = build_optimizer(model.trainable_parameters(), cfg.train)
    gen = torch.Generator().manual_seed(0)
    feats = torch.randn(32, 5, 128, generator=gen)
    continues = torch.ones(32, 4)
    start = model.actor(feats).softmax(-1)[..., 0].mean().item()
    for _ in range(300):
        actions = model.actor.act(feats[:, :-1], generator=gen)
        rewards = (actions == 0).float()
        loss, _ = actor_critic_loss(model, feats, actions, rewards, continues, ac_cfg)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        clip_grad_norm(model.trainable_parameters(), cfg.train.ac_grad_clip)
        optimizer.step()
        schedule.step()
        model.update_slow_critic()
    model.eval()
    prob0 = model.actor(feats[:, :-1]).softmax(-1)[..., 0]
    assert abs(start - 0.25) < 0.01
    assert prob0.min().item() > 0.9

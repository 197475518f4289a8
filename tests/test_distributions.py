import torch

from drama_agent.distributions import SymlogTwoHot, symexp, symlog


def test_symlog_inverse():
    x = torch.linspace(-1e4, 1e4, 10001, dtype=torch.float64)
    torch.testing.assert_close(symexp(symlog(x)), x, rtol=1e-12, atol=1e-9)


def test_two_hot_round_trip_within_1e_4():
    dist = SymlogTwoHot(255, -20.0, 20.0).double()
    rewards = torch.cat([torch.linspace(-1000, 1000, 20001, dtype=torch.float64), torch.tensor([0.0, 1.0, -1.0])])
    weights = dist.encode(rewards)
    assert torch.allclose(weights.sum(-1), torch.ones_like(rewards))
    assert ((weights > 0).sum(-1) <= 2).all()
    decoded = symexp((weights * dist.bins.double()).sum(-1))
    assert (decoded - rewards).abs().max().item() < 1e-4


def test_two_hot_loss_is_minimal_at_target():
    dist = SymlogTwoHot(255, -20.0, 20.0)
    target = torch.tensor([3.7])
    exact = torch.log(dist.encode(target).clamp_min(1e-30))
    other = torch.log(dist.encode(torch.tensor([-2.0])).clamp_min(1e-30))
    assert dist.loss(exact, target).item() < dist.loss(other, target).item()
    torch.testing.assert_close(dist.mean(exact), target, rtol=1e-4, atol=1e-4)

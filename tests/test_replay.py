"""Replay ring buffer and DFS sampling: exact probabilities, counters, wrap-around, state.

See docs/algorithm.md §DFS sampling.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from drama_agent.config import ReplayConfig
from drama_agent.replay import (
    ReplayBuffer,
    draw_starts,
    imagination_sampling_probs,
    uniform_sampling_probs,
    world_model_sampling_probs,
)

SHAPE = (4, 4, 3)


def normalised(weights: list[float]) -> torch.Tensor:
    total = sum(weights)
    return torch.tensor([w / total for w in weights], dtype=torch.float64)


def filled(capacity: int, n: int, sampler: str = "dfs", batch_size: int = 16) -> ReplayBuffer:
    """Step i has action i, frame filled with i % 256, reward i and termination (i % 3 == 0)."""
    buf = ReplayBuffer(ReplayConfig(capacity=capacity, sampler=sampler, batch_size=batch_size), SHAPE)
    for i in range(n):
        buf.add(np.full(SHAPE, i % 256, np.uint8), i, float(i), i % 3 == 0)
    return buf


def snapshot(buf: ReplayBuffer) -> dict:
    return {k: v.clone() if isinstance(v, torch.Tensor) else v for k, v in buf.state_dict().items()}


def assert_same_state(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]) if isinstance(a[key], torch.Tensor) else a[key] == b[key], key


# ---- pure DFS functions ----------------------------------------------------------------------


def test_world_model_probs_hand_computed() -> None:
    v = torch.tensor([0, 1, 3])
    expected_tau1 = normalised([1.0, math.exp(-1), math.exp(-3)])
    expected_tau10 = normalised([1.0, math.exp(-0.1), math.exp(-0.3)])
    torch.testing.assert_close(world_model_sampling_probs(v, 1.0), expected_tau1, rtol=0, atol=1e-12)
    torch.testing.assert_close(world_model_sampling_probs(v, 10.0), expected_tau10, rtol=0, atol=1e-12)


def test_imagination_probs_hand_computed() -> None:
    v, b = torch.tensor([0, 2, 5, 1]), torch.tensor([0, 64, 640, 128])
    # ratio 64: b' = [0, 1, 10, 2]; alpha = beta = 1: score = min(0, v - b') = [0, 0, -5, -1]
    probs = imagination_sampling_probs(v, b, ratio=64, alpha=1.0, beta=1.0, tau=1.0)
    torch.testing.assert_close(probs, normalised([1, 1, math.exp(-5), math.exp(-1)]), rtol=0, atol=1e-12)
    probs = imagination_sampling_probs(v, b, ratio=64, alpha=1.0, beta=1.0, tau=10.0)
    torch.testing.assert_close(probs, normalised([1, 1, math.exp(-0.5), math.exp(-0.1)]), rtol=0, atol=1e-12)
    # alpha 0.5, beta 2: [0, 2 - 0.5 - 2*1, 5 - 5 - 0, 1 - 1 - 0] = [0, -0.5, 0, 0]
    probs = imagination_sampling_probs(v, b, ratio=64, alpha=0.5, beta=2.0, tau=1.0)
    torch.testing.assert_close(probs, normalised([1, math.exp(-0.5), 1, 1]), rtol=0, atol=1e-12)
    # ratio 1 (the paper's formula, no scaling): score = min(0, v - b) = [0, -62, -635, -127]
    probs = imagination_sampling_probs(v, b, ratio=1, alpha=1.0, beta=1.0, tau=1.0)
    torch.testing.assert_close(probs, normalised([1, math.exp(-62), math.exp(-635), math.exp(-127)]), rtol=0, atol=0)


def test_pure_functions_reject_bad_input() -> None:
    v = torch.tensor([0, 1])
    for call in (
        lambda: world_model_sampling_probs(v, 0.0),
        lambda: world_model_sampling_probs(torch.tensor([]), 1.0),
        lambda: world_model_sampling_probs(v[None], 1.0),
        lambda: imagination_sampling_probs(v, torch.tensor([0, 1, 2]), 64, 1, 1, 10),
        lambda: imagination_sampling_probs(v, v, 0, 1, 1, 10),
        lambda: imagination_sampling_probs(v, v, 64, float("nan"), 1, 10),
        lambda: uniform_sampling_probs(0),
        lambda: draw_starts(uniform_sampling_probs(2), 3, None),
    ):
        with pytest.raises(ValueError):
            call()


counts = st.lists(st.integers(0, 60), min_size=1, max_size=200)


@settings(max_examples=60, deadline=None)
@given(v=counts, tau=st.floats(0.1, 50), zero_at=st.integers(0, 199))
def test_world_model_probs_properties(v: list[int], tau: float, zero_at: int) -> None:
    v[zero_at % len(v)] = 0
    probs = world_model_sampling_probs(torch.tensor(v), tau)
    assert abs(probs.sum().item() - 1.0) < 1e-9
    never = torch.tensor(v) == 0
    assert probs[never].min().item() == pytest.approx(probs.max().item(), rel=1e-12)  # never-sampled are likeliest
    order = torch.argsort(torch.tensor(v))
    assert torch.all(probs[order][1:] <= probs[order][:-1] * (1 + 1e-12))  # more visits, less likely


@settings(max_examples=60, deadline=None)
@given(
    pairs=st.lists(st.tuples(st.integers(0, 60), st.integers(0, 4000)), min_size=1, max_size=200),
    ratio=st.floats(1, 100),
    alpha=st.floats(1, 3),
    beta=st.floats(1, 3),
    tau=st.floats(0.1, 50),
    zero_at=st.integers(0, 199),
)
def test_imagination_probs_properties(pairs, ratio, alpha, beta, tau, zero_at) -> None:
    pairs[zero_at % len(pairs)] = (0, 0)
    v, b = torch.tensor([p[0] for p in pairs]), torch.tensor([p[1] for p in pairs])
    probs = imagination_sampling_probs(v, b, ratio, alpha, beta, tau)
    assert abs(probs.sum().item() - 1.0) < 1e-9
    never = (v == 0) & (b == 0)
    # For alpha, beta >= 1 every score is <= 0 and a never-sampled start scores exactly 0.
    assert probs[never].min().item() == pytest.approx(probs.max().item(), rel=1e-12)


# ---- buffer --------------------------------------------------------------------------------


def test_batch_shapes_dtypes_and_contents() -> None:
    buf = filled(capacity=50, n=30)
    batch = buf.sample_world_model(4, 10, torch.Generator().manual_seed(0))
    assert batch.obs.shape == (4, 10, *SHAPE) and batch.obs.dtype == torch.uint8
    assert batch.actions.dtype == torch.int64 and batch.actions.shape == (4, 10)
    assert batch.rewards.dtype == torch.float32 and batch.terminations.dtype == torch.float32
    assert batch.starts.dtype == torch.int64 and batch.starts.shape == (4,)
    steps = batch.starts[:, None] + torch.arange(10)  # before any wrap, logical index = insertion index
    assert torch.equal(batch.actions, steps)
    assert torch.equal(batch.rewards, steps.float())
    assert torch.equal(batch.terminations, (steps % 3 == 0).float())
    assert torch.equal(batch.obs, steps[..., None, None, None].expand(-1, -1, *SHAPE).to(torch.uint8))
    assert len(set(batch.starts.tolist())) == 4 and int(batch.starts.max()) <= 20


@settings(max_examples=40, deadline=None)
@given(capacity=st.integers(1, 40), extra=st.integers(0, 100), data=st.data())
def test_wrap_around_windows_are_contiguous_and_counters_step_by_one(capacity: int, extra: int, data) -> None:
    n = capacity + extra if extra else data.draw(st.integers(1, capacity))
    buf = filled(capacity, n)
    assert len(buf) == min(n, capacity)
    oldest = n - len(buf)
    length = data.draw(st.integers(1, len(buf)))
    batch_size = data.draw(st.integers(1, buf.num_starts(length)))
    generator = torch.Generator().manual_seed(data.draw(st.integers(0, 1000)))
    kind = data.draw(st.sampled_from(["world_model", "imagination"]))
    v0, b0 = buf.visit_counts()
    sample = buf.sample_world_model if kind == "world_model" else buf.sample_imagination
    batch = sample(batch_size, length, generator)
    expected = oldest + batch.starts[:, None] + torch.arange(length)  # consecutive in insertion order
    assert torch.equal(batch.actions, expected)
    assert int(batch.actions.min()) >= oldest and int(batch.actions.max()) <= n - 1
    assert torch.equal(batch.obs[:, :, 0, 0, 0], (expected % 256).to(torch.uint8))
    v1, b1 = buf.visit_counts()
    drawn = torch.zeros(len(buf), dtype=torch.int64)
    drawn[batch.starts] = 1
    changed, unchanged = (v1 - v0, b1 - b0) if kind == "world_model" else (b1 - b0, v1 - v0)
    assert torch.equal(changed, drawn) and not unchanged.any()


def test_overwritten_steps_get_zero_counters() -> None:
    buf = filled(capacity=6, n=6)
    g = torch.Generator().manual_seed(0)
    buf.sample_world_model(6, 1, g)
    buf.sample_world_model(6, 1, g)
    buf.sample_imagination(6, 1, g)
    for i in (6, 7):
        buf.add(np.zeros(SHAPE, np.uint8), i, 0.0, False)
    v, b = buf.visit_counts()
    assert v.tolist() == [2, 2, 2, 2, 0, 0] and b.tolist() == [1, 1, 1, 1, 0, 0]


def test_buffer_draws_equal_the_pure_functions() -> None:
    buf = filled(capacity=30, n=45, batch_size=4)
    g = torch.Generator().manual_seed(1)
    for _ in range(5):
        buf.sample_world_model(4, 8, g)
        buf.sample_imagination(16, 3, g)
    for length, batch_size in ((8, 4), (3, 16)):
        v, b = (c[: buf.num_starts(length)] for c in buf.visit_counts())
        replay = torch.Generator().set_state(g.get_state())
        if batch_size == 4:
            probs = world_model_sampling_probs(v, 10.0)
            starts = buf.sample_world_model(batch_size, length, g).starts
        else:
            probs = imagination_sampling_probs(v, b, ratio=16 / 4, alpha=1.0, beta=1.0, tau=10.0)  # default ratio
            starts = buf.sample_imagination(batch_size, length, g).starts
        assert torch.equal(starts, draw_starts(probs, batch_size, replay))
    explicit = torch.Generator().set_state(g.get_state())
    v, b = (c[: buf.num_starts(3)] for c in buf.visit_counts())
    probs = imagination_sampling_probs(v, b, ratio=64, alpha=1.0, beta=1.0, tau=10.0)
    assert torch.equal(buf.sample_imagination(16, 3, g, ratio=64).starts, draw_starts(probs, 16, explicit))


def test_dfs_evens_out_visits_where_uniform_does_not() -> None:
    """1000 single draws over 20 starts: uniform counts are Binomial(1000, 1/20) (sd 6.9); DFS (τ=1) keeps them even."""
    spread = {}
    for sampler in ("dfs", "uniform"):
        buf = ReplayBuffer(ReplayConfig(capacity=20, sampler=sampler, tau=1.0), SHAPE)
        for i in range(20):
            buf.add(np.zeros(SHAPE, np.uint8), i, 0.0, False)
        g = torch.Generator().manual_seed(0)
        for _ in range(1000):
            buf.sample_world_model(1, 1, g)
        v, _ = buf.visit_counts()
        assert int(v.sum()) == 1000
        spread[sampler] = v.double().std().item()
    assert spread["dfs"] < 1.5 and spread["uniform"] > 4.0


def test_uniform_sampler_ignores_counters() -> None:
    state = filled(capacity=20, n=20).state_dict()
    state["wm_counts"] = torch.full((20,), 100, dtype=torch.int64)
    state["wm_counts"][0] = 0  # start 0 never trained on: DFS picks it with p = 1 / (1 + 19 e^-10)
    picks_of_zero = {}
    for sampler in ("uniform", "dfs"):
        buf = ReplayBuffer(ReplayConfig(capacity=20, sampler=sampler), SHAPE)
        buf.load_state_dict(state)
        g = torch.Generator().manual_seed(3)
        replay = torch.Generator().set_state(g.get_state())
        probs = (
            uniform_sampling_probs(20) if sampler == "uniform" else world_model_sampling_probs(state["wm_counts"], 10)
        )
        assert torch.equal(buf.sample_world_model(1, 1, g).starts, draw_starts(probs, 1, replay))
        picks_of_zero[sampler] = sum(int(buf.sample_world_model(1, 1, g).starts) == 0 for _ in range(50))
    # uniform: Binomial(50, 1/20), mean 2.5; DFS: p(start 0) stays above 0.88 while v[0] < 50
    assert picks_of_zero["uniform"] <= 10 and picks_of_zero["dfs"] >= 40


def test_state_dict_round_trip_is_exact() -> None:
    a = filled(capacity=25, n=37)
    g = torch.Generator().manual_seed(0)
    a.sample_world_model(5, 4, g)
    a.sample_imagination(9, 2, g)
    b = ReplayBuffer(ReplayConfig(capacity=25), SHAPE)
    b.load_state_dict(a.state_dict())
    assert_same_state(snapshot(a), snapshot(b))
    assert b.state_dict()["total_added"] == 37 and len(b) == 25
    ga, gb = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    for x, y in zip(a.sample_imagination(7, 3, ga), b.sample_imagination(7, 3, gb), strict=True):
        assert torch.equal(x, y)
    for buf in (a, b):  # the write position is restored: the same step overwrites the same slot
        buf.add(np.full(SHAPE, 9, np.uint8), 99, 1.5, True)
    assert_same_state(snapshot(a), snapshot(b))
    partial = filled(capacity=25, n=7)
    c = ReplayBuffer(ReplayConfig(capacity=25), SHAPE)
    c.load_state_dict(partial.state_dict())
    assert_same_state(snapshot(partial), snapshot(c))


def test_bad_state_is_rejected_without_changes() -> None:
    buf = filled(capacity=10, n=4)
    before = snapshot(buf)
    good = filled(capacity=10, n=12).state_dict()
    bad_states = [
        {k: v for k, v in good.items() if k != "wm_counts"},
        {**good, "extra": 1},
        {**good, "capacity": 11},
        {**good, "total_added": 5},
        {**good, "obs": good["obs"][:, :2]},
        {**good, "rewards": good["rewards"].double()},
    ]
    for state in bad_states:
        with pytest.raises(ValueError, match="replay state|inconsistent"):
            buf.load_state_dict(state)
        assert_same_state(before, snapshot(buf))


def test_bad_input_raises_and_leaves_buffer_intact() -> None:
    buf = filled(capacity=10, n=6)
    before = snapshot(buf)
    frame = np.zeros(SHAPE, np.uint8)
    bad_steps = [
        (np.zeros((4, 4, 1), np.uint8), 0, 0.0, False, "shape"),
        (np.zeros(SHAPE, np.float32), 0, 0.0, False, "uint8"),
        ([[0]], 0, 0.0, False, "numpy"),
        (frame, 1.0, 0.0, False, "action"),
        (frame, True, 0.0, False, "action"),
        (frame, -1, 0.0, False, "action"),
        (frame, 0, float("nan"), False, "reward"),
        (frame, 0, "1", False, "reward"),
        (frame, 0, 0.0, 1, "termination"),
    ]
    for obs, action, reward, termination, match in bad_steps:
        with pytest.raises(ValueError, match=match):
            buf.add(obs, action, reward, termination)
    g = torch.Generator().manual_seed(0)
    with pytest.raises(ValueError, match="longer than the 6 steps"):
        buf.sample_world_model(1, 7, g)
    with pytest.raises(ValueError, match="exceeds the 3 distinct windows"):
        buf.sample_imagination(4, 4, g)
    with pytest.raises(ValueError, match="batch_size"):
        buf.sample_world_model(0, 2, g)
    assert_same_state(before, snapshot(buf))
    buf.add(np.zeros(SHAPE, np.uint8), np.int64(2), np.float32(0.5), np.bool_(True))  # numpy scalars are fine
    assert len(buf) == 7
    with pytest.raises(ValueError, match="sampler"):
        ReplayBuffer(dataclasses.replace(ReplayConfig(), sampler="prioritised"), SHAPE)
    with pytest.raises(ValueError, match="capacity"):
        ReplayBuffer(ReplayConfig(capacity=0), SHAPE)
    with pytest.raises(ValueError, match="obs_shape"):
        ReplayBuffer(ReplayConfig(), (4, 4))


def test_a_full_buffer_checks_every_field_before_overwriting_the_oldest_step() -> None:
    buf = filled(capacity=6, n=9)  # full: the next add would overwrite step 3
    before = snapshot(buf)
    frame = np.full(SHAPE, 200, np.uint8)
    for action, reward in ((2**63, 0.0), (2**70, 0.0), (0, 1e39), (0, -(10**400)), (0, np.float64("inf"))):
        with pytest.raises(ValueError, match="action must be|reward must be"):
            buf.add(frame, action, reward, False)
        assert_same_state(before, snapshot(buf))
    buf.add(frame, 2**63 - 1, -3e38, False)  # the largest action index and a reward float32 still holds
    assert buf.actions[3].item() == 2**63 - 1 and buf.rewards[3].item() == pytest.approx(-3e38)


def test_a_temperature_that_overflows_the_softmax_is_refused() -> None:
    v, b = torch.tensor([1, 2, 5]), torch.tensor([0, 64, 64])
    for call in (
        lambda: world_model_sampling_probs(v, 1e-320),  # subnormal: -v / tau is -inf everywhere, softmax NaN
        lambda: imagination_sampling_probs(v, b + 64, ratio=1.0, alpha=1.0, beta=1.0, tau=1e-320),  # all scores < 0
        lambda: imagination_sampling_probs(v, b, ratio=1.0, alpha=-1e308, beta=1.0, tau=1e-3),  # +inf scores
    ):
        with pytest.raises(ValueError, match="probabilities non-finite: .*use a larger temperature"):
            call()
    for tau in (1e-300, 1e-308):  # tiny, yet the least visited start keeps a finite score: all mass on it
        assert world_model_sampling_probs(v, tau).tolist() == [1.0, 0.0, 0.0]


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_buffer_matches_cpu() -> None:
    cpu = filled(capacity=30, n=40)
    gpu = ReplayBuffer(ReplayConfig(capacity=30), SHAPE, device="cuda")
    gpu.load_state_dict(cpu.state_dict())
    ga, gb = torch.Generator().manual_seed(0), torch.Generator().manual_seed(0)
    for x, y in zip(cpu.sample_world_model(4, 8, ga), gpu.sample_world_model(4, 8, gb), strict=True):
        assert y.device.type == "cuda" and torch.equal(x, y.cpu())
    assert_same_state(snapshot(cpu), snapshot(gpu))

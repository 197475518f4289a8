"""The chunked SSD against a plain sequential recurrence, its gradients, and mamba_ssm parity on a GPU."""

import pytest
import torch
import torch.nn.functional as F

from drama_agent.config import SequenceConfig
from drama_agent.sequence import fast
from drama_agent.sequence.mamba2 import Mamba2Mixer
from drama_agent.sequence.ssd import ssd_chunked, ssd_step


def sequential_scan(x, dt, A, B, C, state):
    """S_t = exp(dt_t A) S_{t-1} + dt_t x_t ⊗ B_t, y_t = S_t C_t per head; groups shared by consecutive heads."""
    heads_per_group = x.shape[2] // B.shape[2]
    ys = []
    for t in range(x.shape[1]):
        y_t = torch.empty_like(x[:, t])
        new_state = torch.empty_like(state)
        for h in range(x.shape[2]):
            g = h // heads_per_group
            decay = torch.exp(dt[:, t, h] * A[h])[:, None, None]
            new_state[:, h] = decay * state[:, h] + dt[:, t, h, None, None] * x[:, t, h, :, None] * B[:, t, g, None, :]
            y_t[:, h] = (new_state[:, h] * C[:, t, g, None, :]).sum(-1)
        state = new_state
        ys.append(y_t)
    return torch.stack(ys, dim=1), state


def random_problem(batch=2, length=300, heads=4, headdim=3, groups=2, dstate=5, seed=0):
    gen = torch.Generator().manual_seed(seed)

    def randn(*shape):
        return torch.randn(*shape, generator=gen, dtype=torch.float64)

    x = randn(batch, length, heads, headdim)
    dt = F.softplus(randn(batch, length, heads) - 1.0)  # spread over ~0.05 .. 2: strong and weak decays
    A = -torch.exp(randn(heads))
    B, C = randn(batch, length, groups, dstate), randn(batch, length, groups, dstate)
    state = randn(batch, heads, headdim, dstate)
    return x, dt, A, B, C, state


def test_sequential_reference_matches_ssd_step() -> None:
    x, dt, A, B, C, state = random_problem(length=3)
    y_ref, s_ref = sequential_scan(x, dt, A, B, C, state)
    for t in range(3):
        y_t, state = ssd_step(state, x[:, t], dt[:, t], A, B[:, t], C[:, t])
        assert (y_t - y_ref[:, t]).abs().max().item() < 1e-12
    assert (state - s_ref).abs().max().item() < 1e-12


@pytest.mark.parametrize("chunk_size", [1, 16, 64, 256])
def test_chunked_ssd_equals_sequential_recurrence(chunk_size: int) -> None:
    x, dt, A, B, C, state = random_problem()
    y_ref, s_ref = sequential_scan(x, dt, A, B, C, state)
    for initial in (state, None):
        y, final = ssd_chunked(x, dt, A, B, C, chunk_size, initial)
        if initial is None:
            y_ref, s_ref = sequential_scan(x, dt, A, B, C, torch.zeros_like(state))
        assert y.shape == y_ref.shape and final.shape == s_ref.shape
        assert (y - y_ref).abs().max().item() < 1e-10
        assert (final - s_ref).abs().max().item() < 1e-10


def test_ssd_gradcheck() -> None:
    x, dt, A, B, C, state = random_problem(batch=1, length=7, heads=2, headdim=2, groups=1, dstate=3)
    args = [t.clone().requires_grad_() for t in (x, dt, A, B, C, state)]

    def scan(x, dt, A, B, C, state):
        return ssd_chunked(x, dt, A, B, C, 3, state)  # 7 steps in chunks of 3: padding and 3 chunks

    assert torch.autograd.gradcheck(scan, args, eps=1e-6, atol=1e-7)


def test_ssd_gradients_with_groups_and_several_chunks() -> None:
    """The hand-written backward of the intra-chunk part, with 2 groups of 2 heads and 3 chunks of 5."""
    x, dt, A, B, C, state = random_problem(batch=1, length=15, heads=4, headdim=2, groups=2, dstate=2, seed=1)
    args = [t.clone().requires_grad_() for t in (x, dt, A, B, C, state)]

    def scan(x, dt, A, B, C, state):
        return ssd_chunked(x, dt, A, B, C, 5, state)

    assert torch.autograd.gradcheck(scan, args, eps=1e-6, atol=1e-7)


def test_float32_scan_with_vanishing_decays_matches_float64() -> None:
    """Decays far below the smallest normal float32 (log-decays of -10 per step) stay finite and exact enough.

    The scan clamps log-decays at about -61 (no subnormal numbers); terms decayed beyond that are < 1e-26.
    """
    x, dt, A, B, C, state = random_problem(batch=2, length=200, heads=4, headdim=3, groups=1, dstate=5, seed=2)
    A = torch.tensor([-10.0, -1.0, -0.1, -30.0], dtype=torch.float64)
    y_ref, s_ref = sequential_scan(x, dt, A, B, C, state)
    args32 = [t.float().requires_grad_() for t in (x, dt, A, B, C, state)]
    y, final = ssd_chunked(*args32[:5], 64, args32[5])
    (y.square().sum() + final.square().sum()).backward()
    scale = y_ref.abs().max().item()
    assert (y.double() - y_ref).abs().max().item() < 1e-5 * scale
    assert (final.double() - s_ref).abs().max().item() < 1e-5 * s_ref.abs().max().item()
    assert all(torch.isfinite(t.grad).all() for t in args32)


def test_ssd_step_chain_equals_chunked_scan() -> None:
    """Stepping the recurrence T times gives the chunked scan's outputs and final state (float64)."""
    x, dt, A, B, C, state = random_problem(batch=3, length=40, heads=4, groups=2)
    y_chunked, s_chunked = ssd_chunked(x, dt, A, B, C, 16, state)
    for t in range(x.shape[1]):
        y_t, state = ssd_step(state, x[:, t], dt[:, t], A, B[:, t], C[:, t])
        assert (y_t - y_chunked[:, t]).abs().max().item() < 1e-10
    assert (state - s_chunked).abs().max().item() < 1e-10


@pytest.mark.gpu
def test_weights_load_into_mamba_ssm_and_outputs_match() -> None:
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    mamba_ssm = pytest.importorskip("mamba_ssm")
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    cfg = SequenceConfig()
    torch.manual_seed(0)
    ours = Mamba2Mixer(cfg).cuda()
    with torch.no_grad():
        for p in ours.parameters():
            p.mul_(1 + 0.3 * torch.randn_like(p))
    ref = mamba_ssm.Mamba2(
        d_model=cfg.d_model,
        d_state=cfg.d_state,
        d_conv=cfg.d_conv,
        expand=cfg.expand,
        headdim=cfg.headdim,
        ngroups=cfg.ngroups,
        chunk_size=cfg.chunk_size,
        layer_idx=0,
        use_mem_eff_path=False,  # the plain path needs no causal_conv1d extension
    ).cuda()
    ref.load_state_dict(ours.state_dict(), strict=True)
    u = torch.randn(2, 300, cfg.d_model, device="cuda")
    with torch.no_grad():
        y_ref = ref(u)
        with fast.pure_pytorch():
            y_pure, state = ours(u)
        y_fast, _ = ours(u)
        torch.testing.assert_close(y_pure, y_ref, rtol=1e-3, atol=1e-4)
        torch.testing.assert_close(y_fast, y_ref, rtol=1e-3, atol=1e-4)
        conv_state, ssm_state = state[0].clone(), state[1].clone()
        step_in = torch.randn(2, 1, cfg.d_model, device="cuda")
        y_ref_step, _, _ = ref.step(step_in, conv_state, ssm_state)
        with fast.pure_pytorch():
            y_step, _ = ours.step(step_in[:, 0], state)
        torch.testing.assert_close(y_step, y_ref_step[:, 0], rtol=1e-3, atol=1e-4)

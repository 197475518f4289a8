"""Sequence backbones: parallel forward == step by step == prefill + steps, parameter counts, state dicts, errors."""

import math
import subprocess
import sys

import pytest
import torch

from drama_agent.config import DramaConfig, SequenceConfig
from drama_agent.sequence import MIXERS, SequenceModel, build_backbone, build_sequence_model, state_index
from drama_agent.sequence.mamba import scan_chunk_sizes, selective_scan
from drama_agent.sequence.mamba2 import Mamba2Mixer

BACKBONES = sorted(MIXERS)
SMALL = SequenceConfig(d_model=32, n_layers=2, headdim=8, d_state=4, ngroups=2, chunk_size=16, n_heads=4)
LATENT, ACTIONS, BATCH = 12, 5, 3


def perturb(module: torch.nn.Module, seed: int = 0) -> None:
    """Scale every parameter by 1 + 0.3·N(0, 1) so norms, skips and biases are not at their trivial init."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.mul_(1 + 0.3 * torch.randn(p.shape, generator=gen, dtype=p.dtype))


def small_model(backbone: str, dtype: torch.dtype) -> SequenceModel:
    torch.manual_seed(0)
    model = SequenceModel(SequenceConfig(**{**SMALL.__dict__, "backbone": backbone}), LATENT, ACTIONS)
    perturb(model.to(dtype))
    return model


def flatten(state: list[tuple[torch.Tensor, ...]]) -> list[torch.Tensor]:
    return [t for layer in state for t in layer]


def inputs(length: int, dtype: torch.dtype, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    z = torch.randn(BATCH, length, LATENT, generator=gen, dtype=dtype)
    a = torch.randint(0, ACTIONS, (BATCH, length), generator=gen)
    return z, a


@pytest.mark.parametrize("backbone", BACKBONES)
@pytest.mark.parametrize(("dtype", "tol"), [(torch.float32, 1e-5), (torch.float64, 1e-10)])
def test_forward_equals_steps_and_prefill(backbone: str, dtype: torch.dtype, tol: float) -> None:
    model = small_model(backbone, dtype)
    for length in (1, 7, 64, 130):
        z, a = inputs(length, dtype)
        with torch.no_grad():
            parallel, final = model(z, a)
            state = model.initial_state(BATCH)
            stepped = []
            for t in range(length):
                d_t, state = model.step(z[:, t], a[:, t], state)
                stepped.append(d_t)
            stepped = torch.stack(stepped, dim=1)
            k = max(1, length // 3)
            head, prefix_state = model(z[:, :k], a[:, :k])
            tail = []
            for t in range(k, length):
                d_t, prefix_state = model.step(z[:, t], a[:, t], prefix_state)
                tail.append(d_t)
            prefilled = torch.cat([head, *(d.unsqueeze(1) for d in tail)], dim=1)
        assert parallel.shape == (BATCH, length, SMALL.d_model) and parallel.dtype == dtype
        assert (parallel - stepped).abs().max().item() < tol, (backbone, length)
        assert (parallel - prefilled).abs().max().item() < tol, (backbone, length)
        for final_t, step_t in zip(flatten(final), flatten(state), strict=True):
            assert (final_t - step_t).abs().max().item() < tol, (backbone, length)


@pytest.mark.parametrize("backbone", BACKBONES)
def test_forward_continues_from_a_given_state(backbone: str) -> None:
    model = small_model(backbone, torch.float64)
    z, a = inputs(50, torch.float64)
    with torch.no_grad():
        full, _ = model(z, a)
        first, state = model(z[:, :20], a[:, :20])
        second, _ = model(z[:, 20:], a[:, 20:], state)
    assert (torch.cat([first, second], dim=1) - full).abs().max().item() < 1e-10


def test_state_index_selects_and_repeats_rows() -> None:
    model = small_model("mamba2", torch.float64)
    z, a = inputs(9, torch.float64)
    rows = torch.tensor([2, 2, 0])
    with torch.no_grad():
        _, state = model(z[:, :5], a[:, :5])
        d, _ = model(z[:, 5:], a[:, 5:], state)
        d_sel, _ = model(z[rows, 5:], a[rows, 5:], state_index(state, rows))
    assert (d_sel - d[rows]).abs().max().item() < 1e-12


@pytest.mark.parametrize(("preset", "base"), [("xs", 3_734_432), ("s", 3_767_520)])
@pytest.mark.parametrize("num_actions", [4, 6, 18])
def test_parameter_counts(preset: str, base: int, num_actions: int) -> None:
    model = build_sequence_model(DramaConfig.preset(preset), num_actions)
    assert sum(p.numel() for p in model.parameters()) == base + 512 * num_actions


def test_mamba2_names_shapes_and_init_match_spec() -> None:
    torch.manual_seed(0)
    mixer = Mamba2Mixer(SequenceConfig())
    shapes = {name: tuple(p.shape) for name, p in mixer.state_dict().items()}
    assert shapes == {
        "in_proj.weight": (2096, 512),
        "conv1d.weight": (1056, 1, 4),
        "conv1d.bias": (1056,),
        "dt_bias": (16,),
        "A_log": (16,),
        "D": (16,),
        "norm.weight": (1024,),
        "out_proj.weight": (512, 1024),
    }
    a = torch.exp(mixer.A_log.detach())
    dt = torch.nn.functional.softplus(mixer.dt_bias.detach())
    assert a.min() >= 1.0 and a.max() <= 16.0 and a.std() > 1.0
    assert dt.min() >= 1e-3 - 1e-9 and dt.max() <= 0.1 + 1e-9
    assert torch.equal(mixer.D.detach(), torch.ones(16))


def test_debug_preset_builds_and_runs() -> None:
    cfg = DramaConfig.preset("debug")
    model = build_sequence_model(cfg, 6)
    z = torch.randn(2, 5, cfg.world_model.latent_dim)
    d, state = model(z, torch.randint(0, 6, (2, 5)))
    d_t, _ = model.step(z[:, 0], torch.zeros(2, dtype=torch.long), state)
    assert d.shape == (2, 5, cfg.sequence.d_model) and d_t.shape == (2, cfg.sequence.d_model)
    assert torch.isfinite(d).all() and torch.isfinite(d_t).all()


@pytest.mark.parametrize("backbone", BACKBONES)
def test_backbone_stack_alone(backbone: str) -> None:
    torch.manual_seed(0)
    stack = build_backbone(SequenceConfig(**{**SMALL.__dict__, "backbone": backbone})).double()
    x = torch.randn(2, 10, SMALL.d_model, dtype=torch.float64)
    y, state = stack(x)
    y_t, _ = stack.step(x[:, 0], stack.initial_state(2))
    assert y.shape == (2, 10, SMALL.d_model)
    assert (y_t - y[:, 0]).abs().max().item() < 1e-12
    assert len(state) == SMALL.n_layers


@pytest.mark.parametrize("backbone", BACKBONES)
def test_state_dict_round_trip_is_bit_exact(backbone: str) -> None:
    model = small_model(backbone, torch.float32)
    torch.manual_seed(123)
    fresh = SequenceModel(model.backbone.cfg, LATENT, ACTIONS)
    fresh.load_state_dict(model.state_dict(), strict=True)
    z, a = inputs(20, torch.float32)
    with torch.no_grad():
        assert torch.equal(model(z, a)[0], fresh(z, a)[0])


def test_bf16_autocast_stays_close_to_fp32() -> None:
    model = small_model("mamba2", torch.float32)
    z, a = inputs(40, torch.float32)
    with torch.no_grad():
        reference, _ = model(z, a)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            mixed, state = model(z, a)
    assert mixed.dtype == torch.float32 and state[0][1].dtype == torch.float32
    assert (mixed - reference).abs().max().item() < 0.1


@pytest.mark.parametrize("backbone", BACKBONES)
def test_bad_inputs_raise_value_errors(backbone: str) -> None:
    model = small_model(backbone, torch.float32)
    z, a = inputs(4, torch.float32)
    with pytest.raises(ValueError, match="feature size 11"):
        model(z[..., :11], a)
    with pytest.raises(ValueError, match="action out of range"):
        model(z, a.clone().fill_(ACTIONS))
    with pytest.raises(ValueError, match="action out of range"):
        model.step(z[:, 0], torch.full((BATCH,), -1), model.initial_state(BATCH))
    with pytest.raises(ValueError, match="integer"):
        model(z, a.float())
    with pytest.raises(ValueError, match="batch size 2"):
        model(z, a, model.initial_state(2))
    with pytest.raises(ValueError, match="batch size 5"):
        model.step(z[:, 0], a[:, 0], model.initial_state(5))
    with pytest.raises(ValueError, match=r"shape \(B, T, 12\)"):
        model(z[:, 0], a[:, 0])
    with pytest.raises(ValueError, match=r"shape \(B, 12\)"):
        model.step(z, a, model.initial_state(BATCH))
    with pytest.raises(ValueError, match="list of 2"):
        model(z, a, model.initial_state(BATCH)[:1])


def test_transformer_rejects_sequences_beyond_max_len() -> None:
    cfg = SequenceConfig(**{**SMALL.__dict__, "backbone": "transformer", "max_len": 8})
    model = SequenceModel(cfg, LATENT, ACTIONS)
    z, a = inputs(6, torch.float32)
    _, state = model(z, a)
    with pytest.raises(ValueError, match="max_len 8"):
        model(z, a, state)


def test_import_is_silent_on_cpu() -> None:
    code = (
        "import drama_agent.sequence, torch; m = drama_agent.sequence.build_backbone("
        "drama_agent.config.SequenceConfig(d_model=32, headdim=8)); m(torch.randn(1, 3, 32))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "" and result.stderr == ""


def sequential_scan(
    dt: torch.Tensor, A: torch.Tensor, B: torch.Tensor, C: torch.Tensor, x: torch.Tensor, h: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """The Mamba-1 recurrence one step at a time, as `MambaMixer.forward` ran it before chunking."""
    outputs = []
    for t in range(x.shape[1]):
        h = torch.exp(dt[:, t, :, None] * A) * h + (dt[:, t] * x[:, t])[..., None] * B[:, t, None, :]
        outputs.append(torch.einsum("bdn,bn->bd", h, C[:, t]))
    return torch.stack(outputs, dim=1), h


def scan_inputs(dt_scale: float, dtype: torch.dtype, length: int = 300) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    batch, dim, dstate = 2, 6, 4
    dt = torch.rand(batch, length, dim, generator=gen, dtype=dtype) * dt_scale
    A = -torch.exp(torch.rand(dim, dstate, generator=gen, dtype=dtype) * math.log(16.0))
    B, C = (torch.randn(batch, length, dstate, generator=gen, dtype=dtype) for _ in range(2))
    x = torch.randn(batch, length, dim, generator=gen, dtype=dtype)
    h = torch.randn(batch, dim, dstate, generator=gen, dtype=dtype)
    return [t.requires_grad_() for t in (dt, A, B, C, x, h)]


@pytest.mark.parametrize("dt_scale", [0.1, 30.0])
def test_chunked_selective_scan_matches_the_recurrence_with_gradients(dt_scale: float) -> None:
    inputs = scan_inputs(dt_scale, torch.float64)
    sizes = scan_chunk_sizes(inputs[0], inputs[1], 7)
    assert sum(sizes) == 300 and max(sizes) <= 7
    if dt_scale == 0.1:  # dt·|A| <= 1.6, far inside the float64 exponent range: full chunks, 7 does not divide 300
        assert sizes == [7] * 42 + [6]
    else:  # steps with dt·|A| up to 480 get chunks of their own
        assert len(sizes) > 100
    y, h = selective_scan(*inputs, max_chunk=7)
    y_ref, h_ref = sequential_scan(*inputs)
    assert (y - y_ref).abs().max().item() < 1e-10 and (h - h_ref).abs().max().item() < 1e-10
    gen = torch.Generator().manual_seed(1)
    w_y, w_h = torch.randn(y.shape, generator=gen, dtype=y.dtype), torch.randn(h.shape, generator=gen, dtype=h.dtype)
    grads = torch.autograd.grad((y * w_y).sum() + (h * w_h).sum(), inputs)
    grads_ref = torch.autograd.grad((y_ref * w_y).sum() + (h_ref * w_h).sum(), inputs)
    for name, g, g_ref in zip(["dt", "A", "B", "C", "x", "h0"], grads, grads_ref, strict=True):
        assert (g - g_ref).abs().max().item() < 1e-10 * max(1.0, g_ref.abs().max().item()), name


def test_chunked_selective_scan_float32_stays_finite_and_close_for_large_steps() -> None:
    inputs64 = [t.detach() for t in scan_inputs(30.0, torch.float64, length=100)]
    y_ref, _ = sequential_scan(*inputs64)
    y, h = selective_scan(*(t.float() for t in inputs64))
    assert torch.isfinite(y).all() and torch.isfinite(h).all()
    assert (y.double() - y_ref).abs().max().item() < 1e-4 * y_ref.abs().max().item()
    with pytest.raises(ValueError, match="max_chunk must be positive"):
        selective_scan(*inputs64, max_chunk=0)

"""bf16 autocast: the precision setting, the world-model loss against fp32, and skipped non-finite updates."""

import warnings

import pytest
import torch

from drama_agent import DramaAgent, DramaConfig, make_env
from drama_agent import precision as precision_module
from drama_agent.precision import RMSNorm, resolve_precision
from drama_agent.world_model import build_world_model

DEBUG = DramaConfig.preset("debug")


def test_auto_precision_follows_native_bf16(monkeypatch: pytest.MonkeyPatch) -> None:
    assert not resolve_precision("fp32", "cpu").bf16 and resolve_precision("bf16", "cpu").bf16
    for native in (True, False):
        monkeypatch.setattr(precision_module, "cpu_has_native_bf16", lambda native=native: native)
        chosen = resolve_precision("auto", "cpu")
        assert chosen.bf16 == native and chosen.reason.startswith("auto: ")
    with pytest.raises(ValueError, match="fp16"):
        resolve_precision("fp16", "cpu")


def test_bf16_world_model_loss_is_within_two_percent_of_fp32() -> None:
    """The xs world model (its real widths) on one fixed batch of 2 × 16 frames, same latent draws."""
    torch.manual_seed(0)
    model = build_world_model(DramaConfig.preset("xs"), 6).train()
    g = torch.Generator().manual_seed(0)
    obs = torch.randint(0, 256, (2, 16, 64, 64, 3), generator=g, dtype=torch.uint8)
    actions = torch.randint(0, 6, (2, 16), generator=g)
    rewards, terminations = torch.randn(2, 16, generator=g), torch.zeros(2, 16)
    losses = {}
    for bf16 in (False, True):
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss, metrics = model.loss(obs, actions, rewards, terminations, torch.Generator().manual_seed(1))
        losses[bf16] = (loss.float(), {k: v.float() for k, v in metrics.items()})
    (fp32, fp32_metrics), (bf16, bf16_metrics) = losses[False], losses[True]
    assert fp32.dtype == bf16.dtype == torch.float32
    assert 0 < abs(bf16 / fp32 - 1) < 0.02, (fp32, bf16)  # bf16 did run, and stays close
    assert abs(bf16_metrics["recon"] / fp32_metrics["recon"] - 1) < 0.02


def test_a_non_finite_gradient_skips_the_update_and_is_counted() -> None:
    cfg = DEBUG.replace_path("train.warmup_steps", 40)
    agent = DramaAgent(cfg, env=make_env("Catch", cfg.env, seed=0), device="cpu")
    trainer = agent.trainer
    while not trainer.learning:
        trainer.step()
    params = list(trainer.world_model.parameters())
    hook = trainer.world_model.decoder.stem.weight.register_hook(lambda grad: grad * float("inf"))
    before = [p.detach().clone() for p in params]
    result = trainer.step()
    hook.remove()
    assert result.metrics["world_model/skipped_update"].item() == 1.0
    assert not torch.isfinite(result.metrics["world_model/grad_norm"])
    assert all(torch.equal(p, b) for p, b in zip(params, before, strict=True))
    trainer.check_finite()  # the loss itself was finite: no error
    result = trainer.step()
    assert result.metrics["world_model/skipped_update"].item() == 0.0
    assert not all(torch.equal(p, b) for p, b in zip(params, before, strict=True))


def test_rms_norm_of_a_bf16_input_is_torchs_unfused_result_bit_for_bit_without_its_warning() -> None:
    torch.manual_seed(0)
    for width, eps, scale in ((64, 1e-6, 1.0), (256, 1e-5, 1e-3), (333, 1e-6, 30.0)):
        norm = RMSNorm(width, eps=eps)
        with torch.no_grad():
            norm.weight.normal_()
        x = (torch.randn(5, 7, width) * scale).bfloat16()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            expected = torch.rms_norm(x, (width,), norm.weight, eps)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            got = norm(x)
        assert got.dtype == torch.bfloat16 and torch.equal(got, expected)
        wide = torch.randn(5, 7, width) * scale  # float32 input: torch's fused kernel, as nn.RMSNorm
        assert torch.equal(norm(wide), torch.rms_norm(wide, (width,), norm.weight, eps))

"""The named presets of `DramaConfig.preset`: `xs` and `s` (the paper's agents), `cpu` and `debug`."""

from __future__ import annotations

from drama_agent.config import (
    ActorCriticConfig,
    DramaConfig,
    EnvConfig,
    ImaginationConfig,
    ReplayConfig,
    SequenceConfig,
    TrainConfig,
    WorldModelConfig,
)

_XS = DramaConfig()
_S = DramaConfig(
    world_model=WorldModelConfig(encoder_channels=(32, 64, 96, 128, 128), decoder_channels=(128, 96, 64, 32)),
    sequence=SequenceConfig(d_state=32),
)
_DEBUG = DramaConfig(
    env=EnvConfig(frame_size=32),
    sequence=SequenceConfig(d_model=64, n_layers=1, headdim=16, d_state=8, chunk_size=16, n_heads=4),
    world_model=WorldModelConfig(
        encoder_channels=(8, 16, 16, 16),
        encoder_strides=(1, 2, 2, 2),
        decoder_channels=(16, 16, 8),
        stoch=8,
        classes=8,
        head_hidden=32,
    ),
    actor_critic=ActorCriticConfig(actor_hidden=32, critic_hidden=32, actor_layers=2, critic_layers=2),
    imagination=ImaginationConfig(batch_size=32, context=4, horizon=8),
    replay=ReplayConfig(capacity=5_000, batch_size=2, seq_len=16),
    train=TrainConfig(
        total_steps=4_000,
        freeze_steps=0,
        warmup_steps=64,
        lr=1e-3,
        lr_warmup_updates=10,
        act_context=4,
        checkpoint_every=1_000,
        precision="fp32",
    ),
)
# `cpu`: Drama sized and scheduled for a 2-core CPU, chosen by measurement (benchmarks/README.md, "A schedule
# for two CPU cores"). Against `xs`:
#   env.frame_size 48            the autoencoder's cost falls ~1.8x; Pong's ball keeps ~0.6x of its 64-pixel contrast
#   env.auto_fire                FIRE is pressed for the agent after resets and lost lives: greedy Breakout agents
#                                of this preset waited forever before a serve (not in the paper's protocol)
#   world_model.encoder_*        4 stride-2 layers of (16, 32, 32, 32): no convolution at full resolution
#   world_model.decoder_channels (32, 32, 16, 8), kernel_size 3: a quarter of xs's widths, 3x3 kernels
#   world_model.channels_last    faster convolutions on CPU, same results
#   sequence d_model 256, headdim 32, chunk_size 64: half the width, chunks as long as the training windows
#   actor_critic.critic_hidden   256 (as the actor)
#   replay 8 x 64 windows and imagination 128 x (4 + 16) every train.update_every = 4 env steps:
#                                128 world-model frames and 32 imagined rollouts per env step (xs: 2048 and 1024)
#   train.total_steps 20_000     what ~2 h allow at the measured 0.33 CPU-s per env step (one thread, float32)
#   train.freeze_steps 0         no frozen tail: the whole budget learns
#   train.lr 1e-4, lr_warmup_updates 250: fewer, larger-stride updates than xs (not tuned by measurement)
#   train.act_context 8          half the acting window (acting re-encodes it every step)
#   train.checkpoint_every 5_000
_CPU = DramaConfig(
    env=EnvConfig(frame_size=48, auto_fire=True),
    sequence=SequenceConfig(d_model=256, headdim=32, chunk_size=64),
    world_model=WorldModelConfig(
        encoder_channels=(16, 32, 32, 32),
        encoder_strides=(2, 2, 2, 2),
        decoder_channels=(32, 32, 16, 8),
        kernel_size=3,
        channels_last=True,
    ),
    actor_critic=ActorCriticConfig(critic_hidden=256),
    imagination=ImaginationConfig(batch_size=128, context=4),
    replay=ReplayConfig(batch_size=8, seq_len=64),
    train=TrainConfig(
        total_steps=20_000,
        freeze_steps=0,
        update_every=4,
        lr=1e-4,
        lr_warmup_updates=250,
        act_context=8,
        checkpoint_every=5_000,
    ),
)
PRESETS: dict[str, DramaConfig] = {"xs": _XS, "s": _S, "debug": _DEBUG, "cpu": _CPU}

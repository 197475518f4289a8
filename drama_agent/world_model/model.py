"""The Drama world model: autoencoder, categorical latent, sequence model and heads (docs/algorithm.md §World model)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from drama_agent.checks import check_frames, count_parameters
from drama_agent.config import DramaConfig, WorldModelConfig
from drama_agent.distributions import SymlogTwoHot
from drama_agent.sequence import build_sequence_model
from drama_agent.world_model.autoencoder import Decoder, Encoder
from drama_agent.world_model.heads import CategoricalHead, MLPHead
from drama_agent.world_model.init import trunc_normal_init_
from drama_agent.world_model.latent import sample_one_hot
from drama_agent.world_model.loss import world_model_loss


class WorldModel(nn.Module):
    """Encoder → posterior z_t → decoder; sequence model d_t = f(z_≤t, a_≤t); prior, reward, termination heads on d_t.

    Shapes: obs uint8 (B, T, S, S, 3); actions int64 (B, T); logits (B, T, K, C) (unimix log-probabilities,
    see `latent`); z (B, T, K·C); d (B, T, D). Every method also accepts any number of leading dims
    in place of (B, T) except `frames`, `encode` and `decode`, which need exactly two.

    BatchNorm: the caller sets the mode — `train()` for updates, `eval()` for acting and imagination.

    Initialisation follows the authors' code: the encoder, decoder, reward and termination heads get the
    truncated normal of `init.trunc_normal_init_`; the posterior and prior heads keep PyTorch's default
    Linear init; the sequence model initialises itself.
    """

    def __init__(self, cfg: WorldModelConfig, frame_size: int, sequence_model: nn.Module, d_model: int) -> None:
        super().__init__()
        self.cfg = cfg
        self.frame_size = frame_size
        self.encoder = Encoder(frame_size, cfg.encoder_channels, cfg.encoder_strides, cfg.kernel_size)
        self.post_head = CategoricalHead(self.encoder.out_dim, cfg.stoch, cfg.classes, cfg.unimix)
        self.decoder = Decoder(cfg.latent_dim, self.encoder.feature_shape, cfg.decoder_channels, cfg.kernel_size)
        if self.decoder.frame_size != frame_size:
            raise ValueError(
                f"decoder makes {self.decoder.frame_size}-pixel frames from {self.encoder.feature_shape}, "
                f"expected {frame_size}: len(decoder_channels) must undo the encoder's stride"
            )
        self.sequence_model = sequence_model
        self.prior_head = CategoricalHead(d_model, cfg.stoch, cfg.classes, cfg.unimix)
        self.reward_head = MLPHead(d_model, cfg.head_hidden, cfg.reward_bins, cfg.head_norm_eps)
        self.termination_head = MLPHead(d_model, cfg.head_hidden, 1, cfg.head_norm_eps)
        self.two_hot = SymlogTwoHot(cfg.reward_bins, cfg.bin_low, cfg.bin_high)
        for module in (self.encoder, self.decoder, self.reward_head, self.termination_head):
            trunc_normal_init_(module)
        self.memory_format = torch.channels_last if cfg.channels_last else torch.contiguous_format
        if cfg.channels_last:
            self.encoder.to(memory_format=torch.channels_last)
            self.decoder.to(memory_format=torch.channels_last)

    def frames(self, obs: Tensor) -> Tensor:
        """uint8 (B, T, S, S, 3) -> float (B, T, 3, S, S) in [0, 1]: the decoder's layout, the reconstruction target."""
        check_frames(obs, self.frame_size, ("B", "T"), "obs")
        return obs.permute(0, 1, 4, 2, 3).float() / 255.0

    def encode(self, obs: Tensor) -> Tensor:
        """uint8 frames (B, T, S, S, 3) -> posterior logits (B, T, K, C)."""
        check_frames(obs, self.frame_size, ("B", "T"), "obs")
        b, t = obs.shape[:2]
        x = obs.flatten(0, 1).permute(0, 3, 1, 2)  # (B·T, 3, S, S), NHWC strides
        x = x.contiguous(memory_format=self.memory_format).float() / 255.0
        features = self.encoder(x).unflatten(0, (b, t))  # (B, T, F)
        return self.post_head(features)

    def sample(self, logits: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """(..., K, C) logits -> (..., K·C) flattened straight-through one-hot sample (see `latent.sample_one_hot`)."""
        return sample_one_hot(logits, generator).flatten(-2)

    def decode(self, z: Tensor) -> Tensor:
        """(B, T, K·C) latents -> (B, T, 3, S, S) float frames in (0, 1); see `to_uint8` for the observation layout."""
        b, t = z.shape[:2]
        return self.decoder(z.flatten(0, 1)).unflatten(0, (b, t))

    @staticmethod
    def to_uint8(frames: Tensor) -> Tensor:
        """(..., 3, S, S) float in [0, 1] -> (..., S, S, 3) uint8, the observation layout."""
        return (frames.detach().float().clamp(0, 1) * 255).round().to(torch.uint8).movedim(-3, -1)

    def prior(self, d: Tensor) -> Tensor:
        """(..., D) sequence output d_t -> (..., K, C) prior logits of z_{t+1}."""
        return self.prior_head(d)

    def reward_logits(self, d: Tensor) -> Tensor:
        """(..., D) -> (..., bins) two-hot logits of r_t, the reward of the transition (z_t, a_t) that made d_t."""
        return self.reward_head(d)

    def predict_reward(self, d: Tensor) -> Tensor:
        """(..., D) -> (...) expected reward r_t (decoded two-hot mean)."""
        return self.two_hot.mean(self.reward_logits(d))

    def predict_termination_logit(self, d: Tensor) -> Tensor:
        """(..., D) -> (...) logit of e_t, the termination flag of the transition that made d_t (> 0: terminated)."""
        return self.termination_head(d).squeeze(-1)

    def loss(
        self,
        obs: Tensor,
        actions: Tensor,
        rewards: Tensor,
        terminations: Tensor,
        generator: torch.Generator | None = None,
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """One update's loss on replay windows; returns (loss, detached metrics) — see `loss.world_model_loss`.

        obs uint8 (B, T, S, S, 3); actions int64 (B, T); rewards, terminations float (B, T), where
        r_t, e_t belong to the transition (o_t, a_t). Call in `train()` mode for an update.
        """
        post_logits = self.encode(obs)  # (B, T, K, C)
        z = self.sample(post_logits, generator)  # (B, T, K·C)
        frames_hat = self.decode(z)  # (B, T, 3, S, S)
        d, _ = self.sequence_model(z, actions)  # (B, T, D)
        return world_model_loss(
            self.cfg,
            self.two_hot,
            frames=self.frames(obs),
            frames_hat=frames_hat,
            post_logits=post_logits,
            prior_logits=self.prior(d),
            reward_logits=self.reward_logits(d),
            rewards=rewards,
            termination_logits=self.predict_termination_logit(d),
            terminations=terminations,
        )

    def parameter_counts(self) -> dict[str, int]:
        """Trainable parameters per component (names of docs/algorithm.md §World model) and their total."""
        parts = {
            "encoder": self.encoder,
            "posterior": self.post_head,
            "prior": self.prior_head,
            "decoder": self.decoder,
            "sequence_model": self.sequence_model,
            "reward": self.reward_head,
            "termination": self.termination_head,
        }
        counts = {name: count_parameters(part) for name, part in parts.items()}
        counts["total"] = count_parameters(self)
        return counts


def build_world_model(cfg: DramaConfig, num_actions: int) -> WorldModel:
    """The world model of `cfg` for a game with `num_actions` discrete actions (sequence model included)."""
    sequence_model = build_sequence_model(cfg, num_actions)
    return WorldModel(cfg.world_model, cfg.env.frame_size, sequence_model, cfg.sequence.d_model)

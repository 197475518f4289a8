"""Typed, frozen configuration; the named presets (docs/algorithm.md §Presets) are in `drama_agent.presets`.

Every module receives only its own section; builders receive the root `DramaConfig`. A `DramaConfig` is
validated when it is built (`drama_agent.config_checks`), so a bad value fails at once with its field's name.
Edit a preset with `dataclasses.replace` (see `DramaConfig.replace_path` for dotted names).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

from drama_agent.config_checks import validate

Backbone = Literal["mamba2", "mamba", "gru", "transformer"]


@dataclass(frozen=True)
class EnvConfig:
    """Atari100k protocol (docs/algorithm.md §Environment protocol)."""

    frame_size: int = 64
    """Side of the square RGB observation after resizing (`resize`)."""
    resize: Literal["area", "max"] = "area"
    """How the 210 × 160 screen is shrunk to `frame_size`: area (cv2.INTER_AREA, the paper's) averages each output
    pixel's footprint, which fades a one-pixel ball to a third of its contrast at 48 × 48; max keeps each
    channel's maximum over the footprint, so small bright objects (balls, paddles) keep their full brightness.
    Not in the paper's protocol. Catch is drawn at `frame_size` and ignores it."""
    action_repeat: int = 4
    """Frames per agent step; rewards are summed, the last two frames max-pooled."""
    max_episode_frames: int = 108_000
    """ALE frame limit after which an episode is truncated."""
    life_loss_termination: bool = True
    """Report a lost life as `info['life_loss']` (stored as a termination flag)."""
    life_loss_rule: Literal["below_lowest", "any_drop"] = "below_lowest"
    """below_lowest (the authors' code): a life counts as lost only when the lives fall below the lowest count
    seen in the episode, so after a bonus life the drop back to the old count is not flagged; any_drop: every
    decrease from the previous step is flagged."""
    same_seed_every_reset: bool = False
    """The authors' behaviour: reseed with the run seed at every reset (identical starts)."""
    auto_fire: bool = False
    """Press FIRE inside the environment after every reset and every lost life, in games whose action set has
    FIRE (Breakout serves the ball only on FIRE), so that a greedy policy that prefers waiting cannot stall
    before a serve. These steps are not agent steps; their rewards go to the agent step before them (after a
    reset: to the first one). Not in the paper's protocol."""


@dataclass(frozen=True)
class SequenceConfig:
    """Sequence model over (z, a) (docs/algorithm.md §World model)."""

    backbone: Backbone = "mamba2"
    """Which mixer the residual blocks use: mamba2 (Drama), mamba, gru or transformer."""
    d_model: int = 512
    """Width of the residual stream and of the output d_t."""
    n_layers: int = 2
    """Number of pre-norm residual blocks."""
    expand: int = 2
    """Mamba inner width = expand * d_model."""
    headdim: int = 64
    """Mamba-2 head size (authors' code: 64; the paper's table: 128)."""
    d_state: int = 16
    """SSM state size N."""
    ngroups: int = 1
    """Mamba-2 groups sharing B and C."""
    d_conv: int = 4
    """Width of the depthwise causal convolution."""
    chunk_size: int = 256
    """Chunk length of the SSD algorithm."""
    dt_min: float = 1e-3
    """Lower end of the log-uniform initial step size."""
    dt_max: float = 0.1
    """Upper end of the log-uniform initial step size."""
    dt_init_floor: float = 1e-4
    """Floor applied to the initial step size."""
    a_init_min: float = 1.0
    """A = -exp(A_log), A_log = log U(a_init_min, a_init_max)."""
    a_init_max: float = 16.0
    """See `a_init_min`."""
    norm_eps: float = 1e-5
    """Epsilon of the pre-norm RMSNorm of every residual block and of the final RMSNorm. Not the stem's
    (`stem_norm_eps`) nor the gated RMSNorm inside each Mamba-2 mixer (fixed at 1e-5, as in mamba_ssm)."""
    stem_norm_eps: float = 1e-6
    """Epsilon of the RMSNorm after the input Linear (the authors' code uses torchtune's default, 1e-6)."""
    mamba_ssm_init: bool = True
    """mamba_ssm's model init, as the authors' code has it: the input Linear's bias starts at 0 and, for the
    mamba2 and mamba backbones, every mixer's `out_proj.weight` is divided by sqrt(n_layers) after its default
    init (rescale_prenorm_residual, one residual per block). False: PyTorch's default init for both."""
    n_heads: int = 8
    """Attention heads of the transformer backbone."""
    max_len: int = 4096
    """Longest sequence the transformer's positional encoding supports."""

    @property
    def d_inner(self) -> int:
        return self.expand * self.d_model

    @property
    def nheads(self) -> int:
        return self.d_inner // self.headdim


@dataclass(frozen=True)
class WorldModelConfig:
    """Autoencoder, heads and loss of the world model (docs/algorithm.md §World model)."""

    encoder_channels: tuple[int, ...] = (16, 32, 48, 64, 64)
    """Output channels of the encoder convolutions."""
    encoder_strides: tuple[int, ...] = (1, 2, 2, 2, 2)
    """Strides of the encoder convolutions."""
    decoder_channels: tuple[int, ...] = (64, 48, 32, 16)
    """Output channels of the stride-2 transposed convolutions."""
    kernel_size: int = 5
    """Kernel of every (transposed) convolution."""
    stoch: int = 32
    """K, the number of categorical latents."""
    classes: int = 32
    """C, the classes per categorical."""
    unimix: float = 0.01
    """Mix of the uniform distribution into every categorical."""
    head_hidden: int = 256
    """Hidden width of the reward and termination heads."""
    reward_bins: int = 255
    """Bins of the symlog two-hot reward distribution."""
    bin_low: float = -20.0
    """Lowest bin in symlog space."""
    bin_high: float = 20.0
    """Highest bin in symlog space."""
    dyn_scale: float = 1.0
    """Weight of the dynamics KL."""
    rep_scale: float = 0.1
    """Weight of the representation KL."""
    free_bits: float = 1.0
    """Both KL terms are clipped from below at this value (applied to the batch mean)."""
    head_norm_eps: float = 1e-6
    """Epsilon of the RMSNorm in the reward and termination heads (the authors' torchtune default)."""
    channels_last: bool = True
    """Run the encoder and decoder convolutions in channels_last memory format (a speed knob only: the same
    results within float rounding, faster on CPUs, especially under bf16)."""

    @property
    def latent_dim(self) -> int:
        return self.stoch * self.classes


@dataclass(frozen=True)
class ActorCriticConfig:
    """Behaviour policy and the official code's departures (docs/algorithm.md §Departures).

    See docs/algorithm.md §Behaviour policy.
    """

    actor_hidden: int = 256
    """Width of the actor's hidden layers."""
    actor_layers: int = 3
    """Hidden layers of the actor."""
    critic_hidden: int = 512
    """Width of the critic's hidden layers."""
    critic_layers: int = 3
    """Hidden layers of the critic."""
    gamma: float = 0.985
    """Discount."""
    lambda_: float = 0.95
    """λ of the λ-return."""
    entropy_coef: float = 3e-4
    """Weight of the entropy bonus."""
    slow_critic_decay: float = 0.98
    """EMA weight of the old slow-critic parameters after each update."""
    return_norm_decay: float = 0.99
    """EMA decay of the return percentiles."""
    return_norm_low: float = 0.05
    """Lower percentile of the return scale."""
    return_norm_high: float = 0.95
    """Upper percentile of the return scale."""
    obs_norm_clip: float = 10.0
    """Clip of the actor's normalised input."""
    obs_norm_eps: float = 1e-8
    """Added to the running variance before the square root in the actor's input normaliser."""
    obs_norm_update: Literal["every_forward", "loss_only"] = "every_forward"
    """When the training loop updates the actor's input statistics. every_forward (the authors' code): on
    every actor forward of the loop, i.e. while acting, at each imagination step and in the update;
    loss_only: only in the actor-critic update. Evaluation, `predict`/`act` and the viewer never update them."""
    norm_eps: float = 1e-6
    """Epsilon of the RMSNorm layers of actor and critic (the authors' torchtune RMSNorm default)."""
    value_bins: int = 255
    """Bins of the critic's symlog two-hot value distribution."""
    value_bin_low: float = -20.0
    """Lowest value bin in symlog space."""
    value_bin_high: float = 20.0
    """Highest value bin in symlog space."""
    reward_before_action: bool = True
    """docs/algorithm.md §Departures 1, official: read imagined reward/termination from d before the imagined action."""
    bootstrap_from_current: bool = True
    """docs/algorithm.md §Departures 2, official: the λ-return bootstraps from V(s_k) instead of V(s_{k+1})."""


@dataclass(frozen=True)
class ImaginationConfig:
    """Imagined rollouts (docs/algorithm.md §Imagination)."""

    batch_size: int = 1024
    """Number of real windows that seed imagination."""
    context: int = 8
    """Real steps encoded before imagining."""
    horizon: int = 16
    """Imagined steps per rollout."""


@dataclass(frozen=True)
class ReplayConfig:
    """Replay buffer and DFS sampling (docs/algorithm.md §DFS sampling)."""

    capacity: int = 100_000
    """Steps held; the oldest are overwritten."""
    batch_size: int = 16
    """World-model windows per update."""
    seq_len: int = 128
    """Length of a world-model window."""
    sampler: Literal["dfs", "uniform"] = "dfs"
    """DFS (Drama) or uniform starts (the ablation)."""
    tau: float = 10.0
    """Temperature of the world-model DFS softmax."""
    imag_tau: float = 10.0
    """Temperature of the imagination DFS softmax."""
    alpha: float = 1.0
    """Weight of b' in the imagination score."""
    beta: float = 1.0
    """Weight of max(0, v - b') in the imagination score."""


@dataclass(frozen=True)
class TrainConfig:
    """Schedule and optimisation (docs/algorithm.md §Training loop and acting)."""

    total_steps: int = 100_000
    """Agent steps with learning: an env step is followed by updates while the steps taken before it are
    <= total_steps (inclusive, as the authors' loop counts) and the buffer is warm."""
    freeze_steps: int = 5_000
    """Extra agent steps with frozen networks so the last episodes finish."""
    warmup_steps: int = 1032
    """Act randomly until the buffer holds more than this many steps."""
    world_model_only_steps: int = 0
    """Steps after the warm-up that still act randomly and update only the world model (no imagination, no
    actor-critic update), so that it learns the game before the policy learns from its dreams; 0: the paper."""
    lr: float = 4e-5
    """LaProp learning rate of the world model, and of the actor-critic times ac_lr_scale."""
    ac_lr_scale: float = 1.0
    """The actor-critic's learning rate as a multiple of lr; 1 = the paper (one rate for both)."""
    eps: float = 1e-20
    """LaProp epsilon."""
    betas: tuple[float, float] = (0.9, 0.999)
    """LaProp betas."""
    weight_decay: float = 0.0
    """LaProp decoupled weight decay, p -= weight_decay * p after each step (v1: 0; Jan-2025 release: 1e-4)."""
    lr_warmup_updates: int = 1000
    """Linear learning-rate warm-up, in updates."""
    update_every: int = 1
    """Env steps per round of updates (world model, imagination, actor-critic); 1 = the paper's replay ratio."""
    wm_grad_clip: float = 1000.0
    """Gradient-norm clip of the world model."""
    ac_grad_clip: float = 100.0
    """Gradient-norm clip of actor and critic."""
    act_context: int = 16
    """Real frames re-run at every acting step (the authors' acting window)."""
    acting_mode: Literal["window", "recurrent"] = "window"
    """window: re-run the last `act_context` steps (official); recurrent: O(1) state updates."""
    checkpoint_every: int = 10_000
    """Agent steps between full training checkpoints."""
    precision: Literal["auto", "fp32", "bf16"] = "auto"
    """bf16 autocast of acting, imagination and both updates, or fp32 (`drama_agent.precision`); auto: bf16
    where the device computes it natively (CUDA; CPUs with AMX-BF16 or AVX512-BF16), else fp32."""
    compile: bool = False
    """torch.compile (inductor) the autoencoder, the reward and termination heads and the actor and critic
    networks in place, when training starts (`drama_agent.compiled`). Off by default: on a 2-core CPU it was
    no faster after about two minutes of compiling (benchmarks/README.md). Needs a C++ compiler on CPU."""


@dataclass(frozen=True)
class DramaConfig:
    """The whole agent. Build with `DramaConfig.preset(name)`."""

    env: EnvConfig = field(default_factory=EnvConfig)
    sequence: SequenceConfig = field(default_factory=SequenceConfig)
    world_model: WorldModelConfig = field(default_factory=WorldModelConfig)
    actor_critic: ActorCriticConfig = field(default_factory=ActorCriticConfig)
    imagination: ImaginationConfig = field(default_factory=ImaginationConfig)
    replay: ReplayConfig = field(default_factory=ReplayConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    seed: int = 0
    """Run seed."""

    def __post_init__(self) -> None:
        validate(self)

    @staticmethod
    def preset(name: str) -> DramaConfig:
        """`xs` (the paper's agent), `s` (wider autoencoder, d_state 32), `cpu` (sized and scheduled for a
        2-core CPU; see `drama_agent.presets`) or `debug` (tiny, for tests)."""
        from drama_agent.presets import PRESETS  # the presets are built from this module's classes

        if name not in PRESETS:
            raise ValueError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}")
        return PRESETS[name]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @staticmethod
    def from_dict(data: dict[str, Any]) -> DramaConfig:
        """Inverse of `to_dict`; unknown or missing keys are errors that name them.

        A config written before a field of `LEGACY_VALUES` existed gets the value that reproduces how it ran;
        configs saved before `train.precision` existed carry `train.bf16` (bf16 autocast on CUDA only): True loads
        as precision "auto", False as "fp32".
        """
        data = dict(data)
        for (section, name), value in LEGACY_VALUES.items():
            if isinstance(data.get(section), dict) and name not in data[section]:
                data[section] = {**data[section], name: value}
        train = data.get("train")
        if isinstance(train, dict) and "bf16" in train and "precision" not in train:
            legacy = {k: v for k, v in train.items() if k != "bf16"}
            data = {**data, "train": {**legacy, "precision": "auto" if train["bf16"] else "fp32"}}
        return _build(DramaConfig, data, "config")

    def replace_path(self, dotted: str, value: Any) -> DramaConfig:
        """Return a copy with one field replaced, e.g. `cfg.replace_path("train.lr", 1e-4)`."""
        return self.replace_paths({dotted: value})

    def replace_paths(self, changes: dict[str, Any]) -> DramaConfig:
        """Return a copy with several fields replaced at once, validated together (so fields that must agree,
        such as encoder channels and strides, can change in one call)."""
        top: dict[str, Any] = {}
        sections: dict[str, dict[str, Any]] = {}
        names = {f.name for f in dataclasses.fields(self)}
        for dotted, value in changes.items():
            head, _, rest = dotted.partition(".")
            if head not in names:
                raise ValueError(f"unknown config field {dotted!r}")
            if not rest:
                top[head] = value
                continue
            section = getattr(self, head)
            if not dataclasses.is_dataclass(section) or rest not in {f.name for f in dataclasses.fields(section)}:
                raise ValueError(f"unknown config field {dotted!r}")
            sections.setdefault(head, {})[rest] = value
        for head, fields in sections.items():
            top[head] = dataclasses.replace(getattr(self, head), **fields)
        return dataclasses.replace(self, **top)


LEGACY_VALUES: dict[tuple[str, str], Any] = {
    ("env", "life_loss_rule"): "any_drop",
    ("env", "auto_fire"): False,
    ("env", "resize"): "area",
    ("sequence", "stem_norm_eps"): 1e-5,
    ("sequence", "mamba_ssm_init"): False,
    ("actor_critic", "obs_norm_update"): "loss_only",
    ("train", "compile"): False,
    ("train", "world_model_only_steps"): 0,
    ("train", "ac_lr_scale"): 1.0,
}
"""Fields added after the first release, with the behaviour configs (checkpoints, run dirs) saved before had."""


def _build(cls: type, data: dict[str, Any], where: str) -> Any:
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = set(data) - set(fields)
    missing = set(fields) - set(data)
    if unknown or missing:
        raise ValueError(f"{where}: unknown keys {sorted(unknown)}, missing keys {sorted(missing)}")
    kwargs = {}
    for name, f in fields.items():
        value = data[name]
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        if dataclasses.is_dataclass(default):
            value = _build(type(default), value, f"{where}.{name}")
        elif isinstance(default, tuple):
            value = tuple(value)
        kwargs[name] = value
    return cls(**kwargs)

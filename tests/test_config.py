"""DramaConfig is validated when it is built: a bad value fails at once, naming its field."""

import pytest

from drama_agent import DramaConfig

DEBUG = DramaConfig.preset("debug")


@pytest.mark.parametrize("name", ["xs", "s", "debug", "cpu"])
def test_presets_are_valid_and_round_trip(name):
    cfg = DramaConfig.preset(name)
    assert DramaConfig.from_dict(cfg.to_dict()) == cfg


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("train.acting_mode", "windw", r"train\.acting_mode: must be one of 'window', 'recurrent'"),
        ("replay.sampler", "DFS", r"replay\.sampler: must be one of 'dfs', 'uniform'"),
        ("sequence.backbone", "mamba3", r"sequence\.backbone"),
        ("imagination.horizon", 0, r"imagination\.horizon: must be >= 1, got 0"),
        ("replay.batch_size", -2, r"replay\.batch_size: must be >= 1"),
        ("replay.seq_len", 10_000, r"replay\.seq_len: must fit in replay\.capacity=5000"),
        ("train.warmup_steps", 3, r"train\.warmup_steps: must be >= 16: .* 2 distinct windows of 16 steps"),
        ("train.warmup_steps", 20, r"train\.warmup_steps: must be >= 34: .* 32 distinct windows of 4 steps"),
        ("train.world_model_only_steps", -1, r"train\.world_model_only_steps: must be >= 0, got -1"),
        ("train.world_model_only_steps", 4950, r"train\.world_model_only_steps: .* below replay\.capacity=5000"),
        ("sequence.headdim", 24, r"sequence\.headdim: must divide"),
        ("actor_critic.gamma", 1.5, r"actor_critic\.gamma: must be in \[0, 1\]"),
        ("train.lr", float("nan"), r"train\.lr: must be a finite number"),
        ("train.precision", "fp16", r"train\.precision: must be one of 'auto', 'fp32', 'bf16'"),
    ],
)
def test_a_bad_field_fails_when_the_config_is_built(field, value, message):
    with pytest.raises(ValueError, match=message):
        DEBUG.replace_path(field, value)


def test_a_bad_field_in_a_saved_config_fails_on_loading():
    data = DEBUG.to_dict()
    data["imagination"]["horizon"] = 0
    with pytest.raises(ValueError, match=r"imagination\.horizon"):
        DramaConfig.from_dict(data)


def test_command_line_overrides_are_validated_together():
    """Fields that must agree (encoder channels and strides) change in one drama-train command line."""
    from drama_agent.cli.config_args import apply_config_arguments
    from drama_agent.cli.train import build_parser

    argv = ["--game", "Catch", "--world_model.encoder_channels", "8,16,16", "--world_model.encoder_strides", "1,2,2"]
    cfg = apply_config_arguments(DEBUG, build_parser().parse_args(argv))
    assert cfg.world_model.encoder_channels == (8, 16, 16) and cfg.world_model.encoder_strides == (1, 2, 2)
    with pytest.raises(ValueError, match=r"encoder_strides"):  # one at a time, the first change is refused
        DEBUG.replace_path("world_model.encoder_channels", (8, 16, 16))


def test_configs_saved_with_the_old_bf16_flag_load_as_a_precision():
    for old, precision in ((True, "auto"), (False, "fp32")):
        data = DEBUG.to_dict()
        del data["train"]["precision"]
        data["train"]["bf16"] = old
        assert DramaConfig.from_dict(data) == DEBUG.replace_path("train.precision", precision)

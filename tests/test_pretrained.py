"""save_pretrained / from_pretrained through DramaAgent: round trip, shipped checkpoints, clear errors."""

import json

import numpy as np
import pytest
import torch

from drama_agent import DramaAgent, DramaConfig, make_env
from drama_agent.checkpoint import CheckpointFormatError
from drama_agent.cpu import matmul_kernels
from drama_agent.hub import CheckpointNotFoundError, shipped_checkpoints_dir
from drama_agent.model_card import parse_model_card
from drama_agent.precision import resolve_precision

DEBUG = DramaConfig.preset("debug")


def trained_a_little() -> DramaAgent:
    cfg = DEBUG.replace_path("train.warmup_steps", 40)
    agent = DramaAgent(cfg, env=make_env("Catch", cfg.env, seed=0), device="cpu")
    agent.learn(45)  # a few updates, so weights and normaliser statistics are not the initial ones
    return agent


def observations(n: int = 12) -> list[np.ndarray]:
    env = make_env("Catch", DEBUG.env, seed=3)
    obs, _ = env.reset()
    frames = [obs]
    for i in range(n - 1):
        frames.append(env.step(i % 3)[0])
    return frames


def test_saving_a_loaded_agent_keeps_its_training_steps_and_adds_new_ones(tmp_path):
    shipped = json.loads((shipped_checkpoints_dir() / "drama-debug-catch" / "config.json").read_text("utf-8"))
    loaded = DramaAgent.from_pretrained("drama-debug-catch", device="cpu", local_files_only=True)
    saved = json.loads((loaded.save_pretrained(tmp_path / "again") / "config.json").read_text("utf-8"))
    assert shipped["steps_trained"] > 0 and saved["steps_trained"] == shipped["steps_trained"]
    _, body = parse_model_card((tmp_path / "again" / "README.md").read_text("utf-8"))
    assert f"- environment steps trained: {shipped['steps_trained']:,}" in body
    tuned = DramaAgent.from_pretrained(
        "drama-debug-catch", device="cpu", env=make_env("Catch", DEBUG.env, seed=0), local_files_only=True
    )
    tuned.learn(7)
    assert tuned.steps_trained == shipped["steps_trained"] + 7


def test_resaving_a_shipped_bf16_agent_keeps_its_weight_bytes_and_action_names(tmp_path):
    shipped = shipped_checkpoints_dir() / "drama-cpu-breakout"
    loaded = DramaAgent.from_pretrained("drama-cpu-breakout", device="cpu", local_files_only=True)
    again = loaded.save_pretrained(tmp_path / "again", weights_dtype=torch.bfloat16)
    assert (again / "model.safetensors").read_bytes() == (shipped / "model.safetensors").read_bytes()
    config = json.loads((again / "config.json").read_text("utf-8"))
    assert config["action_meanings"] == ["NOOP", "FIRE", "RIGHT", "LEFT"]


def test_round_trip_gives_identical_weights_config_and_actions(tmp_path):
    agent = trained_a_little()
    evaluation = {"mean": -1.5, "std": 0.5, "returns": [-1.0, -2.0], "lengths": [35, 35], "hns": None, "episodes": 2}
    agent.save_pretrained(tmp_path / "ckpt", evaluation=evaluation)
    loaded = DramaAgent.from_pretrained(str(tmp_path / "ckpt"), device="cpu")
    assert loaded.cfg == agent.cfg and loaded.env_id == "drama_agent/Catch-v0" and loaded.num_actions == 3
    for mine, theirs in ((agent.world_model, loaded.world_model), (agent.actor_critic, loaded.actor_critic)):
        a, b = mine.state_dict(), theirs.state_dict()
        assert a.keys() == b.keys()
        assert all(torch.equal(a[k], b[k]) for k in a)
    assert agent.actor_critic.actor.normalizer.count.item() > 1.0  # the statistics travel with the weights
    for each in (agent, loaded):  # the same random first action and latent samples for both
        each.random.acting_actions, each.random.acting = np.random.default_rng(4), torch.Generator().manual_seed(11)
        each.reset()
    frames = observations()
    mine = [agent.act(o, deterministic=True) for o in frames]
    theirs = [loaded.act(o, deterministic=True) for o in frames]
    assert mine == theirs
    meta, body = parse_model_card((tmp_path / "ckpt" / "README.md").read_text(encoding="utf-8"))
    assert meta["library_name"] == "drama-agent"
    assert meta["model-index"][0]["results"][0]["metrics"][0]["value"] == "-1.50 ± 0.50"
    assert "45" in body  # steps trained


def test_loading_errors_say_what_is_wrong(tmp_path):
    agent = trained_a_little()
    folder = agent.save_pretrained(tmp_path / "ckpt")
    with pytest.raises(ValueError, match=r"trained on drama_agent/Catch-v0 with 3 actions.*Discrete\(6\)"):
        DramaAgent.from_pretrained(str(folder), env=make_env("Pong", DEBUG.env), device="cpu")

    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps(config | {"format_version": 99}))
    with pytest.raises(CheckpointFormatError, match="format_version 99"):
        DramaAgent.from_pretrained(str(folder), device="cpu")
    (folder / "config.json").write_text(json.dumps(config))

    weights = (folder / "model.safetensors").read_bytes()
    (folder / "model.safetensors").write_bytes(weights[: len(weights) // 3])
    with pytest.raises(CheckpointFormatError, match="does not match the SHA-256 recorded in config.json"):
        DramaAgent.from_pretrained(str(folder), device="cpu")
    unhashed = {k: v for k, v in config.items() if k != "model_sha256"}  # a folder without the hash: format checks
    (folder / "config.json").write_text(json.dumps(unhashed))
    with pytest.raises(CheckpointFormatError, match="truncated or corrupt"):
        DramaAgent.from_pretrained(str(folder), device="cpu")

    from safetensors.torch import save_file

    tensors = {f"world_model.{k}": v for k, v in agent.world_model.state_dict().items()}
    tensors |= {f"actor_critic.{k}": v for k, v in agent.actor_critic.state_dict().items()}
    del tensors["actor_critic.actor.normalizer.mean"]
    tensors["world_model.extra.weight"] = torch.zeros(1)
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(folder / "model.safetensors"))
    with pytest.raises(CheckpointFormatError, match=r"unexpected keys.*world_model\.extra\.weight"):
        DramaAgent.from_pretrained(str(folder), device="cpu")
    del tensors["world_model.extra.weight"]
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(folder / "model.safetensors"))
    with pytest.raises(CheckpointFormatError, match=r"missing keys.*actor_critic\.actor\.normalizer\.mean"):
        DramaAgent.from_pretrained(str(folder), device="cpu")

    with pytest.raises(CheckpointNotFoundError, match="drama-train --game Pong --preset xs"):
        DramaAgent.from_pretrained("drama-xs-pong", device="cpu")


def test_a_flipped_weight_byte_and_an_undeclared_dtype_are_refused(tmp_path):
    from safetensors.torch import load_file, save_file

    from drama_agent.checkpoint import file_sha256

    agent = trained_a_little()
    folder = agent.save_pretrained(tmp_path / "ckpt")
    config = json.loads((folder / "config.json").read_text())
    assert config["model_sha256"] == file_sha256(folder / "model.safetensors")
    weights = bytearray((folder / "model.safetensors").read_bytes())
    weights[len(weights) // 2] ^= 0x01  # one bit inside the tensor data: still a readable safetensors file
    (folder / "model.safetensors").write_bytes(bytes(weights))
    with pytest.raises(CheckpointFormatError, match=f"{folder / 'model.safetensors'} does not match the SHA-256"):
        DramaAgent.from_pretrained(str(folder), device="cpu")

    agent.save_pretrained(folder)
    tensors = load_file(str(folder / "model.safetensors"))
    half = {k: v.bfloat16() if v.dtype == torch.float32 else v for k, v in tensors.items()}  # a smaller download
    save_file(half, str(folder / "model.safetensors"))
    config = json.loads((folder / "config.json").read_text())
    config["model_sha256"] = file_sha256(folder / "model.safetensors")
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointFormatError, match=r"dtype mismatches .*checkpoint torch.bfloat16 vs model torch"):
        DramaAgent.from_pretrained(str(folder), device="cpu")
    (folder / "config.json").write_text(json.dumps(config | {"weights_dtype": "bfloat16"}))
    loaded = DramaAgent.from_pretrained(str(folder), device="cpu")  # declared: cast up on load
    for key, value in loaded.world_model.state_dict().items():
        assert value.dtype == tensors[f"world_model.{key}"].dtype
        assert torch.equal(value, half[f"world_model.{key}"].to(value.dtype))


def test_weights_saved_in_bfloat16_take_half_the_space_and_load_as_their_rounding(tmp_path):
    agent = trained_a_little()
    full = agent.save_pretrained(tmp_path / "fp32")
    half = agent.save_pretrained(tmp_path / "bf16", weights_dtype=torch.bfloat16)
    assert json.loads((half / "config.json").read_text())["weights_dtype"] == "bfloat16"
    size_full, size_half = ((f / "model.safetensors").stat().st_size for f in (full, half))
    assert 0.45 < size_half / size_full < 0.55
    loaded = DramaAgent.from_pretrained(str(half), device="cpu")
    for mine, theirs in ((agent.world_model, loaded.world_model), (agent.actor_critic, loaded.actor_critic)):
        original = mine.state_dict()
        for key, value in theirs.state_dict().items():
            assert value.dtype == original[key].dtype
            expected = original[key].bfloat16().to(value.dtype) if value.is_floating_point() else original[key]
            assert torch.equal(value, expected), key


def test_save_pretrained_on_a_full_disk_leaves_the_old_folder_intact(tmp_path, small_disk):
    agent = trained_a_little()
    size = len(agent.save_pretrained(tmp_path / "probe").joinpath("model.safetensors").read_bytes())
    disk = small_disk(str(int(size * 1.6)))  # room for one folder, not for a second one beside it
    folder = agent.save_pretrained(disk / "agent")
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    agent.learn(2)  # new weights and step count
    with pytest.raises(OSError, match=rf"^could not write {folder}: No space left on device \(.* free there\)$"):
        agent.save_pretrained(folder)
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    assert sorted(p.name for p in disk.iterdir()) == ["agent"]
    assert DramaAgent.from_pretrained(str(folder), device="cpu").pretrained_info["steps_trained"] == 45


def shipped() -> list[str]:
    root = shipped_checkpoints_dir()
    return sorted(p.name for p in root.iterdir() if (p / "config.json").is_file()) if root.is_dir() else []


def test_a_shipped_checkpoint_loads_by_name_offline_and_plays(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    names = shipped()
    assert "drama-debug-catch" in names
    agent = DramaAgent.from_pretrained("drama-debug-catch", device="cpu")
    card, _ = parse_model_card((shipped_checkpoints_dir() / "drama-debug-catch" / "README.md").read_text("utf-8"))
    claimed = json.loads((shipped_checkpoints_dir() / "drama-debug-catch" / "eval.json").read_text())
    assert card["model-index"][0]["results"][0]["metrics"][0]["value"].startswith(f"{claimed['mean']:.2f}")
    result = agent.evaluate(make_env(agent.env_id, agent.cfg.env, seed=claimed["seed"]), n_episodes=5)
    assert result["mean"] == pytest.approx(np.mean(claimed["returns"][:5]))


# name -> (game, env.resize it was trained with: drama-cpu-pong with the `max` override of the preset's `area`)
CPU_AGENTS = {"drama-cpu-pong": ("ALE/Pong-v5", "max"), "drama-cpu-breakout": ("ALE/Breakout-v5", "area")}


@pytest.mark.slow
@pytest.mark.parametrize(("name", "env_id", "resize"), [(name, *spec) for name, spec in CPU_AGENTS.items()])
def test_a_shipped_cpu_agent_loads_by_name_offline_and_replays_its_first_evaluation_episode(
    monkeypatch, name, env_id, resize
):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    agent = DramaAgent.from_pretrained(name, device="cpu", local_files_only=True)
    preset = DramaConfig.preset("cpu").replace_path("env.resize", resize)
    for section in ("env", "sequence", "world_model", "actor_critic", "imagination", "replay"):
        assert getattr(agent.cfg, section) == getattr(preset, section), section
    assert (agent.env_id, agent.obs_shape) == (env_id, (48, 48, 3))
    env = make_env(agent.env_id, agent.cfg.env, seed=0)
    assert agent.num_actions == env.action_space.n
    claimed = json.loads((shipped_checkpoints_dir() / name / "eval.json").read_text())
    assert claimed["episodes"] >= 30
    config = json.loads((shipped_checkpoints_dir() / name / "config.json").read_text())
    assert config["action_meanings"] == env.unwrapped.get_action_meanings()
    _, card = parse_model_card((shipped_checkpoints_dir() / name / "README.md").read_text("utf-8"))
    assert "## Dream quality" in card and f"{claimed['mean']:.2f}" in card
    here = resolve_precision("auto", "cpu").name
    if claimed["precision"] != here:
        pytest.skip(f"the evaluation ran in {claimed['precision']}, this CPU's auto choice is {here}: no exact replay")
    if claimed.get("kernels", matmul_kernels()) != matmul_kernels():
        pytest.skip(f"the evaluation ran on {claimed['kernels']} kernels, this CPU has {matmul_kernels()}")
    env = make_env(agent.env_id, agent.cfg.env, seed=claimed["seed"])
    first = agent.evaluate(env, n_episodes=1, deterministic=claimed["deterministic"])
    assert (first["returns"][0], first["lengths"][0]) == (claimed["returns"][0], claimed["lengths"][0])


def test_drama_train_weights_dtype_bfloat16_evaluates_and_saves_the_rounded_agent(tmp_path):
    from drama_agent.cli.train import main

    run = tmp_path / "run"
    argv = ["--game", "Catch", "--preset", "debug", "--steps", "90", "--run-dir", str(run), "--no-progress"]
    argv += ["--eval-episodes", "2", "--weights-dtype", "bfloat16"]
    assert main(argv) == 0
    folder = run / "pretrained"
    config = json.loads((folder / "config.json").read_text())
    assert config["weights_dtype"] == "bfloat16"
    loaded = DramaAgent.from_pretrained(str(folder), device="cpu")
    again = loaded.evaluate(make_env("Catch", loaded.cfg.env, seed=loaded.cfg.seed + 10_000), n_episodes=2)
    assert again["returns"] == config["evaluation"]["returns"]  # the card's score is the saved (rounded) agent's

"""Checkpoint resolution, loading, model cards and Hub transfers (drama_agent.hub), all offline.

Hub traffic goes to the loopback server of `hub_server.py`. huggingface_hub reads HF_ENDPOINT and
HF_HUB_OFFLINE when it is imported, so every test that needs them runs the client in a subprocess.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import torch
from hub_server import HubServer
from safetensors.torch import save_file

import drama_agent
from drama_agent.checkpoint import (
    FORMAT_VERSION,
    CheckpointFormatError,
    load_checkpoint_tensors,
    read_checkpoint_config,
    strict_load,
)
from drama_agent.hub import CheckpointNotFoundError, resolve_checkpoint, shipped_checkpoints_dir
from drama_agent.model_card import model_card, parse_model_card

REPO_ROOT = Path(__file__).resolve().parent.parent
FILES = ("config.json", "model.safetensors", "README.md")


def card_meta(**changes) -> dict:
    meta = {
        "name": "drama-debug-catch",
        "game": "Catch",
        "env_id": "catch",
        "preset": "debug",
        "steps_trained": 20_000,
        "eval": {"mean": 17.25, "std": 3.5, "episodes": 100, "hns": None, "protocol": "greedy actions, seeds 0-99."},
        "parameter_counts": {"world_model": 1_234_567, "actor": 4_321, "critic": 4_322},
        "limits": ["Trained with one seed.", "Catch only."],
        "package_version": "0.1.0",
    }
    return meta | changes


def make_checkpoint(folder: Path, seed: int, gif: bool = False) -> dict[str, bytes]:
    """Write a checkpoint folder by hand (about 1 MiB of weights); return its files' bytes."""
    folder.mkdir(parents=True, exist_ok=True)
    gen = torch.Generator().manual_seed(seed)
    tensors = {"world_model.big": torch.randn(256, 1024, generator=gen), "actor.0.weight": torch.randn(3, 4)}
    save_file(tensors, str(folder / "model.safetensors"))
    config = {"format_version": FORMAT_VERSION, "package_version": "0.1.0", "env_id": "catch", "seed": seed}
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "README.md").write_text(model_card(card_meta()), encoding="utf-8")
    if gif:
        frames = np.random.default_rng(seed).integers(0, 255, size=(3, 16, 16, 3), dtype=np.uint8)
        iio.imwrite(folder / "rollout.gif", frames, extension=".gif")
    return {p.name: p.read_bytes() for p in folder.iterdir()}


def folder_bytes(folder: str | Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in Path(folder).iterdir()}


def run_client(code: str, tmp_path: Path, **env_extra: str) -> dict:
    """Run `code` (after a prelude importing drama_agent.hub) in a fresh interpreter; return its JSON output."""
    prelude = """
        import json, sys
        from drama_agent.checkpoint import CheckpointFormatError
        from drama_agent.hub import CheckpointNotFoundError, push_to_hub, resolve_checkpoint

        def not_found(*args, **kwargs):
            try:
                resolve_checkpoint(*args, **kwargs)
            except (CheckpointNotFoundError, CheckpointFormatError) as err:
                return str(err)
            raise AssertionError("resolved")
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "DRAMA_")) and "PROXY" not in k.upper()}
    env |= {
        "HF_HOME": str(tmp_path / "hf_home"),
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "HF_HUB_DISABLE_PROGRESS_BARS": "1",
        "NO_PROXY": "127.0.0.1",
        "OMP_NUM_THREADS": "1",
        "DRAMA_CHECKPOINTS_DIR": str(tmp_path / "no_shipped"),
        "PYTHONPATH": str(REPO_ROOT),
    } | env_extra
    script = textwrap.dedent(prelude) + textwrap.dedent(code)
    proc = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_resolves_a_local_folder_path(tmp_path):
    files = make_checkpoint(tmp_path / "run" / "pretrained", seed=0)
    folder = resolve_checkpoint(str(tmp_path / "run" / "pretrained"))
    assert folder == tmp_path / "run" / "pretrained"
    assert folder_bytes(folder) == files
    assert read_checkpoint_config(folder)["seed"] == 0
    tensors = load_checkpoint_tensors(folder)
    assert tensors["world_model.big"].shape == (256, 1024)
    assert torch.equal(tensors["world_model.big"], torch.randn(256, 1024, generator=torch.Generator().manual_seed(0)))


def test_resolves_a_shipped_checkpoint_by_name_after_a_local_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("DRAMA_CHECKPOINTS_DIR", str(tmp_path / "shipped"))
    monkeypatch.delenv("DRAMA_HUB_ORG", raising=False)
    shipped = make_checkpoint(tmp_path / "shipped" / "drama-debug-catch", seed=1)
    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")
    assert resolve_checkpoint("drama-debug-catch") == tmp_path / "shipped" / "drama-debug-catch"
    assert folder_bytes(resolve_checkpoint("drama-debug-catch")) == shipped
    make_checkpoint(tmp_path / "cwd" / "drama-debug-catch", seed=2)
    assert resolve_checkpoint("drama-debug-catch") == Path("drama-debug-catch")
    assert read_checkpoint_config(resolve_checkpoint("drama-debug-catch"))["seed"] == 2


def test_shipped_dir_defaults_to_checkpoints_beside_the_package(monkeypatch):
    monkeypatch.delenv("DRAMA_CHECKPOINTS_DIR", raising=False)
    assert shipped_checkpoints_dir() == Path(drama_agent.__file__).resolve().parent.parent / "checkpoints"
    monkeypatch.setenv("DRAMA_CHECKPOINTS_DIR", "/some/where")
    assert shipped_checkpoints_dir() == Path("/some/where")


def test_resolves_from_a_hand_built_cache_with_hf_hub_offline(tmp_path):
    sha = "a" * 40
    snapshot = tmp_path / "cache" / "models--org--drama-debug-catch" / "snapshots" / sha
    files = make_checkpoint(snapshot, seed=3)
    (snapshot.parent.parent / "refs").mkdir()
    (snapshot.parent.parent / "refs" / "main").write_text(sha)
    with HubServer(tmp_path / "hub", lifetime_s=60) as hub:
        out = run_client(
            f"""
            cache = {str(tmp_path / "cache")!r}
            print(json.dumps({{
                "full": str(resolve_checkpoint("org/drama-debug-catch", cache_dir=cache)),
                "bare": str(resolve_checkpoint("drama-debug-catch", cache_dir=cache)),
                "sha": str(resolve_checkpoint("org/drama-debug-catch", revision="{sha}", cache_dir=cache)),
                "absent": not_found("org/absent", cache_dir=cache),
            }}))
            """,
            tmp_path,
            HF_HUB_OFFLINE="1",
            HF_ENDPOINT=hub.endpoint,
            DRAMA_HUB_ORG="org",
        )
        assert hub.requests == []  # offline means not one request, even with a reachable endpoint
    assert Path(out["full"]) == Path(out["bare"]) == Path(out["sha"]) == snapshot.resolve()
    assert folder_bytes(out["full"]) == files
    assert "Hugging Face Hub repo org/absent (revision main): not in the huggingface_hub cache" in out["absent"]
    assert "HF_HUB_OFFLINE=1 forbids downloading" in out["absent"]


def test_downloads_from_a_loopback_hub_by_branch_and_by_commit(tmp_path):
    old = make_checkpoint(tmp_path / "v1", seed=4, gif=True)
    new = make_checkpoint(tmp_path / "v2", seed=5)
    with HubServer(tmp_path / "hub", lifetime_s=60) as hub:
        first = hub.store.add_files("org/drama-debug-catch", old | {"notes.txt": b"not a checkpoint file"})
        second = hub.store.add_files("org/drama-debug-catch", new | {"rollout.gif": old["rollout.gif"]})
        hub.store.add_files("org/card-only", {"README.md": new["README.md"]})
        out = run_client(
            f"""
            print(json.dumps({{
                "main": str(resolve_checkpoint("org/drama-debug-catch", revision="main", cache_dir="c1")),
                "sha": str(resolve_checkpoint("org/drama-debug-catch", revision="{first}", cache_dir="c1")),
                "bare": str(resolve_checkpoint("drama-debug-catch")),
                "no_repo": not_found("org/absent"),
                "no_rev": not_found("org/drama-debug-catch", revision="nope"),
                "no_weights": not_found("org/card-only"),
            }}))
            """,
            tmp_path,
            HF_ENDPOINT=hub.endpoint,
            DRAMA_HUB_ORG="org",
        )
        requests = list(hub.requests)
        assert hub.errors == []
    assert Path(out["main"]).name == second and Path(out["sha"]).name == first
    assert folder_bytes(out["main"]) == new | {"rollout.gif": old["rollout.gif"]}  # no .gitattributes, no notes
    assert folder_bytes(out["sha"]) == old
    assert folder_bytes(out["bare"]) == folder_bytes(out["main"])
    weights_sha256 = hashlib.sha256(new["model.safetensors"]).hexdigest()
    assert ("cdn", "GET", f"/lfs/{weights_sha256}") in requests  # LFS files come from the CDN after a 302
    assert not any("xet" in path.lower() for _, _, path in requests)
    assert "org/absent (revision main): no such repo at http://127.0.0.1" in out["no_repo"]
    assert "(HTTP 404)" in out["no_repo"]
    assert "(revision nope): that revision does not exist in the repo (HTTP 404)" in out["no_rev"]
    assert out["no_weights"] == (
        "Hugging Face Hub repo org/card-only (revision main) is not a drama-agent checkpoint: "
        "it has no config.json, model.safetensors"
    )


def test_local_files_only_uses_the_cache_and_never_downloads(tmp_path):
    sha = "b" * 40
    snapshot = tmp_path / "cache" / "models--org--cached" / "snapshots" / sha
    files = make_checkpoint(snapshot, seed=9)
    (snapshot.parent.parent / "refs").mkdir()
    (snapshot.parent.parent / "refs" / "main").write_text(sha)
    cache = str(tmp_path / "cache")
    folder = resolve_checkpoint("org/cached", local_files_only=True, cache_dir=cache)
    assert folder == snapshot.resolve() and folder_bytes(folder) == files
    with pytest.raises(CheckpointNotFoundError) as info:
        resolve_checkpoint("org/never", local_files_only=True, cache_dir=cache)
    assert str(info.value).splitlines()[-2] == (
        f"  2. Hugging Face Hub repo org/never (revision main): not in the huggingface_hub cache ({cache}) "
        "and local_files_only=True forbids downloading"
    )


def test_push_to_hub_uploads_the_folder_byte_for_byte_and_downloads_it_back(tmp_path):
    files = make_checkpoint(tmp_path / "ckpt", seed=6, gif=True)
    (tmp_path / "ckpt" / "scratch.txt").write_text("not part of a checkpoint")
    with HubServer(tmp_path / "hub", token="hf_test", lifetime_s=60) as hub:
        out = run_client(
            f"""
            folder = {str(tmp_path / "ckpt")!r}
            first = push_to_hub(folder, "org/pushed", token="hf_test")
            again = push_to_hub(folder, "org/pushed", token="hf_test")
            branch = push_to_hub(folder, "pushed-branch", token="hf_test", revision="v1")
            private = push_to_hub(folder, "org/secret", token="hf_test", private=True)
            try:
                push_to_hub(folder, "org/other", token=None)
                no_token = "pushed"
            except Exception as err:
                no_token = type(err).__name__ + ": " + str(err).splitlines()[0]
            print(json.dumps({{
                "first": first, "again": again, "branch": branch, "private": private, "no_token": no_token,
                "back": str(resolve_checkpoint("org/pushed", cache_dir="c")),
                "back_branch": str(resolve_checkpoint("org/pushed-branch", revision="v1", cache_dir="c")),
                "secret": not_found("org/secret", cache_dir="c"),
            }}))
            """,
            tmp_path,
            HF_ENDPOINT=hub.endpoint,
            HF_HUB_DISABLE_XET="1",
            DRAMA_HUB_ORG="org",
        )
        store = hub.store
        head = store.resolve("org/pushed", "main")
        arrived = {path: store.read_file("org/pushed", "main", path) for path in store.files("org/pushed", head)}
        modes = {path: entry["lfs"] for path, entry in store.files("org/pushed", head).items()}
        requests = list(hub.requests)
        assert hub.errors == []
        assert store.repos["org/secret"]["private"] and not store.repos["org/pushed"]["private"]
        assert store.read_file("org/pushed-branch", "v1", "model.safetensors") == files["model.safetensors"]
    assert arrived == files | {".gitattributes": arrived[".gitattributes"]}  # scratch.txt is not pushed
    assert modes == {
        ".gitattributes": False,
        "config.json": False,
        "README.md": False,
        "model.safetensors": True,
        "rollout.gif": True,
    }
    weights_sha256 = hashlib.sha256(files["model.safetensors"]).hexdigest()
    assert ("cdn", "PUT", f"/upload/{weights_sha256}") in requests
    assert ("hub", "POST", "/org/pushed.git/info/lfs/objects/batch") in requests
    assert not any("xet" in path.lower() for _, _, path in requests)
    assert out["first"] == f"{hub.endpoint}/org/pushed/commit/{head}"
    assert out["again"] == out["first"]  # nothing changed: no new commit
    assert out["no_token"].startswith("HfHubHTTPError: Client error '401 Unauthorized' for url")
    assert folder_bytes(out["back"]) == files
    assert folder_bytes(out["back_branch"]) == files
    assert "org/secret (revision main): no such repo" in out["secret"] and "private" in out["secret"]


def test_model_card_is_yaml_front_matter_plus_markdown_with_the_numbers():
    meta = card_meta(
        name="drama-xs-pong",
        game="Pong",
        env_id="ALE/Pong-v5",
        preset="xs",
        steps_trained=100_000,
        eval={"mean": 17.25, "std": 3.5, "episodes": 100, "hns": 0.43219, "protocol": "sticky actions, 100 seeds."},
    )
    front, body = parse_model_card(model_card(meta))
    assert front["library_name"] == "drama-agent"
    assert front["tags"] == ["reinforcement-learning", "model-based-rl", "drama", "mamba2", "atari", "Pong"]
    (entry,) = front["model-index"]
    (result,) = entry["results"]
    assert entry["name"] == "drama-xs-pong"
    assert result["task"]["type"] == "reinforcement-learning"
    assert result["dataset"] == {"name": "Pong", "type": "ALE/Pong-v5"}
    assert [(m["type"], m["value"]) for m in result["metrics"]] == [
        ("mean_reward", "17.25 ± 3.50"),
        ("human_normalized_score", 0.4322),
    ]
    assert body.startswith("# drama-xs-pong\n")
    assert "| 17.25 | 3.50 | 100 | 0.4322 |" in body
    assert "Undiscounted return of 100 evaluation episodes" in body and "sticky actions, 100 seeds." in body
    assert "- environment steps trained: 100,000" in body
    assert "| world_model | 1,234,567 |" in body
    assert "- Trained with one seed.\n- Catch only.\n" in body
    assert 'DramaAgent.from_pretrained("drama-xs-pong")' in body


def test_model_card_without_evaluation_claims_no_score():
    _, body = parse_model_card(model_card(card_meta(eval={"mean": 1.0, "std": 0.0, "episodes": 3})))
    assert "Protocol: not recorded with this checkpoint." in body and "| 1.00 | 0.00 | 3 | n/a |" in body
    front, body = parse_model_card(model_card(card_meta(eval=None, limits=[])))
    assert "model-index" not in front and "atari" not in front["tags"]
    assert "Not evaluated: no score is claimed" in body
    assert "- No limits were recorded for this checkpoint." in body
    assert parse_model_card("# plain\n") == ({}, "# plain\n")
    with pytest.raises(CheckpointFormatError, match="not valid YAML"):
        parse_model_card("---\ntags: [a\n---\nbody")


def test_nothing_resolves_lists_each_place_tried_and_how_to_train_it(tmp_path, monkeypatch):
    monkeypatch.delenv("DRAMA_HUB_ORG", raising=False)
    monkeypatch.setenv("DRAMA_CHECKPOINTS_DIR", str(tmp_path / "shipped"))
    make_checkpoint(tmp_path / "shipped" / "drama-debug-catch", seed=7)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(CheckpointNotFoundError) as info:
        resolve_checkpoint("drama-xs-pong")
    lines = str(info.value).splitlines()
    assert lines[0] == "Could not find the Drama checkpoint 'drama-xs-pong'. Tried, in order:"
    assert lines[1] == f"  1. local folder {tmp_path / 'drama-xs-pong'}: no such directory"
    assert lines[2] == (
        f"  2. shipped checkpoint {tmp_path / 'shipped' / 'drama-xs-pong'}: not there (shipped: drama-debug-catch)"
    )
    assert lines[3].startswith("  3. Hugging Face Hub: not asked, a bare name needs an organisation: set DRAMA_HUB_ORG")
    assert lines[4] == "No checkpoint for Pong is shipped."
    assert "train it with `drama-train --game Pong --preset xs`" in lines[5]
    assert isinstance(info.value, FileNotFoundError) and len(lines) == 6
    make_checkpoint(tmp_path / "shipped" / "drama-cpu-pong", seed=8)
    make_checkpoint(tmp_path / "shipped" / "drama-debug-pong", seed=9)
    with pytest.raises(CheckpointNotFoundError) as info:
        resolve_checkpoint("drama-xs-pong")
    assert str(info.value).splitlines()[4] == "Shipped checkpoints for Pong: drama-cpu-pong, drama-debug-pong."
    with pytest.raises(CheckpointNotFoundError, match="drama-train --game MsPacman --preset s`"):
        resolve_checkpoint("drama-s-ms-pacman")


def test_config_errors_missing_bad_json_and_newer_format_version(tmp_path):
    with pytest.raises(CheckpointFormatError, match="config.json is missing"):
        read_checkpoint_config(tmp_path)
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(CheckpointFormatError, match="config.json is not valid JSON: Expecting property name"):
        read_checkpoint_config(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"seed": 1}))
    with pytest.raises(CheckpointFormatError, match="no valid 'format_version'"):
        read_checkpoint_config(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"format_version": FORMAT_VERSION + 1, "package_version": "9.0"}))
    with pytest.raises(
        CheckpointFormatError, match=rf"format_version {FORMAT_VERSION + 1}, but .* <= {FORMAT_VERSION}"
    ):
        read_checkpoint_config(tmp_path)


@pytest.mark.parametrize("keep_bytes", [5, 600_000])  # inside the header; inside the tensor data
def test_truncated_weights_are_reported_as_corrupt_naming_the_file(tmp_path, keep_bytes):
    make_checkpoint(tmp_path, seed=8)
    path = tmp_path / "model.safetensors"
    path.write_bytes(path.read_bytes()[:keep_bytes])
    with pytest.raises(CheckpointFormatError) as info:
        load_checkpoint_tensors(tmp_path)
    assert str(info.value).startswith(
        f"{path} ({keep_bytes} bytes) is not a readable safetensors file, it is truncated"
    )
    assert info.value.__cause__ is None and info.value.__suppress_context__  # one clear error, no chained trace


def test_missing_weights_are_named_and_pickles_refused(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"format_version": 1}))
    (tmp_path / "pytorch_model.bin").write_bytes(b"\x80\x04pickle")
    with pytest.raises(CheckpointFormatError, match=r"model.safetensors is missing \(found pytorch_model.bin: pickle"):
        load_checkpoint_tensors(tmp_path)
    with pytest.raises(CheckpointFormatError, match=r"is not a drama-agent checkpoint: it has no model.safetensors$"):
        resolve_checkpoint(str(tmp_path))


def test_strict_load_names_missing_unexpected_and_mis_shaped_keys():
    module = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.LayerNorm(3))
    source = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.LayerNorm(3))
    tensors = {f"actor.{k}": v for k, v in source.state_dict().items()} | {"critic.w": torch.zeros(2)}
    strict_load(module, tensors, prefix="actor.")  # keys outside the prefix belong to other modules
    assert all(
        torch.equal(a, b) for a, b in zip(module.state_dict().values(), source.state_dict().values(), strict=True)
    )

    bad = dict(tensors)
    del bad["actor.1.bias"]
    bad["actor.2.weight"] = torch.zeros(3)
    bad["actor.0.weight"] = torch.zeros(5, 4)
    with pytest.raises(CheckpointFormatError) as info:
        strict_load(module, bad, prefix="actor.")
    assert str(info.value) == (
        "checkpoint does not match Sequential (prefix 'actor.'): missing keys (1): actor.1.bias; "
        "unexpected keys (1): actor.2.weight; shape mismatches (1): actor.0.weight: checkpoint (5, 4) vs model (3, 4)"
    )
    compiled = {f"_orig_mod.{k}": v for k, v in source.state_dict().items()}
    with pytest.raises(CheckpointFormatError, match="torch.compile"):
        strict_load(module, compiled)


def test_loopback_hub_stops_by_itself(tmp_path):
    hub = HubServer(tmp_path / "hub", lifetime_s=0.3).start()
    hub.store.add_files("org/x", {"config.json": b"{}"})
    with urllib.request.urlopen(f"{hub.endpoint}/api/models/org/x/revision/main", timeout=5) as response:
        assert json.load(response)["sha"] == hub.store.resolve("org/x", "main")
    time.sleep(0.8)
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(f"{hub.endpoint}/api/models/org/x/revision/main", timeout=5)


def test_a_trained_agent_round_trips_through_the_loopback_hub(tmp_path):
    """DramaAgent.push_to_hub, then DramaAgent.from_pretrained("org/name") in a fresh process: same weights."""
    with HubServer(tmp_path / "hub", token="hf_test", lifetime_s=90) as hub:
        out = run_client(
            """
            import torch
            from safetensors.torch import load_file
            from drama_agent import DramaAgent, DramaConfig, make_env
            cfg = DramaConfig.preset("debug").replace_path("train.warmup_steps", 40)
            agent = DramaAgent(cfg, env=make_env("Catch", cfg.env, seed=0), device="cpu")
            agent.learn(42)
            url = agent.push_to_hub("org/catch-agent", token="hf_test")
            loaded = DramaAgent.from_pretrained("catch-agent", device="cpu")
            same = all(
                torch.equal(a, b)
                for mine, theirs in ((agent.world_model, loaded.world_model), (agent.actor_critic, loaded.actor_critic))
                for a, b in zip(mine.state_dict().values(), theirs.state_dict().values(), strict=True)
            )
            print(json.dumps({"url": url, "same": same, "env_id": loaded.env_id, "steps": loaded.pretrained_info[
                "steps_trained"]}))
            """,
            tmp_path,
            HF_ENDPOINT=hub.endpoint,
            HF_HUB_DISABLE_XET="1",
            DRAMA_HUB_ORG="org",
        )
        assert hub.errors == []
        assert sorted(hub.store.files("org/catch-agent", hub.store.resolve("org/catch-agent", "main"))) == [
            ".gitattributes",
            "README.md",
            "config.json",
            "model.safetensors",
        ]
    assert out == {"url": out["url"], "same": True, "env_id": "drama_agent/Catch-v0", "steps": 42}
    assert out["url"].startswith(f"{hub.endpoint}/org/catch-agent/commit/")


def test_an_atari_card_compares_with_random_and_the_paper_and_says_how_it_was_trained() -> None:
    training = {
        "command": "drama-train --game Pong --preset cpu --seed 0",
        "wall_clock_s": 7185.0,
        "machine": "2-core AMD EPYC",
        "notes": ["Stopped by the 2-hour limit."],
    }
    evaluation = card_meta()["eval"] | {"mean": -12.5, "training": training}
    meta = card_meta(name="drama-cpu-pong", game="Pong", env_id="ALE/Pong-v5", preset="cpu", eval=evaluation)
    _, body = parse_model_card(model_card(meta))
    assert "this agent -12.50, random play -21, Drama XS in the paper 15 " in body
    assert body.count("Drama XS in the paper") == 1  # once, not again under Limits
    unevaluated = card_meta(name="drama-cpu-pong", game="Pong", env_id="ALE/Pong-v5", preset="cpu", eval=None)
    _, body_without_score = parse_model_card(model_card(unevaluated))
    assert "Published Atari100k scores of Pong: random play -21, Drama XS in the paper 15 " in body_without_score
    assert "- training wall-clock: 2 h 00 min (2-core AMD EPYC)" in body
    assert "```bash\ndrama-train --game Pong --preset cpu --seed 0\n```" in body
    assert "- Stopped by the 2-hour limit." in body
    _, plain = parse_model_card(model_card(card_meta()))  # Catch, nothing recorded: neither section
    assert "random play" not in plain and "wall-clock" not in plain

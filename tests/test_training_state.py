"""Training states on disk: checksums, refused values, the previous state as a fallback, full disks."""

from __future__ import annotations

import copy
import json
import os
import random
import signal
import struct
import subprocess
import sys
import textwrap
import time

import pytest
import torch
from safetensors.torch import save_file

from drama_agent import DramaAgent, DramaConfig, make_env
from drama_agent.atomic import WriteError
from drama_agent.serialization import StateFileError, flatten_state, load_state, state_digest
from drama_agent.training_state import (
    PREVIOUS_STATE_FILE,
    STATE_FILE,
    CheckpointFallbackWarning,
    check_fits,
    has_training_state,
    load_training_state,
    remove_stale_temp_files,
    save_training_state,
)

CFG = DramaConfig.preset("debug").replace_path("train.warmup_steps", 36)
WEIGHT = "encoder.net.0.weight"


@pytest.fixture(scope="module")
def run():
    """A real debug agent on Catch and its training state after 40 steps (4 updates) and after 44 steps."""
    agent = DramaAgent(CFG, env=make_env("Catch", CFG.env, seed=0), device="cpu")
    trainer = agent.trainer
    for _ in range(40):
        trainer.step()
    first = copy.deepcopy(trainer.state_dict())
    for _ in range(4):
        trainer.step()
    return agent, first, copy.deepcopy(trainer.state_dict())


def data_region(path) -> tuple[int, int]:
    """(start, end) byte offsets of the tensor data of a safetensors file."""
    (header_len,) = struct.unpack("<Q", path.read_bytes()[:8])
    return 8 + header_len, path.stat().st_size


def flip_byte(path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x10
    path.write_bytes(bytes(data))


def assert_same(a, b) -> None:
    """Two nested states are equal, tensors bit for bit."""
    ta, sa = flatten_state(a)
    tb, sb = flatten_state(b)
    assert sa == sb and ta.keys() == tb.keys()
    assert all(torch.equal(ta[k], tb[k]) for k in ta)


def test_a_flipped_byte_anywhere_is_refused_with_the_file_named(run, tmp_path):
    _, first, _ = run
    path = save_training_state(first, tmp_path)
    assert_same(load_state(path), first)
    good = path.read_bytes()
    start, end = data_region(path)
    for offset in (start, (start + end) // 2, end - 1):  # first, middle (replay frames) and last data byte
        flip_byte(path, offset)
        with pytest.raises(StateFileError, match=f"{path} is damaged: .* SHA-256"):
            load_state(path)
        path.write_bytes(good)
    header = good[:start]
    digit = header.index(b'env_steps\\": ') + len(b'env_steps\\": ')  # the counter's first digit in the metadata
    path.write_bytes(header[:digit] + b"5" + header[digit + 1 :] + good[start:])
    with pytest.raises(StateFileError, match="damaged"):
        load_state(path)


def test_a_tensor_missing_from_the_file_is_named(run, tmp_path):
    _, first, _ = run
    tensors, skeleton = flatten_state(first)
    weight = skeleton["__dict__"]["world_model"]["__dict__"]
    name, ref = next(iter(weight.items()))
    del tensors[ref["__tensor__"]]
    text = json.dumps(skeleton)
    path = tmp_path / STATE_FILE
    save_file(tensors, str(path), metadata={"drama_state": text, "drama_state_sha256": state_digest(tensors, text)})
    with pytest.raises(StateFileError, match=f"{path} lacks the tensor of world_model/{name}$"):
        load_state(path)


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda s: s["world_model"][WEIGHT][0, 0, 0, 3].fill_(float("nan")), f"non-finite .* in world_model/{WEIGHT}$"),
        (lambda s: s["counters"].update(episode_return=float("inf")), "non-finite .* in counters/episode_return$"),
        (lambda s: s["counters"].update(env_steps=-50), r"impossible counter: env_steps = -50"),
        (lambda s: s["counters"].update(updates=45), r"disagree: updates = 45 > the replay's total_added = 40"),
        (lambda s: s["replay"].update(total_added=39), "disagree: env_steps = 40 > the replay's total_added = 39"),
        (lambda s: s["counters"].update(episode_length=41), "disagree: episode_length = 41 > env_steps = 40"),
        (lambda s: s["wm_schedule"].update(last_epoch=5), "disagree: the wm_schedule made 5 steps but updates = 4"),
        (lambda s: s["ac_optim"].update(state={}), "empty ac_optim state after 4 updates"),
    ],
)
def test_impossible_states_are_refused_with_one_sentence(run, tmp_path, damage, message):
    _, first, _ = run
    state = copy.deepcopy(first)
    damage(state)
    save_training_state(state, tmp_path)
    with pytest.raises(StateFileError, match=message) as err:
        load_training_state(tmp_path)
    assert str(tmp_path / STATE_FILE) in str(err.value) and "\n" not in str(err.value)


def test_the_previous_state_is_kept_and_a_damaged_latest_falls_back_loudly(run, tmp_path):
    _, first, second = run
    save_training_state(first, tmp_path)
    first_bytes = (tmp_path / STATE_FILE).read_bytes()
    save_training_state(second, tmp_path)
    assert (tmp_path / PREVIOUS_STATE_FILE).read_bytes() == first_bytes
    state, path = load_training_state(tmp_path)
    assert path == tmp_path / STATE_FILE
    assert_same(state, second)

    start, end = data_region(tmp_path / STATE_FILE)
    flip_byte(tmp_path / STATE_FILE, (start + end) // 2)
    with pytest.warns(CheckpointFallbackWarning, match="damaged.*loading the previous training state"):
        state, path = load_training_state(tmp_path)
    assert path == tmp_path / PREVIOUS_STATE_FILE
    assert_same(state, first)

    (tmp_path / STATE_FILE).unlink()  # a latest that is missing falls back too
    with pytest.warns(CheckpointFallbackWarning, match="no training state at"):
        assert_same(load_training_state(tmp_path)[0], first)

    flip_byte(tmp_path / PREVIOUS_STATE_FILE, start)
    with pytest.warns(CheckpointFallbackWarning), pytest.raises(StateFileError, match="no usable training state"):
        load_training_state(tmp_path)
    assert has_training_state(tmp_path) and not has_training_state(tmp_path / "elsewhere")


def test_stale_temp_files_of_killed_saves_are_removed(tmp_path):
    names = ("state.safetensors.tmp", "state.prev.safetensors.tmp", "metrics.csv.tmp")
    for name in names:
        (tmp_path / name).write_bytes(b"x" * 100)
    (tmp_path / "notes.tmp").write_text("not ours")
    assert sorted(p.name for p in remove_stale_temp_files(tmp_path)) == sorted(names)
    assert [p.name for p in tmp_path.iterdir()] == ["notes.tmp"]


def test_a_full_disk_gives_one_line_and_keeps_the_previous_state(run, small_disk):
    _, first, second = run
    size = len(json.dumps(flatten_state(first)[1])) + sum(t.nbytes for t in flatten_state(first)[0].values())
    disk = small_disk(f"{int(size * 1.5)}")  # room for one state, not for a second one next to it
    save_training_state(first, disk)
    with pytest.raises(WriteError) as err:
        save_training_state(second, disk)
    message = str(err.value)
    assert message.startswith(f"could not write {disk / STATE_FILE}: No space left on device (")
    assert message.endswith("free there)") and "\n" not in message
    assert sorted(p.name for p in disk.iterdir()) == [STATE_FILE]  # no temporary file left behind
    assert_same(load_training_state(disk)[0], first)


def test_a_state_that_does_not_fit_the_models_is_named(run):
    agent, first, _ = run
    trainer = agent.trainer
    modules = {"world_model": trainer.world_model, "actor_critic": trainer.actor_critic}
    optimizers = {"wm_optim": trainer.wm_optim, "ac_optim": trainer.ac_optim}
    check_fits(first, "state.safetensors", CFG, modules, optimizers)  # the state fits the models it came from

    other = CFG.replace_path("seed", 3).replace_path("train.lr", 2e-3)
    with pytest.raises(ValueError, match=r"different configuration \(seed: 0 saved, 3 here; train.lr: 0.001 saved"):
        check_fits(first, "s", other, modules, optimizers)
    key = next(iter(first["world_model"]))
    broken = [
        ({"world_model": {k: v for k, v in first["world_model"].items() if k != key}}, f"missing \\['{key}'\\]"),
        ({"world_model": {**first["world_model"], key: torch.zeros(3)}}, rf"world_model.{key} is torch.float32 \(3,\)"),
        ({"wm_optim": {}}, "s: wm_optim is not an optimiser state"),
        ({"ac_optim": {**first["ac_optim"], "param_groups": []}}, "covers parameter groups of sizes"),
    ]
    for change, message in broken:
        with pytest.raises(ValueError, match=message):
            check_fits({**first, **change}, "s", CFG, modules, optimizers)


SAVE_FOREVER = textwrap.dedent("""
    import sys, torch
    from drama_agent.serialization import load_state
    from drama_agent.training_state import remove_stale_temp_files, save_training_state
    run_dir = sys.argv[1]
    remove_stale_temp_files(run_dir)
    try:
        step = int(load_state(run_dir + "/state.safetensors")["step"])
    except FileNotFoundError:
        step = 0
    while True:
        step += 1
        save_training_state({"step": step, "data": torch.full((1_000_000,), float(step))}, run_dir)
        print(step, flush=True)
""")


@pytest.mark.slow
def test_sigkill_at_random_moments_always_leaves_two_verified_states(tmp_path):
    rng = random.Random(0)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for _ in range(3):
        proc = subprocess.Popen([sys.executable, "-c", SAVE_FOREVER, str(tmp_path)], stdout=subprocess.PIPE, env=env)
        proc.stdout.readline()  # one save done
        time.sleep(rng.uniform(0.0, 0.2))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        latest, previous = load_state(tmp_path / STATE_FILE), load_state(tmp_path / PREVIOUS_STATE_FILE)
        assert latest["step"] - previous["step"] in (0, 1)  # 0: killed between keeping the old one and the rename
        for state in (latest, previous):
            assert torch.equal(state["data"], torch.full((1_000_000,), float(state["step"])))
    assert latest["step"] >= 4


def test_drama_train_on_a_full_disk_exits_74_with_one_line_and_a_loadable_checkpoint(small_disk, capsys):
    from drama_agent.cli import train

    disk = small_disk("2200k")  # room for the states at steps 20 and 40 (0.7 MB each, before any update), not
    # beside them the final one at step 45 (1.9 MB: the optimisers' moments appear with the first update)
    args = ["--game", "Catch", "--preset", "debug", "--steps", "45", "--train.warmup_steps", "40"]
    args += ["--train.checkpoint_every", "20", "--eval-episodes", "0", "--no-progress", "--run-dir", str(disk)]
    assert train.main(args) == 74
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith(f"drama-train: could not write {disk / STATE_FILE}: No space left on device (")
    assert "Traceback" not in "\n".join(err)
    state, path = load_training_state(disk)
    assert path == disk / STATE_FILE and state["counters"]["env_steps"] == 40
    assert load_state(disk / PREVIOUS_STATE_FILE)["counters"]["env_steps"] == 20
    assert not any(p.name.endswith(".tmp") for p in disk.iterdir())

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from drama_agent.serialization import load_state, save_state


def test_nested_state_round_trips_bit_for_bit(tmp_path):
    gen = torch.Generator().manual_seed(3)
    state = {
        "weights": {"a": torch.randn(3, 4, generator=gen), "b": torch.arange(5, dtype=torch.int64)},
        "rng": {"torch": torch.get_rng_state(), "numpy": np.random.default_rng(1).bit_generator.state},
        "optim": {"state": {0: {"step": torch.tensor(7.0)}}, "param_groups": [{"lr": 4e-5, "params": [0]}]},
        "blob": b"\x00\x01emulator",
        "empty": b"",
        "steps": (10, 2.5, None, True, "x"),
        "frames": np.arange(24, dtype=np.uint8).reshape(2, 3, 4),
    }
    save_state(state, tmp_path / "s.safetensors")
    back = load_state(tmp_path / "s.safetensors")
    assert torch.equal(back["weights"]["a"], state["weights"]["a"])
    assert torch.equal(back["weights"]["b"], state["weights"]["b"])
    assert torch.equal(back["rng"]["torch"], state["rng"]["torch"])
    assert back["rng"]["numpy"] == state["rng"]["numpy"]
    assert back["optim"]["state"][0]["step"].item() == 7.0
    assert back["optim"]["param_groups"] == [{"lr": 4e-5, "params": [0]}]
    assert back["blob"] == state["blob"] and back["empty"] == b""
    assert back["steps"] == state["steps"]
    np.testing.assert_array_equal(back["frames"], state["frames"])


def test_truncated_file_is_reported_as_corrupt(tmp_path):
    path = tmp_path / "s.safetensors"
    save_state({"x": torch.zeros(1000)}, path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="truncated or corrupt"):
        load_state(path)
    with pytest.raises(FileNotFoundError, match="no training state"):
        load_state(tmp_path / "missing.safetensors")


def test_kill_during_save_keeps_previous_file(tmp_path):
    path = tmp_path / "s.safetensors"
    save_state({"x": torch.full((4,), 1.0)}, path)
    script = textwrap.dedent(f"""
        import os, torch, safetensors.torch as st
        real = st.save_file
        def dying(tensors, filename, metadata=None):
            real(tensors, filename, metadata=metadata)
            os._exit(9)  # killed after the temporary file is written, before the rename
        st.save_file = dying
        import drama_agent.serialization as s
        s.save_file = dying
        s.save_state({{"x": torch.full((4,), 2.0)}}, {str(path)!r})
    """)
    proc = subprocess.run([sys.executable, "-c", script], env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 9
    assert torch.equal(load_state(path)["x"], torch.full((4,), 1.0))


def test_a_state_written_before_checksums_still_loads(tmp_path):
    from safetensors.torch import save_file

    from drama_agent.serialization import flatten_state

    state = {"x": torch.arange(6.0), "steps": 3}
    tensors, skeleton = flatten_state(state)
    save_file(tensors, str(tmp_path / "old.safetensors"), metadata={"drama_state": json.dumps(skeleton)})
    back = load_state(tmp_path / "old.safetensors")
    assert torch.equal(back["x"], state["x"]) and back["steps"] == 3

"""Atomic writes of files and folders: the old version or the new one, never a mix, a full disk in one line."""

from __future__ import annotations

import subprocess
import sys

import pytest

from drama_agent.atomic import WriteError, atomic_folder, atomic_write_text


def contents(folder) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): p.read_text() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_folder_is_swapped_whole_and_keeps_files_written_by_others(tmp_path):
    folder = tmp_path / "agent"
    with atomic_folder(folder) as tmp:
        (tmp / "config.json").write_text("1")
        (tmp / "model.safetensors").write_text("weights 1")
    (folder / "eval.json").write_text("written by a script")
    (folder / "media").mkdir()
    (folder / "media" / "rollout.gif").write_text("gif")
    with atomic_folder(folder) as tmp:
        (tmp / "config.json").write_text("2")
        (tmp / "model.safetensors").write_text("weights 2")
    assert contents(folder) == {
        "config.json": "2",
        "eval.json": "written by a script",
        "media/rollout.gif": "gif",
        "model.safetensors": "weights 2",
    }
    assert sorted(p.name for p in tmp_path.iterdir()) == ["agent"]


def test_an_error_or_interrupt_while_writing_leaves_the_old_folder(tmp_path):
    folder = tmp_path / "agent"
    with atomic_folder(folder) as tmp:
        (tmp / "config.json").write_text("1")
    for error in (KeyboardInterrupt, RuntimeError):
        with pytest.raises(error), atomic_folder(folder) as tmp:
            (tmp / "config.json").write_text("2")
            raise error
        assert contents(folder) == {"config.json": "1"}
        assert sorted(p.name for p in tmp_path.iterdir()) == ["agent"]


def test_a_swap_killed_between_its_renames_is_put_back(tmp_path):
    folder, old = tmp_path / "agent", tmp_path / "agent.old"
    old.mkdir()
    (old / "config.json").write_text("1")  # what a kill after `agent -> agent.old` leaves
    (tmp_path / "agent.tmp").mkdir()
    with atomic_folder(folder) as tmp:
        (tmp / "model.safetensors").write_text("weights 2")
    assert contents(folder) == {"config.json": "1", "model.safetensors": "weights 2"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["agent"]


def test_a_full_disk_leaves_the_old_folder_and_file_and_says_so_in_one_line(small_disk):
    disk = small_disk("64k")
    folder = disk / "agent"
    with atomic_folder(folder) as tmp:
        (tmp / "config.json").write_text("1")
    atomic_write_text(disk / "notes.txt", "old")

    def fill_folder():
        with atomic_folder(folder) as tmp:
            (tmp / "model.safetensors").write_text("x" * 100_000)

    for write in (lambda: atomic_write_text(disk / "notes.txt", "x" * 100_000), fill_folder):
        with pytest.raises(WriteError, match=r"^could not write .*: No space left on device \(.* free there\)$"):
            write()
    assert (disk / "notes.txt").read_text() == "old"
    assert contents(folder) == {"config.json": "1"}


KILLED_WHILE_WRITING = """
import os, sys
from pathlib import Path
from drama_agent.atomic import atomic_folder
real_replace = os.replace
if sys.argv[2] == "between-renames":
    def replace(src, dst):
        real_replace(src, dst)
        if str(dst).endswith(".old"):
            os._exit(9)  # killed after `agent -> agent.old`, before the new folder takes its place
    os.replace = replace
with atomic_folder(sys.argv[1]) as tmp:
    (tmp / "config.json").write_text("2")
    if sys.argv[2] == "while-writing":
        os._exit(9)
"""


@pytest.mark.parametrize("moment", ["while-writing", "between-renames"])
def test_a_process_killed_while_swapping_leaves_a_usable_folder(tmp_path, moment):
    folder = tmp_path / "agent"
    with atomic_folder(folder) as tmp:
        (tmp / "config.json").write_text("1")
    proc = subprocess.run([sys.executable, "-c", KILLED_WHILE_WRITING, str(folder), moment])
    assert proc.returncode == 9
    if moment == "while-writing":
        assert contents(folder) == {"config.json": "1"}
    with atomic_folder(folder) as tmp:  # the next save cleans up (and puts the old folder back first)
        (tmp / "model.safetensors").write_text("weights 3")
    assert contents(folder) == {"config.json": "1", "model.safetensors": "weights 3"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["agent"]

"""Atomic file writes: a reader, or a resumed run, sees the old file or the new one, never a mix.

A write goes to a temporary file in the same folder (`<name>.tmp`), is flushed to disk (fsync) and
renamed over the target; then the folder is fsynced so that the rename itself survives a crash. A
failed write (a full disk, a read-only folder) removes the temporary file, leaves the target as it was
and raises `WriteError`, whose message is one line naming the path and the free space there.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

TMP_SUFFIX = ".tmp"


class WriteError(OSError):
    """A file could not be written; the previous version of it, if any, is untouched."""


def temp_path(path: Path) -> Path:
    """The temporary name a write to `path` goes through (removed again unless the write is interrupted)."""
    return path.with_name(path.name + TMP_SUFFIX)


def free_space(folder: Path) -> str:
    """Free space on the disk holding `folder`, e.g. '1.5 MB' ('unknown' when it cannot be read)."""
    try:
        free = float(shutil.disk_usage(folder).free)
    except OSError:
        return "unknown"
    units = ("bytes", "kB", "MB", "GB", "TB")
    power = 0
    while free >= 1000 and power < len(units) - 1:
        free, power = free / 1000, power + 1
    return f"{free:.0f} bytes" if power == 0 else f"{free:.1f} {units[power]}"


def write_error(path: Path, err: OSError) -> WriteError:
    """A one-line `WriteError` for `path` that keeps `err.errno` (e.g. errno.ENOSPC for a full disk)."""
    reason = err.strerror or str(err)
    error = WriteError(f"could not write {path}: {reason} ({free_space(path.parent)} free there)")
    error.errno = err.errno
    return error


def os_error(err: Exception) -> OSError:
    """The `OSError` inside a library's I/O error text ('... (os error 28)', as safetensors reports a full
    disk), or an OSError carrying that text, so that `atomic_path` reports it as a `WriteError`."""
    found = re.search(r"os error (\d+)", str(err))
    if found is None:
        return OSError(str(err))
    code = int(found.group(1))
    return OSError(code, os.strerror(code))


def fsync_file(path: Path) -> None:
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def fsync_dir(folder: Path) -> None:
    """Make renames inside `folder` durable (a no-op where folders cannot be opened, e.g. Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield the temporary path to write; on a clean exit it is fsynced and renamed over `path`.

    An `OSError` inside the block or while committing becomes a `WriteError`; any exception (Ctrl-C
    included) removes the temporary file and leaves `path` untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(path)
    try:
        yield tmp
        fsync_file(tmp)
        os.replace(tmp, path)
        fsync_dir(path.parent)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        raise write_error(path, err) from err
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Replace the file at `path` by `text` (UTF-8, line endings as given) atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8", newline="")


@contextmanager
def atomic_folder(folder: str | os.PathLike) -> Iterator[Path]:
    """Yield an empty temporary folder to fill; on a clean exit it takes the place of `folder`.

    Entries of the old `folder` that the block did not write (an eval.json, a GIF) are carried over as
    hard links (copies where links are impossible). The swap is two renames (`folder` -> `<folder>.old`,
    temporary -> `folder`), so a reader sees the old set of files or the new one, never a mix; a kill
    between the renames leaves `<folder>.old`, which the next call puts back before it starts. Errors
    are handled as in `atomic_path`, leaving `folder` as it was.
    """
    folder = Path(folder).absolute()
    if Path.cwd().is_relative_to(folder):
        raise ValueError(f"{folder} holds the working directory; write into a folder of its own")
    tmp, old = temp_path(folder), folder.with_name(folder.name + ".old")
    _put_back(old, folder)  # a previous swap may have been killed between its two renames
    for stale in (tmp, old):
        shutil.rmtree(stale, ignore_errors=True)
    try:
        tmp.mkdir(parents=True)
        yield tmp
        if folder.is_dir():
            for entry in folder.iterdir():
                if not (tmp / entry.name).exists():
                    _carry_over(entry, tmp / entry.name)
        for path in sorted(tmp.rglob("*")):
            if path.is_file():
                fsync_file(path)
        fsync_dir(tmp)
        if folder.exists():
            os.replace(folder, old)
        os.replace(tmp, folder)
        fsync_dir(folder.parent)
    except OSError as err:
        shutil.rmtree(tmp, ignore_errors=True)
        _put_back(old, folder)
        raise write_error(folder, err) from err
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        _put_back(old, folder)
        raise
    shutil.rmtree(old, ignore_errors=True)


def _put_back(old: Path, folder: Path) -> None:
    if old.is_dir() and not folder.exists():
        os.replace(old, folder)


def _carry_over(source: Path, target: Path) -> None:
    if source.is_dir():
        shutil.copytree(source, target, copy_function=_link_or_copy)
    else:
        _link_or_copy(source, target)


def _link_or_copy(source: str | os.PathLike, target: str | os.PathLike) -> None:
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)

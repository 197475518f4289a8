"""Training metrics: one CSV in long format (step, name, value) and TensorBoard event files."""

from __future__ import annotations

import csv
import errno
import io
import os
import shutil
from collections.abc import Mapping
from pathlib import Path

import torch

from drama_agent.atomic import atomic_write_text, write_error

HEADER = ["step", "name", "value"]
MIN_FREE_BYTES = 1_000_000
"""Below this much free disk space `log` refuses to write (a full disk, one clear line)."""


class MetricsLogger:
    """Appends metrics to `<run_dir>/metrics.csv` and TensorBoard logs in `<run_dir>/tb`.

    Values are written with `repr` so that a resumed run's CSV can be compared bit for bit. During a run
    the CSV is only appended to; `truncate_after(step)` drops rows newer than a checkpoint (and a row cut
    short by a kill) before a resumed run appends again, replacing the file atomically, so a kill at any
    moment leaves a CSV that the next resume can use.
    """

    def __init__(self, run_dir: str | Path, tensorboard: bool = True) -> None:
        self.path = Path(run_dir) / "metrics.csv"
        if not self.path.exists() or self.path.stat().st_size == 0:
            atomic_write_text(self.path, ",".join(HEADER) + "\r\n")
        self._tb = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            try:
                self._tb = SummaryWriter(str(Path(run_dir) / "tb"))
            except OSError as err:
                raise write_error(Path(run_dir) / "tb", err) from err

    def truncate_after(self, step: int) -> None:
        """Keep the complete rows of steps <= `step`; the file is replaced atomically, and only if that changes it."""
        with open(self.path, encoding="utf-8", newline="") as f:
            text = f.read()
        kept = [row for row in _rows(text) if row[0] <= step]
        out = io.StringIO()
        csv.writer(out).writerows([HEADER, *([str(s), n, v] for s, n, v in kept)])
        if out.getvalue() != text:
            atomic_write_text(self.path, out.getvalue())

    def log(self, step: int, values: Mapping[str, float | torch.Tensor]) -> None:
        """Append one row per value; a full disk raises `WriteError` (one line) before anything is written."""
        try:
            # TensorBoard writes from a background thread, where a full disk prints a traceback: check first.
            if shutil.disk_usage(self.path.parent).free < MIN_FREE_BYTES:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            with open(self.path, "a", newline="") as f:
                writer = csv.writer(f)
                for name, value in values.items():
                    number = float(value.item() if isinstance(value, torch.Tensor) else value)
                    writer.writerow([step, name, repr(number)])
                    if self._tb is not None:
                        self._tb.add_scalar(name, number, step)
        except OSError as err:
            raise write_error(self.path, err) from err

    def close(self) -> None:
        if self._tb is not None:
            try:
                self._tb.close()
            except OSError as err:
                raise write_error(self.path.parent / "tb", err) from err


def _rows(text: str) -> list[tuple[int, str, str]]:
    """The complete data rows of a metrics CSV's text: a last line without its newline (cut short) is dropped."""
    lines = text.split("\n")[:-1]  # the text after the last newline is empty, or a row cut short
    rows = []
    for line in lines[1:]:
        fields = next(csv.reader([line.removesuffix("\r")]), [])
        if len(fields) == 3 and fields[0].lstrip("-").isdigit():
            rows.append((int(fields[0]), fields[1], fields[2]))
    return rows


def read_metrics(run_dir: str | Path) -> list[tuple[int, str, str]]:
    """All rows of a run's metrics.csv as (step, name, value-as-written)."""
    with open(Path(run_dir) / "metrics.csv", newline="") as f:
        rows = list(csv.reader(f))[1:]
    return [(int(s), n, v) for s, n, v in rows]

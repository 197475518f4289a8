"""Training metrics: one CSV in long format (step, name, value) and TensorBoard event files."""

from __future__ import annotations

import csv
from collections.abc import Mapping
from pathlib import Path

import torch


class MetricsLogger:
    """Appends metrics to `<run_dir>/metrics.csv` and TensorBoard logs in `<run_dir>/tb`.

    Values are written with `repr` so that a resumed run's CSV can be compared bit for bit.
    `truncate_after(step)` drops rows newer than a checkpoint before a resumed run appends again.
    """

    def __init__(self, run_dir: str | Path, tensorboard: bool = True) -> None:
        self.path = Path(run_dir) / "metrics.csv"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if not self.path.exists():
            self.path.write_text("step,name,value\n")
        self._tb = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self._tb = SummaryWriter(str(Path(run_dir) / "tb"))

    def truncate_after(self, step: int) -> None:
        with open(self.path, newline="") as f:
            rows = [r for r in csv.reader(f)]
        kept = [rows[0]] + [r for r in rows[1:] if int(r[0]) <= step]
        with open(self.path, "w", newline="") as f:
            csv.writer(f).writerows(kept)

    def log(self, step: int, values: Mapping[str, float | torch.Tensor]) -> None:
        with open(self.path, "a", newline="") as f:
            writer = csv.writer(f)
            for name, value in values.items():
                number = float(value.item() if isinstance(value, torch.Tensor) else value)
                writer.writerow([step, name, repr(number)])
                if self._tb is not None:
                    self._tb.add_scalar(name, number, step)

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()


def read_metrics(run_dir: str | Path) -> list[tuple[int, str, str]]:
    """All rows of a run's metrics.csv as (step, name, value-as-written)."""
    with open(Path(run_dir) / "metrics.csv", newline="") as f:
        rows = list(csv.reader(f))[1:]
    return [(int(s), n, v) for s, n, v in rows]

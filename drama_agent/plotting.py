"""Learning curves from a run's metrics.csv: episode return against env step, raw and smoothed.

Drawn with matplotlib's object API (no pyplot, no display needed).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from drama_agent.metrics import read_metrics

RETURN_METRIC = "episode/return"


def episode_returns(run_dir: str | Path) -> tuple[list[int], list[float]]:
    """(env step at which each episode ended, its return), in the order logged."""
    rows = [(step, float(value)) for step, name, value in read_metrics(run_dir) if name == RETURN_METRIC]
    return [step for step, _ in rows], [value for _, value in rows]


def smooth(values: Sequence[float], window: int) -> np.ndarray:
    """Trailing mean over the last `window` values (fewer at the start)."""
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    values = np.asarray(values, dtype=np.float64)
    sums = np.cumsum(np.concatenate([[0.0], values]))  # (N + 1,)
    ends = np.arange(1, len(values) + 1)
    starts = np.maximum(ends - window, 0)
    return (sums[ends] - sums[starts]) / (ends - starts)


def plot_learning_curves(
    curves: Mapping[str, tuple[Sequence[int], Sequence[float]]],
    path: str | Path,
    random_return: float | None = None,
    title: str = "",
    window: int = 10,
) -> Figure:
    """Draw each run's returns (thin) and their trailing mean over `window` episodes; save a PNG at `path`.

    `random_return` is drawn as a dashed horizontal line. Returns the figure: line k·2 of its axes holds the
    raw returns of the k-th curve, line k·2 + 1 the smoothed ones.
    """
    figure = Figure(figsize=(7, 4), dpi=100)
    axes = figure.add_subplot()
    colors = [f"C{i}" for i in range(10)]
    for (label, (steps, returns)), color in zip(curves.items(), colors * len(curves), strict=False):
        axes.plot(steps, returns, color=color, alpha=0.4, linewidth=0.8, marker=".", markersize=4)
        axes.plot(steps, smooth(returns, window), color=color, linewidth=2, label=f"{label} (mean of {window})")
    if random_return is not None:
        axes.axhline(random_return, color="black", linestyle="--", linewidth=1, label=f"random ({random_return:g})")
    axes.set_xlim(left=0)
    axes.set_xlabel("env step")
    axes.set_ylabel("episode return")
    axes.set_title(title)
    axes.grid(alpha=0.3)
    axes.legend(loc="best", fontsize=8)
    figure.tight_layout()
    figure.savefig(path)
    return figure


def plot_run(
    run_dir: str | Path,
    path: str | Path | None = None,
    random_return: float | None = None,
    title: str = "",
    window: int = 10,
) -> Figure:
    """`learning_curve.png` (default: inside `run_dir`) for one run's metrics.csv."""
    run_dir = Path(run_dir)
    steps, returns = episode_returns(run_dir)
    if not returns:
        raise ValueError(f"{run_dir / 'metrics.csv'} has no finished episodes ({RETURN_METRIC}) to plot")
    target = Path(path) if path is not None else run_dir / "learning_curve.png"
    return plot_learning_curves({"episode return": (steps, returns)}, target, random_return, title, window)

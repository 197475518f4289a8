"""Learning curves: drawn from a real run's metrics.csv, the plotted points are the CSV's episode returns."""

from __future__ import annotations

import csv
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest

from drama_agent import DramaAgent, DramaConfig, make_env
from drama_agent.cli.plot import main
from drama_agent.envs import random_policy_return
from drama_agent.plotting import plot_run, smooth


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """A real drama-train-style run of 300 Catch steps (random acting: the warm-up outlasts it)."""
    cfg = DramaConfig.preset("debug").replace_path("train.warmup_steps", 10_000)
    folder = tmp_path_factory.mktemp("run")
    DramaAgent(cfg, env=make_env("Catch", cfg.env, seed=0), device="cpu").learn(300, run_dir=folder)
    return folder


def csv_returns(run_dir: Path) -> tuple[list[int], list[float]]:
    with open(run_dir / "metrics.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["name"] == "episode/return"]
    return [int(r["step"]) for r in rows], [float(r["value"]) for r in rows]


def test_trailing_mean() -> None:
    np.testing.assert_allclose(smooth([1.0, 3.0, 5.0, 7.0], 2), [1.0, 2.0, 4.0, 6.0])
    np.testing.assert_allclose(smooth([2.0, 4.0, 9.0], 5), [2.0, 3.0, 5.0])
    with pytest.raises(ValueError, match="window must be >= 1"):
        smooth([1.0], 0)


def test_curve_plots_exactly_the_csv_returns(run_dir: Path, tmp_path: Path) -> None:
    steps, returns = csv_returns(run_dir)
    assert len(returns) >= 5
    figure = plot_run(run_dir, tmp_path / "curve.png", random_return=random_policy_return(), window=3)
    raw, smoothed, random_line = figure.axes[0].lines
    np.testing.assert_array_equal(raw.get_xdata(), steps)
    np.testing.assert_array_equal(raw.get_ydata(), returns)
    expected = [np.mean(returns[max(0, i - 2) : i + 1]) for i in range(len(returns))]
    np.testing.assert_allclose(smoothed.get_ydata(), expected, rtol=1e-12)
    assert list(random_line.get_ydata()) == [random_policy_return()] * 2


def test_cli_writes_learning_curve_png(run_dir: Path, capsys) -> None:
    assert main([str(run_dir), "--game", "Catch"]) == 0
    path = run_dir / "learning_curve.png"
    assert path.stat().st_size > 10_000
    image = iio.imread(path)
    assert image.shape[:2] == (400, 700)  # 7 × 4 inches at 100 dpi
    assert len(np.unique(image.reshape(-1, image.shape[-1]), axis=0)) > 50  # lines and text, not a blank canvas
    assert "learning curve written to" in capsys.readouterr().out


def test_cli_without_episodes_is_an_error(tmp_path: Path, capsys) -> None:
    (tmp_path / "metrics.csv").write_text("step,name,value\n100,world_model/loss,1.5\n")
    assert main([str(tmp_path)]) == 2
    assert "has no finished episodes" in capsys.readouterr().err

"""Aggregate human-normalised scores across games with rliable (Agarwal et al., NeurIPS 2021).

Scores are a (runs, games) matrix. Point estimates and stratified-bootstrap confidence intervals come from
`rliable.library.get_interval_estimates` with numpy's global RNG seeded, so a report can be reproduced exactly.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from drama_agent.sweep import require

AGGREGATES = ("mean", "median", "iqm", "optimality_gap")


@contextmanager
def _numpy_seed(seed: int) -> Iterator[None]:
    """rliable's stratified bootstrap draws its resamples from numpy's global RNG (not from its `random_state`
    argument): seed that for the call and put the caller's state back after."""
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        yield
    finally:
        np.random.set_state(state)


def aggregate_scores(scores: np.ndarray) -> np.ndarray:
    """(runs, games) -> [mean, median, IQM, optimality gap], rliable's estimators in the order of AGGREGATES."""
    metrics = require("rliable.metrics")
    return np.array(
        [
            metrics.aggregate_mean(scores),
            metrics.aggregate_median(scores),
            metrics.aggregate_iqm(scores),
            metrics.aggregate_optimality_gap(scores),
        ]
    )


def interval_estimates(
    scores: np.ndarray, reps: int = 50_000, seed: int = 0, confidence: float = 0.95
) -> dict[str, dict[str, float]]:
    """{aggregate: {"value", "ci_low", "ci_high"}} with stratified-bootstrap CIs over the runs of each game."""
    library = require("rliable.library")
    with _numpy_seed(seed):
        point, interval = library.get_interval_estimates(
            {"run": scores},
            aggregate_scores,
            reps=reps,
            confidence_interval_size=confidence,
        )
    return {
        name: {
            "value": float(point["run"][i]),
            "ci_low": float(interval["run"][0, i]),
            "ci_high": float(interval["run"][1, i]),
        }
        for i, name in enumerate(AGGREGATES)
    }


def performance_profile(
    scores: np.ndarray, taus: np.ndarray, reps: int = 2_000, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Fraction of runs with score > tau at each tau, and its (2, len(taus)) bootstrap CI (rliable's profile)."""
    library = require("rliable.library")
    with _numpy_seed(seed):
        point, interval = library.get_interval_estimates(
            {"run": scores},
            lambda s: library.score_distributions(s, taus),
            reps=reps,
        )
    return point["run"], interval["run"]


def profile_point(scores: np.ndarray, taus: np.ndarray) -> np.ndarray:
    """Fraction of runs with score > tau at each tau, without an interval (e.g. for one published run)."""
    return require("rliable.library").score_distributions(scores, taus)


def plot_profile(
    path: Any, taus: np.ndarray, profiles: dict[str, np.ndarray], cis: dict[str, np.ndarray], title: str
) -> None:
    """Write the performance profiles (one line per entry, shaded CI where given) as a PNG with rliable's plotter."""
    require("matplotlib")
    from matplotlib.figure import Figure

    plot_utils = require("rliable.plot_utils")
    figure = Figure(figsize=(7, 4.5))
    ax = figure.add_subplot()
    plot_utils.plot_performance_profiles(
        profiles,
        taus,
        performance_profile_cis=cis,
        ax=ax,
        xlabel=r"Human-normalised score ($\tau$)",
        ylabel=r"Fraction of runs with score $> \tau$",
        labelsize="large",
        ticklabelsize="medium",
        legend=True,
        legendsize="medium",
    )
    ax.set_title(title)
    figure.tight_layout()
    figure.savefig(path, dpi=120)

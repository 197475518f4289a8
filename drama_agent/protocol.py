"""The paper's score of a training run: the mean return of its last 5 training episodes, as `protocol.json`.

Drama's published Atari100k numbers are this training-episode score, not a greedy evaluation; `drama-train`
writes it at the end of a run (beside the greedy evaluation in the model card) and `drama-report` aggregates it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from drama_agent.atomic import atomic_write_text
from drama_agent.metrics import read_metrics
from drama_agent.scores import human_normalized_score

PROTOCOL_FILE = "protocol.json"
LAST_EPISODES = 5
PROTOCOL = f"mean return of the last {LAST_EPISODES} training episodes"


def training_episodes(run_dir: str | Path) -> list[tuple[int, float]]:
    """(env step at its end, return) of every training episode logged in the run's metrics.csv, in order."""
    return [(step, float(value)) for step, name, value in read_metrics(run_dir) if name == "episode/return"]


def protocol_score(
    run_dir: str | Path,
    env_id: str,
    env_steps: int,
    wall_clock_s: float,
    resumed_from_step: int = 0,
    greedy_evaluation: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The protocol record of a finished run; `score` is None when no training episode ended.

    `wall_clock_s` is the time of the process that finished the run, which started at `resumed_from_step`
    (0 unless it was resumed). `greedy_evaluation` (mean, std, episodes, protocol) is kept beside the score.
    """
    episodes = training_episodes(run_dir)
    last = [ret for _, ret in episodes[-LAST_EPISODES:]]
    score = sum(last) / len(last) if last else None
    return {
        "protocol": PROTOCOL,
        "score": score,
        "hns": None if score is None else human_normalized_score(env_id, score),
        "last_returns": last,
        "last_episode_end_steps": [step for step, _ in episodes[-LAST_EPISODES:]],
        "training_episodes": len(episodes),
        "env_id": env_id,
        "env_steps": env_steps,
        "wall_clock_s": wall_clock_s,
        "resumed_from_step": resumed_from_step,
        "greedy_evaluation": greedy_evaluation,
    }


def write_protocol(run_dir: str | Path, record: dict[str, Any]) -> Path:
    """Write `record` to `<run_dir>/protocol.json` atomically (it marks the run as finished)."""
    path = Path(run_dir) / PROTOCOL_FILE
    atomic_write_text(path, json.dumps(record, indent=2) + "\n")
    return path


def read_protocol(run_dir: str | Path) -> dict[str, Any] | None:
    """The run's protocol record, or None while the run has not finished."""
    path = Path(run_dir) / PROTOCOL_FILE
    return json.loads(path.read_text()) if path.is_file() else None

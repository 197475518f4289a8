"""The layout of a sweep folder: DIR/<game>/seed<k>/ per run, with its logs and a record of its attempts.

A run dir holds what `drama-train` writes (state.safetensors, metrics.csv, pretrained/, protocol.json) and
what the sweep adds: `train.out` / `train.err` (the process's stdout / stderr, appended across attempts)
and `attempts.jsonl` (one `start` and one `end` event per attempt). `protocol.json` marks a finished run.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Literal

from drama_agent.protocol import read_protocol
from drama_agent.scores import game_name

STDOUT_FILE = "train.out"
STDERR_FILE = "train.err"
ATTEMPTS_FILE = "attempts.jsonl"
SETTINGS_FILE = "sweep.json"

Status = Literal["finished", "failed", "unfinished"]


def run_dir(out: str | Path, game: str, seed: int) -> Path:
    """DIR/<game>/seed<k>, with the game's short name ('ALE/Pong-v5' -> 'Pong')."""
    return Path(out) / game_name(game) / f"seed{seed}"


def log_attempt(folder: str | Path, event: str, **fields: Any) -> None:
    """Append one event (`start` or `end`) with a timestamp to the run's attempts.jsonl."""
    line = json.dumps({"event": event, "time": time.time(), **fields})
    Path(folder).mkdir(parents=True, exist_ok=True)
    with open(Path(folder) / ATTEMPTS_FILE, "a") as f:
        f.write(line + "\n")


def read_attempts(folder: str | Path) -> list[dict[str, Any]]:
    path = Path(folder) / ATTEMPTS_FILE
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def run_status(folder: str | Path) -> tuple[Status, str | None]:
    """'finished' (protocol.json written), 'failed' (its last attempt ended with an error, given) or 'unfinished'."""
    if read_protocol(folder) is not None:
        return "finished", None
    ends = [event for event in read_attempts(folder) if event["event"] == "end"]
    if ends and ends[-1].get("error"):
        return "failed", ends[-1]["error"]
    return "unfinished", None


def find_runs(out: str | Path) -> list[tuple[str, int, Path]]:
    """(game, seed, run dir) of every run folder under DIR, sorted by game then seed."""
    found = []
    for folder in Path(out).glob("*/seed*"):
        suffix = folder.name.removeprefix("seed")
        if folder.is_dir() and suffix.isdigit():
            found.append((folder.parent.name, int(suffix), folder))
    return sorted(found)

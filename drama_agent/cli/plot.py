"""`drama-plot`: draw a run's learning curve (episode return against env step) into RUN_DIR/learning_curve.png."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from drama_agent.plotting import plot_run
from drama_agent.scores import game_name, random_score


def run_game(run_dir: Path) -> str | None:
    """The game a run trained on, from the shareable folder drama-train writes at the end (None before that)."""
    for config in (run_dir / "pretrained" / "config.json", run_dir / "config.json"):
        if config.is_file():
            return json.loads(config.read_text(encoding="utf-8")).get("env_id")
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="drama-plot",
        description="Draw the episode returns of RUN_DIR/metrics.csv (raw and a trailing mean) against env steps, "
        "with the random policy's score as a dashed line, into RUN_DIR/learning_curve.png.",
    )
    parser.add_argument("run_dir", type=Path, help="a drama-train run directory (holds metrics.csv)")
    parser.add_argument("--out", type=Path, help="output PNG (default: RUN_DIR/learning_curve.png)")
    parser.add_argument(
        "--game", help="game of the run, for the random score line (default: read from RUN_DIR/pretrained)"
    )
    parser.add_argument("--window", type=int, default=10, help="episodes in the trailing mean (default: 10)")
    args = parser.parse_args(argv)
    game = args.game or run_game(args.run_dir)
    out = args.out or args.run_dir / "learning_curve.png"
    title = f"{game_name(game)} — {args.run_dir.name}" if game else args.run_dir.name
    try:
        plot_run(args.run_dir, out, None if game is None else random_score(game), title, args.window)
    except (ValueError, FileNotFoundError) as err:
        print(f"drama-plot: error: {err}", file=sys.stderr)
        return 2
    print(f"learning curve written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""`drama-report`: per-game table and rliable aggregates of a drama-sweep folder."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from drama_agent.sweep import MissingExtraError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="drama-report",
        description="Report a drama-sweep folder: each run's score is the mean return of its last 5 training "
        "episodes (protocol.json); per game mean ± std over seeds beside the random, human and published Drama "
        "scores; across Atari100k games the human-normalised mean, median, IQM and optimality gap with "
        "stratified-bootstrap 95 % confidence intervals (rliable), and a performance profile. Writes report.md, "
        "report.json and performance_profile.png.",
    )
    parser.add_argument("folder", type=Path, help="the --out folder of drama-sweep")
    parser.add_argument("--out", type=Path, help="where to write the report (default: the sweep folder)")
    parser.add_argument("--reps", type=int, default=50_000, help="bootstrap samples of the aggregates (default: 50000)")
    parser.add_argument("--profile-reps", type=int, default=2_000, help="bootstrap samples of the profile (2000)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the bootstrap (default: 0)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not args.folder.is_dir():
        print(f"drama-report: error: {args.folder} is not a folder", file=sys.stderr)
        return 2
    try:
        from drama_agent.sweep.report import build_report, write_report

        report = build_report(args.folder, reps=args.reps, profile_reps=args.profile_reps, seed=args.seed)
        if not report["games"] and not report["problems"]:
            print(f"drama-report: error: no runs (<game>/seed<k> folders) in {args.folder}", file=sys.stderr)
            return 2
        path = write_report(report, args.out or args.folder)
    except MissingExtraError as err:
        print(f"drama-report: error: {err}", file=sys.stderr)
        return 2
    print(path.read_text())
    print(f"report written to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

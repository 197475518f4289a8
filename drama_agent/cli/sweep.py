"""`drama-sweep`: one drama-train run per (game, seed) on Ray, fault-tolerant and resumable."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from drama_agent.cli.config_args import add_config_arguments
from drama_agent.presets import PRESETS
from drama_agent.scores import score_table
from drama_agent.sweep import MissingExtraError
from drama_agent.sweep.runs import SETTINGS_FILE

SUITES = {"atari100k": lambda: list(score_table())}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="drama-sweep",
        description="Train one Drama agent per (game, seed) as Ray tasks: on this machine by default, on any Ray "
        "cluster with --address. Run k of a game goes to OUT/<game>/seed<k> (its stdout/stderr in train.out / "
        "train.err there). A run whose worker dies is retried and resumes from its last checkpoint; running the "
        "same command again skips finished runs and resumes the others; a run that fails with an error is "
        "reported and does not stop the rest. Exit code 1 when a run failed.",
    )
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--games", nargs="+", metavar="GAME", help="games, e.g. Pong Breakout Catch")
    which.add_argument("--suite", choices=sorted(SUITES), help="a named list of games (atari100k: its 26 games)")
    parser.add_argument("--seeds", type=int, default=5, help="seeds 0..N-1 per game (default: 5)")
    parser.add_argument("--preset", default="xs", choices=sorted(PRESETS), help="model size preset (default: xs)")
    parser.add_argument(
        "--steps",
        type=int,
        help="env steps per run in all, as drama-train --steps counts them (default: the preset's "
        "train.total_steps + train.freeze_steps)",
    )
    parser.add_argument("--out", type=Path, required=True, help="sweep folder (on storage every Ray node sees)")
    parser.add_argument("--address", help="Ray cluster to use: 'auto', 'ray://HEAD:10001', ... (default: local)")
    parser.add_argument("--num-cpus", type=int, help="CPUs of the local Ray instance (default: all)")
    parser.add_argument("--cpus-per-run", type=float, default=1, help="CPUs Ray reserves per run (default: 1)")
    parser.add_argument("--gpus-per-run", type=float, default=0, help="GPUs Ray reserves per run (default: 0)")
    parser.add_argument("--max-retries", type=int, default=3, help="retries of a run whose worker died (default: 3)")
    parser.add_argument("--eval-episodes", type=int, default=10, help="greedy episodes after each run (default: 10)")
    parser.add_argument("--log-every", type=int, default=100, help="env steps between logged update metrics")
    parser.add_argument("--device", default="auto", help="device of each run (default: auto)")
    parser.add_argument("--report", action="store_true", help="write the drama-report of OUT at the end")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_config_arguments(parser)
    return parser


def config_argv(args: argparse.Namespace) -> tuple[str, ...]:
    """The config fields given on the command line, as drama-train options."""
    argv: list[str] = []
    for dest, value in sorted(vars(args).items()):
        if dest.startswith("cfg__") and value is not None:
            _, section, name = dest.split("__")
            if isinstance(value, bool):
                text = "true" if value else "false"
            elif isinstance(value, tuple):
                text = ",".join(map(str, value))
            else:
                text = str(value)
            argv += [f"--{section}.{name}", text]
    return tuple(argv)


def check_settings(out: Path, settings: dict) -> str | None:
    """Record the sweep's training settings in OUT/sweep.json; an error message if OUT holds different ones."""
    path = out / SETTINGS_FILE
    if path.is_file():
        previous = json.loads(path.read_text())
        changed = sorted(k for k in settings if previous.get(k) != settings[k])
        if changed:
            return f"{out} holds a sweep with other settings ({', '.join(changed)}); use another --out"
        return None
    out.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(settings, indent=2) + "\n")
    return None


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    games = args.games or SUITES[args.suite]()
    if args.seeds < 1:
        print("drama-sweep: error: --seeds must be at least 1", file=sys.stderr)
        return 2
    try:
        from drama_agent.sweep.runner import TrainSettings, run_sweep

        settings = TrainSettings(
            args.preset, args.steps, config_argv(args), args.eval_episodes, args.log_every, args.device
        )
        problem = check_settings(
            args.out,
            {
                "preset": args.preset,
                "steps": args.steps,
                "config_args": list(settings.config_args),
                "eval_episodes": args.eval_episodes,
                "log_every": args.log_every,
            },
        )
        if problem is not None:
            print(f"drama-sweep: error: {problem}", file=sys.stderr)
            return 2
        print(f"sweep of {len(games)} games x {args.seeds} seeds (preset {args.preset}) into {args.out}")
        results = run_sweep(
            args.out,
            games,
            list(range(args.seeds)),
            settings,
            address=args.address,
            cpus_per_run=args.cpus_per_run,
            gpus_per_run=args.gpus_per_run,
            max_retries=args.max_retries,
            num_cpus=args.num_cpus,
            progress=not args.no_progress,
        )
    except MissingExtraError as err:
        print(f"drama-sweep: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("drama-sweep: stopped; run the same command again to continue the sweep", file=sys.stderr)
        return 130
    counts = {status: sum(r.status == status for r in results) for status in ("finished", "skipped", "failed")}
    print(
        f"{counts['finished']} runs finished, {counts['skipped']} skipped (finished before), {counts['failed']} failed"
    )
    for r in results:
        if r.status == "failed":
            print(f"  failed: {r.game} seed {r.seed} after {r.attempts} attempt(s): {r.error} (logs in {r.folder})")
    if args.report:
        from drama_agent.cli import report

        report.main([str(args.out)])
    return 1 if counts["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())

"""`drama-eval`: play a trained agent under the stated protocol and report mean ± std and human-normalised score.

Heavy modules are imported after the signal handlers are installed: Ctrl-C or SIGTERM ends it with one line.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

from drama_agent.interrupts import exit_code, signals_raise

if TYPE_CHECKING:
    from drama_agent.agent import DramaAgent


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="drama-eval",
        usage="drama-eval CHECKPOINT [--episodes N] [--seed S] [--json OUT.json] [options]   "
        "(drama-eval --help lists them all)",
        description="Evaluate a Drama agent: full episodes of its game with the Atari100k wrappers (no sticky "
        "actions, no no-op starts, 108k-frame limit). Reports mean ± std return and, for the 26 Atari100k games, "
        "the human-normalised score (score − random) / (human − random). Ctrl-C or SIGTERM stops it with the "
        "episodes finished so far reported (and written to --json, marked interrupted).",
    )
    parser.add_argument(
        "checkpoint",
        help="a save_pretrained folder, a shipped checkpoint name, a Hub id (org/name), or a drama-train run directory",
    )
    parser.add_argument("--episodes", type=int, default=100, help="episodes to play (default: 100, as the authors)")
    parser.add_argument("--seed", type=int, default=0, help="environment seed of the first episode (default: 0)")
    parser.add_argument("--stochastic", action="store_true", help="sample actions instead of the greedy policy")
    parser.add_argument(
        "--stall-warning",
        type=int,
        default=5_000,
        metavar="STEPS",
        help="warn when a greedy episode goes this many steps without a reward, as a stalled policy does "
        "(default: 5000; 0: never)",
    )
    parser.add_argument(
        "--constant-actions",
        action="store_true",
        help="also play one episode per constant action (the same action at every step) from the first episode's "
        "seed and report their returns: an agent that scores no more than the best of them may have learned just "
        "that action",
    )
    parser.add_argument("--json", type=Path, help="also write the result as JSON to this file")
    parser.add_argument("--device", default="auto", help="'auto', 'cpu' or 'cuda'")
    parser.add_argument(
        "--precision",
        choices=("auto", "fp32", "bf16"),
        help="compute precision, instead of the checkpoint's train.precision (to replay an evaluation made "
        "in another precision: the result JSON records the one used)",
    )
    parser.add_argument("--revision", help="Hub revision (branch, tag or commit) when loading from the Hub")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        with signals_raise():
            return _evaluate(build_parser().parse_args(argv))
    except KeyboardInterrupt as err:
        print(f"drama-eval: {err or 'interrupted'}", file=sys.stderr)
        return exit_code(err)


def _evaluate(args: argparse.Namespace) -> int:
    if args.episodes < 1:
        print("drama-eval: error: --episodes must be at least 1", file=sys.stderr)
        return 2
    from drama_agent.agent import DramaAgent
    from drama_agent.checkpoint import CheckpointFormatError
    from drama_agent.envs import make_env
    from drama_agent.hub import CheckpointNotFoundError
    from drama_agent.scores import constant_action_returns, summarize_returns
    from drama_agent.training_state import has_training_state

    if args.json is not None:  # before the evaluation, not after it
        try:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            if not os.access(args.json.parent, os.W_OK) or args.json.is_dir():
                raise PermissionError("not a writable file path")
        except OSError as err:
            print(f"drama-eval: error: cannot write --json {args.json}: {err}", file=sys.stderr)
            return 2
    played: list[tuple[float, int]] = []  # (return, length) of each finished episode
    try:
        path = Path(args.checkpoint)
        if has_training_state(path) and not (path / "config.json").is_file():
            agent = DramaAgent.load(path, device=args.device)
        else:
            agent = DramaAgent.from_pretrained(args.checkpoint, revision=args.revision, device=args.device)
        if agent.env_id is None:
            raise ValueError("the checkpoint does not name its game")
        if args.precision is not None:
            agent.cfg = agent.cfg.replace_path("train.precision", args.precision)
        env = make_env(agent.env_id, agent.cfg.env, seed=args.seed)
        with warnings.catch_warnings():
            warnings.showwarning = _print_warning
            result = agent.evaluate(
                env,
                n_episodes=args.episodes,
                deterministic=not args.stochastic,
                progress_bar=not args.no_progress,
                stall_warning=args.stall_warning,
                on_episode=lambda score, length: played.append((score, length)),
            )
        if args.constant_actions:
            result["constant_actions"] = constant_action_returns(env, args.seed)
    except (CheckpointNotFoundError, CheckpointFormatError, ValueError, FileNotFoundError) as err:
        print(f"drama-eval: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # keep the finished episodes
        if played:
            summary = summarize_returns(agent.env_id, [r for r, _ in played], [n for _, n in played])
            _report(args, agent, summary | {"precision": agent.precision.name})
        raise
    _report(args, agent, result)
    return 0


def _report(args: argparse.Namespace, agent: DramaAgent, result: dict) -> None:
    """Print the result and write it to `--json`; fewer episodes than asked for mean an interrupted evaluation."""
    from drama_agent.atomic import atomic_write_text
    from drama_agent.cpu import matmul_kernels

    played = len(result["returns"])
    kind = "sampled" if args.stochastic else "greedy"
    result |= {
        "checkpoint": args.checkpoint,
        "env_id": agent.env_id,
        "episodes": played,
        "deterministic": not args.stochastic,
        "seed": args.seed,
        "steps_trained": agent.num_timesteps or (agent.pretrained_info or {}).get("steps_trained"),
        "protocol": f"mean return of {played} {kind} episodes",
        "kernels": matmul_kernels() if agent.device.type == "cpu" else agent.device.type,
    }
    if played < args.episodes:
        result |= {"interrupted": True, "episodes_asked": args.episodes}
        result["protocol"] += f" (interrupted after {played} of {args.episodes})"
    hns = "" if result["hns"] is None else f", human-normalised {result['hns']:.3f}"
    print(f"{agent.env_id}: {result['mean']:.2f} ± {result['std']:.2f} ({result['protocol']}){hns}", flush=True)
    if "constant_actions" in result:
        constant = result["constant_actions"]
        best = max(constant, key=constant.get)
        above = "above" if result["mean"] > constant[best] else "not above"
        listed = ", ".join(f"{name} {score:.2f}" for name, score in constant.items())
        print(f"constant actions (one episode each): {listed}; the agent's mean is {above} the best ({best})")
    if args.json is not None:
        atomic_write_text(args.json, json.dumps(result, indent=2))


def _print_warning(message: Warning | str, *_: object) -> None:
    """One line on stderr that leaves the progress bar intact."""
    from tqdm.auto import tqdm

    tqdm.write(f"drama-eval: warning: {message}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())

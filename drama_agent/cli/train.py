"""`drama-train`: train a Drama agent on a game, with metrics, checkpoints and a shareable folder at the end.

Only light modules are imported before `main` installs its signal handlers, so that Ctrl-C or SIGTERM at
any moment, even while PyTorch is being imported, ends the program with one line.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from drama_agent.cli.config_args import add_config_arguments, apply_config_arguments
from drama_agent.config import DramaConfig
from drama_agent.interrupts import exit_code, signals_raise
from drama_agent.presets import PRESETS

if TYPE_CHECKING:
    import torch

EXIT_CODES = """exit codes:
  0    done
  1    the training diverged (a non-finite loss); the last checkpoint is intact
  2    bad arguments, or a run directory that cannot be resumed
  74   a file could not be written (e.g. a full disk); the previous checkpoint is intact
  130  stopped by Ctrl-C (SIGINT), 143 by SIGTERM; during training, after the step in progress and a save
"""


def build_parser() -> argparse.ArgumentParser:
    presets = sorted(PRESETS)
    parser = argparse.ArgumentParser(
        prog="drama-train",
        usage=f"drama-train --game GAME [--preset {{{','.join(presets)}}}] [--steps N] [--seed S] "
        "[--run-dir DIR] [--resume RUN_DIR] [options] [--section.field VALUE ...]   "
        "(drama-train --help lists them all)",
        description="Train a Drama agent (Mamba-2 world model + actor-critic in imagination) on a game. "
        "Metrics go to RUN_DIR/metrics.csv and RUN_DIR/tb (TensorBoard); the full training state is saved to "
        "RUN_DIR/state.safetensors (the one before it kept as state.prev.safetensors) periodically, at the end "
        "and when stopped by Ctrl-C or SIGTERM; the final shareable agent is "
        "RUN_DIR/pretrained (load it with DramaAgent.from_pretrained or drama-eval); the paper's score (mean return of "
        "the last 5 training episodes) goes to RUN_DIR/protocol.json.",
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--game", help="game name: an ALE game ('Pong' or 'ALE/Pong-v5') or the built-in 'Catch'")
    parser.add_argument("--preset", default="xs", choices=presets, help="model size preset (default: xs)")
    parser.add_argument(
        "--steps",
        type=int,
        help="env steps of the whole run, as the progress bar counts them: the last train.freeze_steps of them run "
        "with frozen networks (dropped when the run is not longer than that) (default: the preset's "
        "train.total_steps + train.freeze_steps)",
    )
    parser.add_argument("--seed", type=int, default=0, help="run seed (default: 0)")
    parser.add_argument("--run-dir", type=Path, help="output folder (default: runs/<game>-<preset>-seed<seed>-<time>)")
    parser.add_argument("--resume", type=Path, metavar="RUN_DIR", help="continue the run saved in RUN_DIR")
    parser.add_argument("--device", default="auto", help="'auto' (CUDA if available), 'cpu', 'cuda', 'cuda:1' ...")
    parser.add_argument(
        "--eval-episodes",
        type=int,
        default=10,
        help="episodes of the final evaluation written into the model card (default: 10; 0 skips it)",
    )
    parser.add_argument(
        "--weights-dtype",
        choices=["float32", "bfloat16"],
        default="float32",
        help="precision of the final shareable weights (bfloat16: half the size; the weights are rounded before "
        "the final evaluation, so the card's score is the saved agent's)",
    )
    parser.add_argument("--log-every", type=int, default=100, help="env steps between logged update metrics")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument(
        "--threads",
        type=int,
        help="CPU threads of torch (default: OMP_NUM_THREADS if set, else 1 on machines with up to 3 cores and "
        "for the debug preset, else all cores but one)",
    )
    add_config_arguments(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    run: dict[str, Any] = {"dir": None}
    try:
        with signals_raise():
            parser = build_parser()
            return _train(parser, parser.parse_args(argv), run)
    except KeyboardInterrupt as err:  # Ctrl-C or SIGTERM outside the training steps (imports, evaluation)
        print(f"drama-train: {err or 'interrupted'}{_resume_hint(run['dir'])}", file=sys.stderr)
        return exit_code(err)


def _train(parser: argparse.ArgumentParser, args: argparse.Namespace, run: dict[str, Any]) -> int:
    import torch

    from drama_agent.agent import DramaAgent
    from drama_agent.atomic import WriteError
    from drama_agent.checkpoint import round_weights
    from drama_agent.checks import resolve_device
    from drama_agent.envs import env_protocol, make_env
    from drama_agent.model_card import preset_name
    from drama_agent.protocol import protocol_score, write_protocol
    from drama_agent.scores import game_name
    from drama_agent.trainer import NonFiniteLossError

    if args.threads is not None and args.threads < 1:
        parser.error(f"--threads must be at least 1, got {args.threads}")
    started = time.perf_counter()
    try:
        for option, value, minimum in (("--steps", args.steps, 1), ("--eval-episodes", args.eval_episodes, 0)):
            if value is not None and value < minimum:
                raise ValueError(f"{option} must be an int >= {minimum}, got {value}")
        if args.log_every < 1:
            raise ValueError(f"--log-every must be an int >= 1, got {args.log_every}")
        if args.resume is not None:
            agent = DramaAgent.load(args.resume, device=resolve_device(args.device))
            run_dir = args.resume
            print(f"resuming {run_dir} at step {agent.num_timesteps}")
            given = [
                name
                for name, on in (
                    ("--steps", args.steps is not None),
                    ("--game", args.game is not None),
                    ("config fields", any(k.startswith("cfg__") and v is not None for k, v in vars(args).items())),
                )
                if on
            ]
            if given:
                verb = "is" if given in (["--steps"], ["--game"]) else "are"
                print(
                    f"drama-train: {', '.join(given)} {verb} ignored with --resume: the run keeps its saved config "
                    f"and continues to its total of {agent.cfg.train.total_steps + agent.cfg.train.freeze_steps} "
                    "env steps"
                )
        else:
            if args.game is None:
                parser.error("--game is required (or --resume RUN_DIR)")
            cfg = apply_config_arguments(DramaConfig.preset(args.preset), args).replace_path("seed", args.seed)
            if args.steps is not None:
                cfg = with_run_length(cfg, args.steps)
            env = make_env(args.game, cfg.env, seed=cfg.seed)
            agent = DramaAgent(cfg, env=env, device=args.device)
            stamp = time.strftime("%Y%m%d-%H%M%S")
            run_dir = args.run_dir or Path("runs") / f"{args.game.split('/')[-1]}-{args.preset}-seed{args.seed}-{stamp}"
            print(f"training {agent.env_id} with preset {args.preset} on {agent.device}; run directory {run_dir}")
        print(schedule(agent.cfg))
        protocol = env_protocol(agent.env)
        if protocol.get("auto_fire"):
            print("environment: FIRE is pressed for the agent after every reset and lost life (env.auto_fire)")
        if protocol.get("resize") == "max":
            print("environment: frames are shrunk by each channel's maximum, not INTER_AREA (env.resize max)")
    except (ValueError, FileNotFoundError) as err:
        print(f"drama-train: error: {err}", file=sys.stderr)
        return 2
    run["dir"] = run_dir
    cfg = agent.cfg
    describe_compute(cfg, agent.device, args.threads)
    total = cfg.train.total_steps + cfg.train.freeze_steps
    first_step = agent.num_timesteps
    try:
        agent.learn(
            total - agent.num_timesteps,
            progress_bar=not args.no_progress,
            run_dir=run_dir,
            log_every=args.log_every,
            reset_num_timesteps=False,
        )
        weights_dtype = None if args.weights_dtype == "float32" else getattr(torch, args.weights_dtype)
        if weights_dtype is not None:
            round_weights(agent.shared_modules(), weights_dtype)
        evaluation = None
        if args.eval_episodes > 0:
            eval_env = make_env(agent.env_id, cfg.env, seed=cfg.seed + 10_000)
            evaluation = agent.evaluate(
                eval_env, n_episodes=args.eval_episodes, deterministic=True, progress_bar=not args.no_progress
            )
            evaluation["episodes"] = args.eval_episodes
            evaluation["protocol"] = (
                f"{args.eval_episodes} greedy episodes after {agent.num_timesteps} agent steps, "
                f"environment seed {cfg.seed + 10_000}"
            )
            print(f"evaluation over {args.eval_episodes} episodes: {evaluation['mean']:.2f} ± {evaluation['std']:.2f}")
        name = f"drama-{preset_name(cfg)}-{game_name(agent.env_id).lower()}"
        folder = agent.save_pretrained(
            Path(run_dir) / "pretrained", evaluation=evaluation, name=name, weights_dtype=weights_dtype
        )
        print(f"shareable agent written to {folder}")
        summary = None if evaluation is None else {k: evaluation[k] for k in ("mean", "std", "episodes", "protocol")}
        record = protocol_score(
            run_dir, agent.env_id, agent.num_timesteps, time.perf_counter() - started, first_step, summary
        )
        write_protocol(run_dir, record)
    except NonFiniteLossError as err:
        print(f"drama-train: {err}", file=sys.stderr)
        return 1
    except WriteError as err:
        print(f"drama-train: {err}", file=sys.stderr)
        return 74
    score = "no training episode ended" if record["score"] is None else f"{record['score']:.2f}"
    print(f"protocol score ({record['protocol']}): {score}")
    return 0


def _resume_hint(run_dir: Path | None) -> str:
    """'; continue with: drama-train --resume DIR' when DIR holds a saved training state, else ''."""
    if run_dir is None:
        return ""
    from drama_agent.training_state import has_training_state

    return f"; continue with: drama-train --resume {run_dir}" if has_training_state(run_dir) else ""


def with_run_length(cfg: DramaConfig, steps: int) -> DramaConfig:
    """`cfg` for a run of `steps` env steps in all: learning, then the frozen tail (dropped if it would fill it)."""
    freeze = cfg.train.freeze_steps if steps > cfg.train.freeze_steps else 0
    return cfg.replace_path("train.freeze_steps", freeze).replace_path("train.total_steps", steps - freeze)


def schedule(cfg: DramaConfig) -> str:
    """The run's schedule in a line or two: steps in all, warm-up, updates and the frozen tail."""
    from drama_agent.trainer import planned_updates

    train = cfg.train
    total = train.total_steps + train.freeze_steps
    updates = planned_updates(train, total)
    first, last = train.warmup_steps + 1, min(total, train.total_steps + 1)
    every = "each step" if train.update_every == 1 else f"each step numbered a multiple of {train.update_every}"
    done = f"{updates} updates (one after {every} from {first} to {last})" if updates else "no update"
    if train.world_model_only_steps and updates:
        world_model_only = updates - planned_updates(train, total, actor_critic=True)
        done += (
            f", the first {world_model_only} of them world model only with random actions (the "
            f"{train.world_model_only_steps} world-model-only steps)"
        )
    line = (
        f"schedule: {total} env steps in all: random actions for the first {train.warmup_steps} (warm-up), {done}, "
        f"then {train.freeze_steps} frozen steps (no update) so the last episodes finish"
    )
    if updates:
        return line
    return (
        f"{line}\ndrama-train: warning: no update will run: the {total} steps end before the warm-up of "
        f"{train.warmup_steps} random steps is over (give --steps above {train.warmup_steps})"
    )


def describe_compute(cfg: DramaConfig, device: torch.device, threads: int | None) -> None:
    """Choose threads (and the allocator policy on CPU) and print them with the precision, each with why."""
    from drama_agent.cpu import apply_threads, choose_threads, keep_freed_memory
    from drama_agent.model_card import preset_name
    from drama_agent.precision import resolve_precision

    precision = resolve_precision(cfg.train.precision, device)
    print(f"precision: {precision.name} ({precision.reason})")
    choice = choose_threads(threads, small_model=preset_name(cfg) == "debug")
    apply_threads(choice)
    print(f"threads: {choice.threads} ({choice.reason}; inter-op 1)")
    print(f"compile: {'on (torch.compile of the fixed-shape networks)' if cfg.train.compile else 'off'}")
    if device.type == "cpu" and keep_freed_memory():
        print("memory: freed large blocks are kept for reuse instead of being returned to the OS")


if __name__ == "__main__":
    sys.exit(main())

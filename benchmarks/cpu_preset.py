"""Candidate CPU schedules for Pong: their cost per env step, and their learning under one wall-clock budget.

Every candidate is the `cpu` preset plus the `--section.field` overrides in CANDIDATES (the first, `cpu`, has
none), so each one is a plain `drama-train` command.

* `speed`: builds every candidate on Pong, fills its replay with random play, then times training steps
  (acting, env, updates) in alternating rounds, so every candidate sees the same machine load; reports
  seconds per env step (total time of the timed steps / their number) and the env steps that fit in the budget.
  Both wall-clock and the process's CPU time are recorded: on a machine shared with other jobs the CPU time
  (with one thread) is what the step would take on a core of its own; the projection uses it.
* `learn`: runs `drama-train` for each candidate, one after the other, stops it with SIGTERM (the training
  state is saved) after `--budget` seconds, and draws the episode returns of all runs side by side.

* `ball`: how visible Pong's ball stays at each frame size (INTER_AREA resizing, as `make_env` does).

Writes benchmarks/results/cpu_preset_speed.{json,md}, cpu_preset.{json,md,png} or cpu_preset_ball.{json,md}. Usage:
    OMP_NUM_THREADS=1 python benchmarks/cpu_preset.py speed [--rounds 2 --steps 24] [--quick]
    OMP_NUM_THREADS=2 python benchmarks/cpu_preset.py learn --budget 7200 [--candidates cpu cpu-64]
    python benchmarks/cpu_preset.py ball
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch

from drama_agent import DramaAgent, DramaConfig, make_env
from drama_agent.envs import resize_frame
from drama_agent.metrics import read_metrics
from drama_agent.plotting import episode_returns, plot_learning_curves
from drama_agent.scores import random_score

RESULTS = Path(__file__).resolve().parent / "results"
PLAYFIELD_ROWS = (34, 194)
"""Rows of the raw 210 x 160 Pong screen between the score and the bottom border."""
PARTS = ("env", "acting", "world_model", "imagination", "actor_critic")
CANDIDATES: dict[str, dict[str, object]] = {
    "cpu": {},
    "cpu-64": {"env.frame_size": 64},
    "cpu-every2": {"train.update_every": 2, "replay.batch_size": 4, "imagination.batch_size": 64},
}
"""Overrides of the `cpu` preset; every2 keeps the frames sampled per env step and halves the update size."""


def candidate_config(name: str) -> DramaConfig:
    cfg = DramaConfig.preset("cpu")
    for key, value in CANDIDATES[name].items():
        cfg = cfg.replace_path(key, value)
    return cfg


def override_flags(name: str) -> list[str]:
    """The candidate's overrides as drama-train options."""
    flags = []
    for key, value in CANDIDATES[name].items():
        text = ",".join(map(str, value)) if isinstance(value, tuple) else str(value)
        flags += [f"--{key}", text]
    return flags


def speed(args: argparse.Namespace) -> None:
    trainers = {}
    for name in args.candidates:
        cfg = candidate_config(name)
        cfg = cfg.replace_path("train.warmup_steps", min(cfg.train.warmup_steps, args.warmup))
        trainer = DramaAgent(cfg, env=make_env(args.game, cfg.env, seed=0), device="cpu").trainer
        while not trainer.learning:
            trainer.step()
        for _ in range(cfg.train.update_every):  # first update outside the timing (allocations)
            trainer.step()
        trainers[name] = trainer
    seconds = {name: 0.0 for name in trainers}
    cpu_seconds = {name: 0.0 for name in trainers}
    parts = {name: dict.fromkeys(PARTS, 0.0) for name in trainers}
    timed = {name: 0 for name in trainers}
    for _ in range(args.rounds):
        for name, trainer in trainers.items():

            @contextmanager
            def timer(section: str, name: str = name):
                start = time.process_time()
                yield
                parts[name][section] += time.process_time() - start

            trainer.timer = timer
            steps = args.steps * trainer.cfg.train.update_every
            start, cpu_start = time.perf_counter(), time.process_time()
            for _ in range(steps):
                trainer.step()
            seconds[name] += time.perf_counter() - start
            cpu_seconds[name] += time.process_time() - cpu_start
            timed[name] += steps
            print(f"{name}: {steps} steps in {time.perf_counter() - start:.1f} s", flush=True)
    rows = []
    for name, trainer in trainers.items():
        cfg = trainer.cfg
        per_step = cpu_seconds[name] / timed[name]
        rows.append(
            {
                "candidate": name,
                "overrides": {k: list(v) if isinstance(v, tuple) else v for k, v in CANDIDATES[name].items()},
                "config": cfg.to_dict(),
                "frame": cfg.env.frame_size,
                "update_every": cfg.train.update_every,
                "wm_batch": f"{cfg.replay.batch_size}x{cfg.replay.seq_len}",
                "imagination": f"{cfg.imagination.batch_size}x({cfg.imagination.context}+{cfg.imagination.horizon})",
                "parameters": trainer.world_model.parameter_counts()["total"]
                + sum(p.numel() for p in trainer.actor_critic.trainable_parameters()),
                "timed_steps": timed[name],
                "cpu_s_per_step": per_step,
                "wall_s_per_step": seconds[name] / timed[name],
                "ms_per_step_by_part": {k: 1e3 * v / timed[name] for k, v in parts[name].items()},
                "steps_in_budget": int(args.budget / per_step),
            }
        )
    meta = _meta(args) | {"rounds": args.rounds, "steps_per_round": args.steps, "budget_s": args.budget}
    _write(args.results, "cpu_preset_speed", {"meta": meta, "rows": rows}, _speed_table(meta, rows))


def _speed_table(meta: dict, rows: list[dict]) -> str:
    lines = [
        f"Pong, {meta['threads']} thread(s), torch {meta['torch']}, {meta['machine']}, load average at start "
        f"{meta['load']}; {meta['rounds']} alternating rounds of {meta['steps_per_round']} update rounds each.",
        "",
        "| candidate | frame | update every | wm batch | imagination | parameters | env | acting | world model "
        "| imagination | actor-critic | CPU s / env step | wall s / env step | env steps in "
        f"{meta['budget_s'] / 3600:g} h |",
        "|---|---:|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        ms = " | ".join(f"{r['ms_per_step_by_part'][p]:.0f}" for p in PARTS)
        lines.append(
            f"| {r['candidate']} | {r['frame']} | {r['update_every']} | {r['wm_batch']} | {r['imagination']} | "
            f"{r['parameters']:,} | {ms} | {r['cpu_s_per_step']:.3f} | {r['wall_s_per_step']:.3f} | "
            f"{r['steps_in_budget']:,} |"
        )
    lines += [
        "",
        "Parts are CPU ms per env step (an update round's cost divided over the steps it serves); the projection "
        "divides the budget by the CPU seconds per env step.",
    ]
    return "\n".join(lines) + "\n"


def ball(args: argparse.Namespace) -> None:
    """How visible Pong's ball stays after INTER_AREA resizing to each frame size, over random play."""
    env = gym.make("ALE/Pong-v5", frameskip=4, repeat_action_probability=0.0)
    screen, _ = env.reset(seed=0)
    rng = np.random.default_rng(0)
    background, white = np.array([144.0, 72.0, 17.0]), np.array([236.0, 236.0, 236.0])
    contrast: dict[int, list[float]] = {size: [] for size in args.sizes}
    for _ in range(args.frames):
        screen, _, terminated, truncated, _ = env.step(int(rng.integers(env.action_space.n)))
        if terminated or truncated:
            screen, _ = env.reset()
        field = screen[PLAYFIELD_ROWS[0] : PLAYFIELD_ROWS[1]]  # (160, 160, 3) between the score and the border
        pixels = np.argwhere((field == white).all(-1))
        if len(pixels) == 0:
            continue
        row, col = pixels.mean(0) + (PLAYFIELD_ROWS[0], 0)
        for size in args.sizes:
            small = resize_frame(screen, size).astype(np.float64)
            r, c = int(row * size / screen.shape[0]), int(col * size / screen.shape[1])
            patch = small[max(r - 1, 0) : r + 2, max(c - 1, 0) : c + 2]  # 3 x 3 around the ball
            contrast[size].append(float(np.abs(patch - background).sum(-1).max() / np.abs(white - background).sum()))
    rows = [
        {
            "frame": size,
            "frames_with_ball": len(values),
            "median": float(np.median(values)),
            "p10": float(np.percentile(values, 10)),
            "min": float(np.min(values)),
        }
        for size, values in contrast.items()
    ]
    lines = [
        f"Pong ball after resizing ({args.frames} random-play agent steps, seed 0): the largest colour difference "
        "from the background in the 3 x 3 pixels around the ball, as a fraction of the full ball contrast.",
        "",
        "| frame | frames with the ball | median | 10th percentile | minimum |",
        "|---:|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {r['frame']} | {r['frames_with_ball']} | {r['median']:.2f} | {r['p10']:.2f} | {r['min']:.2f} |"
        for r in rows
    ]
    _write(args.results, "cpu_preset_ball", {"rows": rows}, "\n".join(lines) + "\n")


def learn(args: argparse.Namespace) -> None:
    runs = Path(args.runs)
    results = []
    for name in args.candidates:
        run_dir = runs / name
        command = ["drama-train", "--game", args.game, "--preset", "cpu", "--seed", str(args.seed)]
        command += ["--run-dir", str(run_dir), "--eval-episodes", "0", "--no-progress", "--log-every", "10"]
        command += override_flags(name)
        print(" ".join(command), flush=True)
        start = time.perf_counter()
        process = subprocess.Popen([sys.executable, "-m", "drama_agent.cli.train", *command[1:]])
        try:
            process.wait(timeout=args.budget)
        except subprocess.TimeoutExpired:
            process.terminate()  # SIGTERM: drama-train finishes its step, saves the run and exits
            process.wait()
        _, returns = episode_returns(run_dir)
        results.append(
            {
                "candidate": name,
                "command": " ".join(command),
                "wall_s": time.perf_counter() - start,
                "episodes": len(returns),
                "env_steps": max((step for step, _, _ in read_metrics(run_dir)), default=0),
                "mean_last_10": sum(returns[-10:]) / len(returns[-10:]) if returns else None,
                "run_dir": str(run_dir),
            }
        )
    curves = {r["candidate"]: episode_returns(r["run_dir"]) for r in results}
    args.results.mkdir(parents=True, exist_ok=True)
    plot_learning_curves(
        curves,
        args.results / "cpu_preset.png",
        title=f"{args.game}, {args.budget:g} s per candidate",
        random_return=random_score(args.game),
    )
    meta = _meta(args) | {"budget_s": args.budget, "seed": args.seed}
    lines = [
        f"{args.game}, seed {args.seed}, {args.budget:g} s of `drama-train` per candidate, {meta['threads']} "
        f"thread(s), torch {meta['torch']}; curves: cpu_preset.png.",
        "",
        "| candidate | wall s | env steps (last logged) | episodes | mean return of the last 10 episodes |",
        "|---|---:|---:|---:|---:|",
    ]
    for r in results:
        last = "-" if r["mean_last_10"] is None else f"{r['mean_last_10']:.1f}"
        lines.append(f"| {r['candidate']} | {r['wall_s']:.0f} | {r['env_steps']:,} | {r['episodes']} | {last} |")
    _write(args.results, "cpu_preset", {"meta": meta, "runs": results}, "\n".join(lines) + "\n")


def _meta(args: argparse.Namespace) -> dict:
    return {
        "game": args.game,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "load": " ".join(f"{x:.1f}" for x in os.getloadavg()),
    }


def _write(folder: Path, stem: str, data: dict, table: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{stem}.json").write_text(json.dumps(data, indent=2))
    (folder / f"{stem}.md").write_text(table)
    print(table)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="mode", required=True)
    ball_parser = sub.add_parser("ball")
    ball_parser.add_argument("--sizes", type=int, nargs="+", default=[64, 48])
    ball_parser.add_argument("--frames", type=int, default=600, help="agent steps of random play")
    ball_parser.add_argument("--results", type=Path, default=RESULTS)
    for mode in ("speed", "learn"):
        p = sub.add_parser(mode)
        p.add_argument("--game", default="Pong")
        p.add_argument("--candidates", nargs="+", default=list(CANDIDATES), choices=list(CANDIDATES))
        p.add_argument("--budget", type=float, default=7200.0, help="wall-clock seconds per candidate")
        p.add_argument("--results", type=Path, default=RESULTS, help="output folder (default: benchmarks/results)")
    speed_parser, learn_parser = sub.choices["speed"], sub.choices["learn"]
    speed_parser.add_argument("--rounds", type=int, default=2, help="alternating rounds over the candidates")
    speed_parser.add_argument("--steps", type=int, default=24, help="update rounds timed per candidate and round")
    speed_parser.add_argument("--warmup", type=int, default=600, help="random steps before timing (at most)")
    learn_parser.add_argument("--seed", type=int, default=0)
    learn_parser.add_argument("--runs", default="runs/cpu_preset", help="folder of the candidates' run directories")
    args = parser.parse_args(argv)
    {"speed": speed, "learn": learn, "ball": ball}[args.mode](args)


if __name__ == "__main__":
    main()

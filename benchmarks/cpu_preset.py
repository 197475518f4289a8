"""Candidate CPU schedules for Pong: their cost per env step, and their learning under one wall-clock budget.

Every candidate is the `cpu` preset plus the `--section.field` overrides in CANDIDATES (the first, `cpu`, has
none), so each one is a plain `drama-train` command.

* `speed`: builds every candidate on Pong, fills its replay with random play, then times training steps
  (acting, env, updates) in alternating rounds, so every candidate sees the same machine load; reports
  seconds per env step (total time of the timed steps / their number) and the env steps that fit in the budget.
  Both wall-clock and the process's CPU time are recorded: on a machine shared with other jobs the CPU time
  (with one thread) is what the step would take on a core of its own; the projection uses it.
* `learn`: runs `drama-train` for each candidate, `--parallel` at a time with `--threads` each (default: two
  at once, one thread each, as the shipped agents were trained), stops each with SIGTERM (the training state
  is saved) after `--budget` seconds, and draws the episode returns of all runs side by side. With `--reuse`,
  a candidate whose run directory already exists is read, not trained again (its wall-clock comes from the
  run's training.json, when there is one).

* `ball`: how visible Pong's ball stays at each frame size (INTER_AREA resizing, as `make_env` does).
* `signals`: what a trained agent's world model has learned of the game's moving objects and rewards, on
  random play (seeded apart from training): the autoencoder's reconstruction error on the moving pixels (see
  `drama_agent.dream_quality`) next to a motionless median frame's, and the mean predicted reward on the steps
  whose real reward was positive, negative or zero, and the mean predicted termination probability on the steps
  that lost a life (or ended the game) and on the others. A model that has not learned the objects reconstructs
  no better than the median frame, and its reward and termination heads predict about their base rates everywhere.
* `wm-updates`: how many more world-model updates a saved run needs before its world model learns the moving
  objects: loads the run's training state (models, optimiser, replay), then does world-model updates only, on
  that replay, and measures `signals` on the same random-play episodes every `--every` updates, until `--updates`
  or `--budget` seconds. Nothing is saved: the run's state stays as it was.

Writes benchmarks/results/cpu_preset_speed.{json,md}, cpu_preset.{json,md,png}, cpu_preset_ball.{json,md} or
cpu_preset_signals.{json,md,png} or cpu_preset_wm_updates_LABEL.{json,md,png}. Usage:
    OMP_NUM_THREADS=1 python benchmarks/cpu_preset.py speed [--rounds 2 --steps 24] [--quick]
    python benchmarks/cpu_preset.py learn --budget 6600 [--candidates cpu cpu-every2] [--parallel 2] [--reuse]
    python benchmarks/cpu_preset.py ball
    python benchmarks/cpu_preset.py signals drama-cpu-pong runs/cpu_preset/cpu [--steps 2000]
    OMP_NUM_THREADS=1 python benchmarks/cpu_preset.py wm-updates runs/cpu_preset/cpu --budget 6000
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
from matplotlib.figure import Figure

from drama_agent import DramaAgent, DramaConfig, make_env
from drama_agent.dream_quality import MOVING_THRESHOLD, moving_pixels
from drama_agent.envs import RESIZE_MODES, resize_frame
from drama_agent.metrics import read_metrics
from drama_agent.plotting import episode_returns, plot_learning_curves
from drama_agent.scores import random_score
from drama_agent.trainer import planned_updates

RESULTS = Path(__file__).resolve().parent / "results"
PLAYFIELD_ROWS = (34, 194)
"""Rows of the raw 210 x 160 Pong screen between the score and the bottom border."""
EVAL_FILE = "eval_greedy.json"
"""drama-eval's result for a candidate's final agent, in its run directory."""
PARTS = ("env", "acting", "world_model", "imagination", "actor_critic")
CANDIDATES: dict[str, dict[str, object]] = {
    "cpu": {},
    "cpu-64": {"env.frame_size": 64},
    "cpu-every2": {"train.update_every": 2, "replay.batch_size": 4, "imagination.batch_size": 64},
    "cpu-lr3e-4": {"train.lr": 3e-4},
    "cpu-lr6e-4": {"train.lr": 6e-4},
    "cpu-wm-first": {"train.world_model_only_steps": 20_000, "train.lr": 6e-4},
}
"""Overrides of the `cpu` preset. every2 keeps the frames sampled per env step in twice as many updates of half
the size; lr3e-4 and lr6e-4 take 3x and 6x larger steps with the same updates; wm-first acts randomly and
updates only the world model (at lr 6e-4) for 20 000 steps after the warm-up, then runs the whole loop."""


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
    """How visible Pong's ball stays after resizing to each frame size (each `EnvConfig.resize` mode), over
    random play."""
    env = gym.make("ALE/Pong-v5", frameskip=4, repeat_action_probability=0.0)
    screen, _ = env.reset(seed=0)
    rng = np.random.default_rng(0)
    background, white = np.array([144.0, 72.0, 17.0]), np.array([236.0, 236.0, 236.0])
    cases = [(size, mode) for size in args.sizes for mode in args.modes]
    contrast: dict[tuple[int, str], list[float]] = {case: [] for case in cases}
    for _ in range(args.frames):
        screen, _, terminated, truncated, _ = env.step(int(rng.integers(env.action_space.n)))
        if terminated or truncated:
            screen, _ = env.reset()
        field = screen[PLAYFIELD_ROWS[0] : PLAYFIELD_ROWS[1]]  # (160, 160, 3) between the score and the border
        pixels = np.argwhere((field == white).all(-1))
        if len(pixels) == 0:
            continue
        row, col = pixels.mean(0) + (PLAYFIELD_ROWS[0], 0)
        for size, mode in cases:
            small = resize_frame(screen, size, mode).astype(np.float64)
            r, c = int(row * size / screen.shape[0]), int(col * size / screen.shape[1])
            patch = small[max(r - 1, 0) : r + 2, max(c - 1, 0) : c + 2]  # 3 x 3 around the ball
            difference = np.abs(patch - background).sum(-1).max() / np.abs(white - background).sum()
            contrast[size, mode].append(float(difference))
    rows = [
        {
            "frame": size,
            "resize": mode,
            "frames_with_ball": len(values),
            "median": float(np.median(values)),
            "p10": float(np.percentile(values, 10)),
            "min": float(np.min(values)),
        }
        for (size, mode), values in contrast.items()
    ]
    lines = [
        f"Pong ball after resizing ({args.frames} random-play agent steps, seed 0): the largest colour difference "
        "from the background in the 3 x 3 pixels around the ball, as a fraction of the full ball contrast.",
        "",
        "| frame | resize | frames with the ball | median | 10th percentile | minimum |",
        "|---:|---|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {r['frame']} | {r['resize']} | {r['frames_with_ball']} | {r['median']:.2f} | {r['p10']:.2f} "
        f"| {r['min']:.2f} |"
        for r in rows
    ]
    _write(args.results, "cpu_preset_ball", {"rows": rows}, "\n".join(lines) + "\n")


def signals(args: argparse.Namespace) -> None:
    """Reconstruction of moving pixels, reward and termination prediction of each agent's world model on random
    play."""
    rows, strips = [], []
    for source in args.agents:
        path = Path(source)
        if (path / "state.safetensors").exists():
            agent = DramaAgent.load(path, device="cpu")
        else:
            agent = DramaAgent.from_pretrained(source, device="cpu")
        episodes = random_episodes(agent, args.steps, args.seed)
        trained = agent.num_timesteps if agent.pretrained_info is None else agent.pretrained_info["steps_trained"]
        row = {"agent": source, "env_id": agent.env_id, "steps_trained": trained}
        measured, rebuilt = world_model_signals(agent, episodes)
        rows.append(row | measured)
        first = episodes[0][0]
        shown = np.linspace(0, len(first) - 1, 8).round().astype(int)
        strips.append((source, first[shown], rebuilt[0][shown]))
    lines = [
        f"Random play ({args.steps} agent steps per agent, environment seed {args.seed}), torch {torch.__version__}. "
        "Reconstruction: encoder then decoder of each real frame; moving pixels: colour more than "
        f"{MOVING_THRESHOLD:g} away from the episode's median frame; mean squared error per pixel in [0, 1]. "
        "Predicted reward: the reward head's mean on the steps whose real reward had that sign. Predicted "
        "termination: the termination head's mean probability on the steps that lost a life or ended the game "
        "(their count in brackets) and on the others.",
        "",
        "| agent | game | env steps trained | moving pixels | reconstruction error on them | median frame's error "
        "| predicted reward when real > 0 | when < 0 | when 0 | predicted termination when a life is lost | "
        "otherwise |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        rewards = _reward_cells(r)
        ends = "-" if r["termination_on_ends"] is None else f"{r['termination_on_ends']:.3f} ({r['ends']})"
        lines.append(
            f"| {r['agent']} | {r['env_id']} | {r['steps_trained']:,} | {r['moving_fraction']:.1%} "
            f"| {r['moving_mse']:.4f} | {r['median_frame_mse']:.4f} | {rewards} | {ends} "
            f"| {r['termination_elsewhere']:.3f} |"
        )
    args.results.mkdir(parents=True, exist_ok=True)
    draw_strips(strips, args.results / "cpu_preset_signals.png")
    _write(args.results, "cpu_preset_signals", {"rows": rows, "seed": args.seed}, "\n".join(lines) + "\n")


def wm_updates(args: argparse.Namespace) -> DramaAgent:
    """World-model updates only on a saved run's replay, with the world model's signals every `--every` updates;
    returns the agent with its updated world model."""
    agent = DramaAgent.load(args.run, device="cpu")
    trainer = agent.trainer
    episodes = random_episodes(agent, args.steps, args.seed)
    label = args.label or Path(args.run).name
    meta = {
        "run": str(args.run),
        "game": agent.env_id,
        "env_steps": trainer.env_steps,
        "updates_before": trainer.updates,
        "replay_steps": len(trainer.replay),
        "lr": trainer.wm_optim.param_groups[0]["lr"],
        "precision": trainer.precision.reason,
        "signal_steps": args.steps,
        "signal_seed": args.seed,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
    }
    rows, recon, start, done = [], [], time.perf_counter(), 0
    while True:
        seconds = time.perf_counter() - start
        last = done == args.updates or seconds > args.budget
        if done % args.every == 0 or last:
            mean_recon = float(torch.stack(recon).mean()) if recon else None
            rows.append({"extra_updates": done, "seconds": seconds, "train_recon": mean_recon})
            rows[-1] |= world_model_signals(agent, episodes)[0]
            recon = []
            print(json.dumps(rows[-1]), flush=True)
            _write_wm_updates(args.results, label, meta, rows)
            if last:
                break
        recon.append(trainer.update_world_model()["world_model/recon"])
        done += 1
    return agent


def _write_wm_updates(folder: Path, label: str, meta: dict, rows: list[dict]) -> None:
    """The table, JSON and figure of `wm_updates` so far (rewritten at every measurement)."""
    lines = [
        f"{meta['game']}: world-model updates only, on the replay of {meta['run']} ({meta['env_steps']:,} env steps, "
        f"{meta['updates_before']:,} updates before), learning rate {meta['lr']:g}, {meta['precision']}, torch "
        f"{meta['torch']}, {meta['threads']} thread(s), {meta['machine']}. Signals as in `signals`, on "
        f"{meta['signal_steps']} steps of random play (environment seed {meta['signal_seed']}); training "
        "reconstruction loss: the world model's `recon` term, mean over the updates since the row before.",
        "",
        "| extra updates | seconds | training reconstruction loss | moving-pixel error | median frame's "
        "| predicted reward when real > 0 | when < 0 | when 0 |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        recon = "-" if r["train_recon"] is None else f"{r['train_recon']:.2f}"
        rewards = _reward_cells(r)
        lines.append(
            f"| {r['extra_updates']:,} | {r['seconds']:.0f} | {recon} | {r['moving_mse']:.4f} "
            f"| {r['median_frame_mse']:.4f} | {rewards} |"
        )
    stem = f"cpu_preset_wm_updates_{label}"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{stem}.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    (folder / f"{stem}.md").write_text("\n".join(lines) + "\n")
    updates = [meta["updates_before"] + r["extra_updates"] for r in rows]
    fig = Figure(figsize=(10, 3.6))
    left, right = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    left.plot(updates, [r["moving_mse"] for r in rows], marker=".", label="reconstruction")
    left.plot(updates, [r["median_frame_mse"] for r in rows], "k--", label="median frame")
    left.set(xlabel="world-model updates", ylabel="error on moving pixels", title=f"{meta['game']}: moving objects")
    for key, name in (("reward_pos", "real reward > 0"), ("reward_neg", "real reward < 0"), ("reward_zero", "= 0")):
        if any(r[key] is not None for r in rows):
            right.plot(updates, [r[key] for r in rows], marker=".", label=name)
    right.set(xlabel="world-model updates", ylabel="mean predicted reward", title="reward head")
    for ax in (left, right):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(folder / f"{stem}.png", dpi=100)


def _reward_cells(row: dict) -> str:
    """The mean predicted reward by the real reward's sign, as three table cells."""
    return " | ".join("-" if row[k] is None else f"{row[k]:+.3f}" for k in ("reward_pos", "reward_neg", "reward_zero"))


def random_episodes(
    agent: DramaAgent, steps: int, seed: int
) -> list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """(obs (T, S, S, 3), actions (T,), rewards (T,), ends (T,)) of uniformly random play, `steps` agent steps in
    all; `ends` flags the steps that lost a life or ended the game (the world model's termination targets)."""
    env = make_env(agent.env_id, agent.cfg.env, seed=seed)
    rng = np.random.default_rng(seed)
    episodes, left = [], steps
    while left > 0:
        obs, _ = env.reset()
        frames, actions, rewards, ends, done = [], [], [], [], False
        while not done and left > 0:
            action = int(rng.integers(agent.num_actions))
            frames.append(obs)
            actions.append(action)
            obs, reward, terminated, truncated, info = env.step(action)
            rewards.append(float(reward))
            ends.append(terminated or bool(info.get("life_loss", False)))
            done, left = terminated or truncated, left - 1
        episodes.append(
            (np.stack(frames), np.asarray(actions, dtype=np.int64), np.asarray(rewards), np.asarray(ends, bool))
        )
    return episodes


@torch.no_grad()
def world_model_signals(
    agent: DramaAgent, episodes: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]
) -> tuple[dict, list[np.ndarray]]:
    """Moving-pixel reconstruction error (and the median frame's), mean predicted reward by the real one's sign,
    mean predicted termination probability on the steps that ended a life and on the others; and each episode's
    frames as the autoencoder reconstructs them (uint8, sampled latents, seed 0)."""
    wm = agent.world_model.eval()
    generator = torch.Generator().manual_seed(0)
    squared, motionless, moving_count, pixels = 0.0, 0.0, 0, 0
    predicted, real, reconstructions, termination, ends_all = [], [], [], [], []
    for frames, actions, rewards, ends in episodes:
        z = wm.sample(wm.encode(torch.as_tensor(frames)[None]), generator)
        rebuilt = wm.to_uint8(wm.decode(z))[0].numpy()
        reconstructions.append(rebuilt)
        moving = moving_pixels(frames)
        median = np.median(frames, axis=0)
        squared += float(((rebuilt / 255.0 - frames / 255.0) ** 2).mean(-1)[moving].sum())
        motionless += float(((median / 255.0 - frames / 255.0) ** 2).mean(-1)[moving].sum())
        moving_count, pixels = moving_count + int(moving.sum()), pixels + moving.size
        d, _ = wm.sequence_model(z, torch.as_tensor(actions)[None])
        predicted.append(wm.predict_reward(d)[0].float().numpy())  # r_t of the transition (o_t, a_t)
        real.append(rewards)
        termination.append(torch.sigmoid(wm.predict_termination_logit(d))[0].float().numpy())
        ends_all.append(ends)
    predicted_all, real_all = np.concatenate(predicted), np.concatenate(real)
    terminations, ends = np.concatenate(termination), np.concatenate(ends_all)

    def mean_where(mask: np.ndarray) -> float | None:
        return float(predicted_all[mask].mean()) if mask.any() else None

    measured = {
        "moving_fraction": moving_count / pixels,
        "moving_mse": squared / max(moving_count, 1),
        "median_frame_mse": motionless / max(moving_count, 1),
        "reward_pos": mean_where(real_all > 0),
        "reward_neg": mean_where(real_all < 0),
        "reward_zero": mean_where(real_all == 0),
        "reward_counts": [int((real_all > 0).sum()), int((real_all < 0).sum()), int((real_all == 0).sum())],
        "ends": int(ends.sum()),
        "termination_on_ends": float(terminations[ends].mean()) if ends.any() else None,
        "termination_elsewhere": float(terminations[~ends].mean()),
    }
    return measured, reconstructions


def draw_strips(strips: list[tuple[str, np.ndarray, np.ndarray]], path: Path) -> None:
    """For each agent, a row of real frames above the same frames as its autoencoder reconstructs them."""
    fig = Figure(figsize=(12, 3.2 * len(strips)))
    for k, (name, real, rebuilt) in enumerate(strips):
        ax = fig.add_subplot(len(strips), 1, k + 1)
        ax.imshow(np.concatenate([np.concatenate(list(real), 1), np.concatenate(list(rebuilt), 1)], 0))
        ax.set_title(f"{name}: real (top) and reconstructed (bottom)")
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def learn_command(name: str, args: argparse.Namespace) -> list[str]:
    """The `drama-train` command of one candidate (what the shipped agents were trained with, plus overrides)."""
    command = ["drama-train", "--game", args.game, "--preset", "cpu", "--seed", str(args.seed)]
    command += ["--steps", str(args.steps), "--run-dir", str(Path(args.runs) / name), "--eval-episodes", "0"]
    return command + ["--no-progress", "--weights-dtype", "bfloat16", *override_flags(name)]


def learn(args: argparse.Namespace) -> None:
    """Train the candidates, `--parallel` at a time with `--threads` each, each stopped after `--budget` s."""
    runs = Path(args.runs)
    wall: dict[str, float | None] = {}
    cpu: dict[str, float | None] = {}
    waiting = []
    for name in args.candidates:
        if args.reuse and (runs / name / "metrics.csv").exists():
            record_path = runs / name / "training.json"
            record = json.loads(record_path.read_text()) if record_path.exists() else {}
            wall[name], cpu[name] = record.get("wall_clock_s"), record.get("cpu_s")
            print(f"{name}: reusing the run in {runs / name}", flush=True)
        else:
            waiting.append(name)
    running: dict[str, tuple[subprocess.Popen, float]] = {}
    env = os.environ | {"OMP_NUM_THREADS": str(args.threads)}
    while waiting or running:
        while waiting and len(running) < args.parallel:
            name = waiting.pop(0)
            command = learn_command(name, args)
            print(" ".join(command), flush=True)
            process = subprocess.Popen([sys.executable, "-m", "drama_agent.cli.train", *command[1:]], env=env)
            running[name] = (process, time.perf_counter())
        for name, (process, start) in list(running.items()):
            pid, _, usage = os.wait4(process.pid, os.WNOHANG)
            if pid == 0 and time.perf_counter() - start > args.budget:
                process.terminate()  # SIGTERM: drama-train finishes its step, saves the run and exits
            elif pid != 0:
                wall[name], cpu[name] = time.perf_counter() - start, usage.ru_utime + usage.ru_stime
                del running[name]
        time.sleep(1.0)
    for name in args.candidates:
        evaluate_run(runs / name, args)
    results = [learn_result(name, runs / name, wall[name], cpu[name], args) for name in args.candidates]
    curves = {r["candidate"]: episode_returns(r["run_dir"]) for r in results}
    args.results.mkdir(parents=True, exist_ok=True)
    plot_learning_curves(
        curves,
        args.results / "cpu_preset.png",
        title=f"{args.game}, {args.budget:g} s of drama-train per candidate",
        random_return=random_score(args.game),
    )
    meta = _meta(args) | {"budget_s": args.budget, "seed": args.seed, "parallel": args.parallel}
    _write(args.results, "cpu_preset", {"meta": meta, "runs": results}, _learn_table(meta, results, args))


def evaluate_run(run_dir: Path, args: argparse.Namespace) -> None:
    """Greedy evaluation of a run's final agent with drama-eval into RUN/eval_greedy.json (kept if it exists)."""
    if args.eval_episodes == 0 or (run_dir / EVAL_FILE).exists():
        return
    command = ["drama-eval", str(run_dir), "--episodes", str(args.eval_episodes), "--seed", str(args.eval_seed)]
    command += ["--device", "cpu", "--json", str(run_dir / EVAL_FILE)]
    print(" ".join(command), flush=True)
    env = os.environ | {"OMP_NUM_THREADS": str(args.threads)}
    subprocess.run([sys.executable, "-m", "drama_agent.cli.evaluate", *command[1:]], env=env, check=True)


def learn_result(name: str, run_dir: Path, wall_s: float | None, cpu_s: float | None, args) -> dict:
    """What one candidate's run reached: env steps, updates, episodes, returns and the actor's last entropy."""
    train = candidate_config(name).replace_path("train.total_steps", args.steps).train
    metrics = read_metrics(run_dir)
    _, returns = episode_returns(run_dir)
    env_steps = max((step for step, _, _ in metrics), default=0)
    entropy = [value for _, metric, value in metrics if metric == "actor_critic/entropy"]
    last = returns[-args.last :]
    evaluation = json.loads((run_dir / EVAL_FILE).read_text()) if (run_dir / EVAL_FILE).exists() else None
    return {
        "candidate": name,
        "command": " ".join(learn_command(name, args)),
        "overrides": {k: list(v) if isinstance(v, tuple) else v for k, v in CANDIDATES[name].items()},
        "wall_s": wall_s,
        "cpu_s": cpu_s,
        "env_steps": env_steps,
        "updates": planned_updates(train, env_steps),
        "actor_critic_updates": planned_updates(train, env_steps, actor_critic=True),
        "episodes": len(returns),
        "returns": returns,
        "mean_last": sum(last) / len(last) if last else None,
        "best": max(returns, default=None),
        "last_entropy": float(entropy[-1]) if entropy else None,
        "greedy": None if evaluation is None else {k: evaluation[k] for k in ("mean", "std", "episodes", "seed")},
        "run_dir": str(run_dir),
    }


def _learn_table(meta: dict, results: list[dict], args: argparse.Namespace) -> str:
    lines = [
        f"{meta['game']}, seed {meta['seed']}, {meta['budget_s']:g} s of `drama-train` per candidate, "
        f"{args.parallel} at a time with {args.threads} thread(s) each, torch {meta['torch']}, {meta['machine']}; "
        "curves: cpu_preset.png.",
        "",
        "| candidate | overrides of `cpu` | wall s | CPU s | env steps (last logged) | updates | episodes "
        f"| mean return of the last {args.last} episodes | best episode | actor entropy at the end "
        f"| greedy evaluation ({args.eval_episodes} episodes, seed {args.eval_seed}) |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        overrides = ", ".join(f"{k} {v}" for k, v in r["overrides"].items()) or "(none)"
        wall, cpu = ("-" if r[key] is None else f"{r[key]:.0f}" for key in ("wall_s", "cpu_s"))
        mean = "-" if r["mean_last"] is None else f"{r['mean_last']:.2f}"
        best = "-" if r["best"] is None else f"{r['best']:g}"
        entropy = "-" if r["last_entropy"] is None else f"{r['last_entropy']:.2f}"
        greedy = "-" if r["greedy"] is None else f"{r['greedy']['mean']:.2f} ± {r['greedy']['std']:.2f}"
        updates = f"{r['updates']:,}"
        if r["actor_critic_updates"] != r["updates"]:
            updates += f" ({r['actor_critic_updates']:,} with the actor-critic)"
        lines.append(
            f"| {r['candidate']} | {overrides} | {wall} | {cpu} | {r['env_steps']:,} | {updates} "
            f"| {r['episodes']} | {mean} | {best} | {entropy} | {greedy} |"
        )
    return "\n".join(lines) + "\n"


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


def main(argv: list[str] | None = None) -> DramaAgent | None:
    """Run one mode; `wm-updates` returns its agent."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="mode", required=True)
    ball_parser = sub.add_parser("ball")
    ball_parser.add_argument("--sizes", type=int, nargs="+", default=[64, 48])
    ball_parser.add_argument("--modes", nargs="+", default=list(RESIZE_MODES), choices=RESIZE_MODES)
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
    learn_parser.add_argument("--steps", type=int, default=30_000, help="drama-train --steps (the budget stops it)")
    learn_parser.add_argument("--runs", default="runs/cpu_preset", help="folder of the candidates' run directories")
    learn_parser.add_argument("--parallel", type=int, default=2, help="candidates trained at the same time")
    learn_parser.add_argument("--threads", type=int, default=1, help="OMP_NUM_THREADS of each drama-train")
    learn_parser.add_argument("--last", type=int, default=20, help="episodes averaged at the end of each run")
    learn_parser.add_argument("--eval-episodes", type=int, default=30, help="greedy drama-eval episodes (0: none)")
    learn_parser.add_argument("--eval-seed", type=int, default=100_000, help="environment seed of the evaluation")
    learn_parser.add_argument(
        "--reuse", action="store_true", help="read a candidate's existing run in --runs instead of training it"
    )
    signals_parser = sub.add_parser("signals")
    signals_parser.add_argument("agents", nargs="+", help="shipped checkpoint names, folders or run directories")
    signals_parser.add_argument("--steps", type=int, default=2000, help="agent steps of random play per agent")
    signals_parser.add_argument("--seed", type=int, default=300_000, help="environment seed (apart from training)")
    signals_parser.add_argument("--results", type=Path, default=RESULTS)
    wm_parser = sub.add_parser("wm-updates")
    wm_parser.add_argument("run", help="a run directory with state.safetensors")
    wm_parser.add_argument("--updates", type=int, default=100_000, help="world-model updates at most")
    wm_parser.add_argument("--budget", type=float, default=6000.0, help="wall-clock seconds at most")
    wm_parser.add_argument("--every", type=int, default=250, help="updates between measurements")
    wm_parser.add_argument("--steps", type=int, default=1000, help="agent steps of random play measured")
    wm_parser.add_argument("--seed", type=int, default=300_000, help="environment seed of that play")
    wm_parser.add_argument("--label", help="names the result files (default: the run directory's name)")
    wm_parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    modes = {"speed": speed, "learn": learn, "ball": ball, "signals": signals, "wm-updates": wm_updates}
    return modes[args.mode](args)


if __name__ == "__main__":
    main()

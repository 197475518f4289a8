"""Time per env step of training, split into its parts, for `debug` and (reduced batches) `xs`.

Parts: env (the real game), acting (choosing the action with the world model and actor), world-model update,
imagination (the no-grad dream), actor-critic update. The replay is first filled with random play; each part
is timed over `--steps` training steps after `--warmup` untimed ones and reported as a median in ms.
On CUDA the default is the full xs config in fp32 and bf16 and the cpu preset in bf16; on CPU, xs runs with
the reduced batches below (a full xs update does not fit a reasonable CPU time budget). The process keeps freed
large blocks (`drama_agent.cpu.keep_freed_memory`, as `drama-train` does) and uses the configs' default precision.

Writes benchmarks/results/train_step.{json,md} (on CUDA: train_step_cuda.{json,md}). Usage:
    OMP_NUM_THREADS=1 python benchmarks/train_step.py [--quick] [--game Pong]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from contextlib import contextmanager
from pathlib import Path

import torch

from drama_agent import DramaAgent, DramaConfig, make_env
from drama_agent.cpu import keep_freed_memory

RESULTS = Path(__file__).resolve().parent / "results"
CPU_XS = {"replay.batch_size": 2, "replay.seq_len": 64, "imagination.batch_size": 64}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def measure(cfg: DramaConfig, game: str, steps: int, warmup: int, device: str) -> dict[str, float]:
    cfg = cfg.replace_path(
        "train.warmup_steps",
        max(cfg.imagination.batch_size + cfg.imagination.context, cfg.replay.seq_len + cfg.replay.batch_size) + 8,
    )
    agent = DramaAgent(cfg, env=make_env(game, cfg.env, seed=0), device=device)
    trainer = agent.trainer
    while not trainer.learning:
        trainer.step()
    parts: dict[str, list[float]] = {k: [] for k in ("env", "acting", "world_model", "imagination", "actor_critic")}

    @contextmanager
    def timer(name: str):
        _sync(trainer.device)
        start = time.perf_counter()
        yield
        _sync(trainer.device)
        parts[name].append((time.perf_counter() - start) * 1e3)

    for _ in range(warmup):
        trainer.step()
    trainer.timer = timer
    for _ in range(steps):
        trainer.step()
    result = {k: statistics.median(v) for k, v in parts.items()}
    result["total"] = sum(result.values())
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="debug preset only, 5 steps")
    parser.add_argument("--game", default="Pong")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args(argv)
    keep_freed_memory()
    torch.manual_seed(0)
    steps = 5 if args.quick else args.steps
    cases = [("debug", DramaConfig.preset("debug"), {})]
    if not args.quick:
        if args.device == "cpu":
            cases.append(("xs (reduced batches)", DramaConfig.preset("xs"), CPU_XS))
        else:
            cases.append(("xs fp32", DramaConfig.preset("xs").replace_path("train.precision", "fp32"), {}))
            cases.append(("xs bf16", DramaConfig.preset("xs").replace_path("train.precision", "bf16"), {}))
            cases.append(("cpu preset, bf16", DramaConfig.preset("cpu").replace_path("train.precision", "bf16"), {}))
    rows = []
    for name, cfg, overrides in cases:
        for key, value in overrides.items():
            cfg = cfg.replace_path(key, value)
        timing = measure(cfg, args.game, steps, args.warmup, args.device)
        rows.append(
            {
                "case": name,
                "overrides": overrides,
                "ms": timing,
                "wm_batch": f"{cfg.replay.batch_size}x{cfg.replay.seq_len}",
                "imagination": f"{cfg.imagination.batch_size}x({cfg.imagination.context}+{cfg.imagination.horizon})",
                "projected_100k_hours": timing["total"] * 100_000 / 3.6e6,
            }
        )
        print(name, {k: round(v, 1) for k, v in timing.items()}, flush=True)
    meta = {
        "device": args.device,
        "device_name": torch.cuda.get_device_name(args.device) if args.device != "cpu" else platform.processor(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "machine": platform.machine(),
        "game": args.game,
        "steps": steps,
        "quick": args.quick,
    }
    RESULTS.mkdir(exist_ok=True)
    stem = "train_step" if args.device == "cpu" else "train_step_cuda"
    (RESULTS / f"{stem}.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    parts = ("env", "acting", "world_model", "imagination", "actor_critic")
    lines = [
        f"Device {args.device} ({meta['device_name']}), torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"game {args.game}; "
        f"median ms per env step over {steps} steps (share of the step in brackets).",
        "",
        "| case | wm batch | imagination | env | acting | world-model update | imagination | actor-critic update "
        "| total |",
        "|---" * 9 + "|",
    ]
    for r in rows:
        ms = r["ms"]
        cells = " | ".join(f"{ms[p]:.1f} ({100 * ms[p] / ms['total']:.0f} %)" for p in parts)
        lines.append(f"| {r['case']} | {r['wm_batch']} | {r['imagination']} | {cells} | {ms['total']:.1f} |")
    if args.device != "cpu":
        lines += ["", "Projected wall-clock of 100k env steps at these rates (no evaluation, no logging):", ""]
        lines += [f"* {r['case']}: {r['projected_100k_hours']:.1f} h" for r in rows]
    (RESULTS / f"{stem}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()

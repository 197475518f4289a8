"""Time of a `debug` training step (Catch) with 1 and 2 intra-op threads, to choose the default thread count.

Each setting runs in its own process (OpenMP reads OMP_NUM_THREADS and OMP_WAIT_POLICY when it starts):
1 thread, 2 threads (torch's default on a 2-core machine; OpenMP threads spin while they wait for each other),
and 2 threads with OMP_WAIT_POLICY=PASSIVE (waiting threads sleep). The settings take turns, one step each,
so that load from other programs falls on all of them alike; medians and fastest of `--steps` steps in ms.

Writes benchmarks/results/threads.{json,md}. Usage:
    python benchmarks/threads.py [--steps N]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
SETTINGS = {
    "1 thread": {"OMP_NUM_THREADS": "1"},
    "2 threads": {"OMP_NUM_THREADS": "2"},
    "2 threads, OMP_WAIT_POLICY=PASSIVE": {"OMP_NUM_THREADS": "2", "OMP_WAIT_POLICY": "PASSIVE"},
}


def worker() -> None:
    """Build a learning `debug` trainer on Catch, then time one `step` per line read from stdin."""
    import torch

    from drama_agent import DramaAgent, DramaConfig, make_env

    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
    cfg = DramaConfig.preset("debug").replace_path("train.warmup_steps", 60)
    trainer = DramaAgent(cfg, env=make_env("Catch", cfg.env, seed=0), device="cpu").trainer
    while not trainer.learning:
        trainer.step()
    for _ in range(3):
        trainer.step()
    print("ready", flush=True)
    for _ in sys.stdin:
        start = time.perf_counter()
        trainer.step()
        print(1000 * (time.perf_counter() - start), flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=15)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker()
        return
    load_before = os.getloadavg()[0]
    workers = {}
    for name, env in SETTINGS.items():
        command = [sys.executable, __file__, "--worker"]
        workers[name] = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env={**os.environ, **env}
        )
    times: dict[str, list[float]] = {name: [] for name in SETTINGS}
    for process in workers.values():
        assert process.stdout is not None and process.stdout.readline().strip() == "ready"
    for _ in range(args.steps):
        for name, process in workers.items():
            assert process.stdin is not None and process.stdout is not None
            process.stdin.write("step\n")
            process.stdin.flush()
            times[name].append(float(process.stdout.readline()))
    for process in workers.values():
        assert process.stdin is not None
        process.stdin.close()
        process.wait()
    result = {
        "cpus": os.cpu_count(),
        "load_before": load_before,
        "load_after": os.getloadavg()[0],
        "steps": args.steps,
        "rows": [
            {"setting": name, "median_ms": statistics.median(t), "fastest_ms": min(t), "ms": t}
            for name, t in times.items()
        ],
    }
    base = result["rows"][0]["median_ms"]
    lines = [
        "One `debug` training step on Catch (act, env step, world-model update, imagination, actor-critic "
        "update), ms; settings take turns, one step each.",
        "",
        "| setting | median ms | fastest ms | median / 1 thread |",
        "|---|---:|---:|---:|",
    ]
    for row in result["rows"]:
        lines.append(
            f"| {row['setting']} | {row['median_ms']:.0f} | {row['fastest_ms']:.0f} | {row['median_ms'] / base:.1f}× |"
        )
    lines += [
        "",
        f"{result['cpus']} CPUs, {args.steps} steps per setting, load average {result['load_before']:.1f} before "
        f"and {result['load_after']:.1f} after (other jobs shared the machine).",
    ]
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "threads.json").write_text(json.dumps(result, indent=2) + "\n")
    (RESULTS / "threads.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()

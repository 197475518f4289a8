"""How the sequence backbones scale with sequence length (training) and with history (stepping), on this machine.

For each backbone at XS width (d_model 512, 2 layers; the residual stack alone):
* train: time of one forward + backward (loss = mean of squares) over a (B, T, 512) input, the fastest of
  several repeats (robust to other processes on a shared CPU), and the peak memory of that step: the rise
  of the process's peak resident set size (Linux VmHWM, reset through /proc/self/clear_refs just before
  the step) in a fresh process per measurement;
* step: time of one `step` at a large batch from a zero state and from the state after `history` previous
  steps (that state is computed by a forward pass at batch 1 and its rows repeated; for the transformer it is
  a KV cache of `history` steps, so that row is measured at a smaller batch to fit in memory).

Writes benchmarks/results/sequence_scaling.{json,md}. Usage:
    OMP_NUM_THREADS=1 python benchmarks/sequence_scaling.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time

from peak_memory import rss_peak_rise_mib
from results_io import write_results

BACKBONES = ("mamba2", "mamba", "gru", "transformer")


def _stack(backbone: str):
    from drama_agent.config import SequenceConfig
    from drama_agent.sequence import build_backbone

    return build_backbone(SequenceConfig(backbone=backbone))


def child_train(backbone: str, length: int, batch: int, repeats: int) -> dict:
    """One process per measurement so allocator caches of earlier runs do not hide memory."""
    import torch

    torch.manual_seed(0)
    stack = _stack(backbone)
    x = torch.randn(batch, length, 512)

    def train_step() -> None:
        stack.zero_grad(set_to_none=True)
        y, _ = stack(x)
        y.square().mean().backward()

    peak_mib = rss_peak_rise_mib(train_step)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        train_step()
        times.append(time.perf_counter() - start)
    return {"time_ms": 1000 * min(times), "peak_mib": peak_mib}


def child_step(backbone: str, batch: int, history: int, repeats: int) -> dict:
    import torch

    from drama_agent.sequence import state_index

    torch.manual_seed(0)
    stack = _stack(backbone)
    with torch.no_grad():
        if history:
            _, state = stack(torch.randn(1, history, 512))
            state = state_index(state, torch.zeros(batch, dtype=torch.long))
        else:
            state = stack.initial_state(batch)
        x = torch.randn(batch, 512)
        stack.step(x, state)  # warm-up
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            _, state = stack.step(x, state)
            times.append(time.perf_counter() - start)
    return {"time_ms": 1000 * min(times)}


def run_child(*args: object) -> dict:
    command = [sys.executable, __file__, "--child", *map(str, args)]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def markdown(result: dict) -> str:
    lengths = sorted({row["T"] for row in result["train"]})
    lines = [
        f"Forward + backward per training step, batch {result['train_batch']}, XS width (d_model 512, 2 layers): "
        "fastest time in ms / peak memory rise in MiB.",
        "",
        "| backbone | " + " | ".join(f"T={t}" for t in lengths) + " |",
        "|---|" + "---|" * len(lengths),
    ]
    for backbone in BACKBONES:
        cells = {row["T"]: row for row in result["train"] if row["backbone"] == backbone}
        lines.append(
            f"| {backbone} | "
            + " | ".join(f"{cells[t]['time_ms']:.0f} / {cells[t]['peak_mib']:.0f}" for t in lengths)
            + " |"
        )
    lines += ["", "One `step` (fastest, ms):", "", "| backbone | batch | history | ms per step |", "|---|---|---|---|"]
    for row in result["step"]:
        lines.append(f"| {row['backbone']} | {row['batch']} | {row['history']} | {row['time_ms']:.1f} |")
    lines += [
        "",
        f"Machine: {result['machine']}, torch {result['torch']}, {result['threads']} threads.",
        f"Memory: {result['memory_method']}",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="two lengths, small step batch, short history")
    parser.add_argument("--train-batch", type=int, default=1)
    parser.add_argument("--step-batch", type=int, default=1024)
    parser.add_argument("--history", type=int, default=2000)
    parser.add_argument(
        "--transformer-cache-batch",
        type=int,
        default=64,
        help="batch of the transformer's long-history step row (its KV cache must fit in memory)",
    )
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        kind, backbone, *numbers = args.child
        fn = child_train if kind == "train" else child_step
        print(json.dumps(fn(backbone, *map(int, numbers))))
        return

    import torch

    lengths = (64, 256) if args.quick else (64, 128, 256, 512, 1024, 2048)
    step_batch, history = (64, 100) if args.quick else (args.step_batch, args.history)
    cache_batch = min(args.transformer_cache_batch, step_batch)
    repeats = 1 if args.quick else args.repeats
    result: dict = {
        "machine": f"{platform.machine()} CPU ({platform.processor() or 'unknown'})",
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "train_batch": args.train_batch,
        "memory_method": "rise of the peak resident set size (VmHWM after a /proc/self/clear_refs reset) during "
        "the first forward + backward, in a fresh process per cell; includes allocator overhead",
        "train": [],
        "step": [],
    }
    for backbone in BACKBONES:
        for length in lengths:
            row = run_child("train", backbone, length, args.train_batch, repeats)
            result["train"].append({"backbone": backbone, "T": length, "batch": args.train_batch, **row})
            print(backbone, "train T", length, row, flush=True)
        step_rows = [(step_batch, 0), (step_batch, history)]
        if backbone == "transformer" and cache_batch < step_batch:
            step_rows = [(step_batch, 0), (cache_batch, 0), (cache_batch, history)]
        for batch, hist in step_rows:
            row = run_child("step", backbone, batch, hist, 5 if args.quick else 10)
            result["step"].append({"backbone": backbone, "batch": batch, "history": hist, **row})
            print(backbone, "step batch", batch, "history", hist, row, flush=True)
    write_results(result, markdown(result), "sequence_scaling_quick" if args.quick else "sequence_scaling")


if __name__ == "__main__":
    main()

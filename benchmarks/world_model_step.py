"""Time and peak memory of one world-model update, and the DFS draw time of a full replay buffer.

Update = `WorldModel.loss` forward + backward + one Adam step (the real optimiser is LaProp, same cost class),
BatchNorm in train mode, on random uint8 frames. Cases:
* CPU: `debug` at its own batch (2 × 16) and `xs` at a CPU-sized batch (2 × 64), each with and without
  channels_last (`WorldModelConfig.channels_last`); fp32.
* CUDA (only if available): the full `xs` update, 16 × 128, in fp32 and in bf16 autocast, with and without
  channels_last.
Memory: the first update in a fresh process per case (activations, gradients and the new Adam state); on CPU
the rise of the peak resident set size (VmHWM, reset through /proc/self/clear_refs), on CUDA
`torch.cuda.max_memory_allocated` above the parameters. Time: fastest and median of `--repeats` updates after
two more (warm-up) updates; the fastest is robust to other processes on a shared machine.
DFS: a `ReplayBuffer` filled with 100 000 steps through `add` (64 × 64 frames), then the time of
`sample_world_model(16, 128)` and `sample_imagination(1024, 8)` (start draw, counter update and the gather of
the windows).

Writes benchmarks/results/world_model_step.{json,md} (`--quick`: world_model_step_quick.*, `--stem`: any name).
Usage:
    OMP_NUM_THREADS=2 python benchmarks/world_model_step.py [--quick] [--stem NAME]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import statistics
import subprocess
import sys
import time

from peak_memory import rss_peak_rise_mib
from results_io import write_results


def child_update(case: dict) -> dict:
    """Measure one case in this (fresh) process."""
    import torch

    from drama_agent.config import DramaConfig
    from drama_agent.world_model import build_world_model

    torch.manual_seed(0)
    device = torch.device(case["device"])
    cfg = DramaConfig.preset(case["preset"])
    cfg = dataclasses.replace(
        cfg, world_model=dataclasses.replace(cfg.world_model, channels_last=case["channels_last"])
    )
    model = build_world_model(cfg, 6).to(device).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    b, t, s = case["batch"], case["length"], cfg.env.frame_size
    g = torch.Generator().manual_seed(0)
    obs = torch.randint(0, 256, (b, t, s, s, 3), generator=g, dtype=torch.uint8).to(device)
    actions = torch.randint(0, 6, (b, t), generator=g).to(device)
    rewards = torch.randn(b, t, generator=g).to(device)
    terminations = (torch.rand(b, t, generator=g) < 0.01).float().to(device)
    bf16 = case["dtype"] == "bf16"

    def update() -> None:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            loss, _ = model.loss(obs, actions, rewards, terminations)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        update()
        sync()
        peak_mib = (torch.cuda.max_memory_allocated() - base) / 2**20
    else:
        peak_mib = rss_peak_rise_mib(update)
    update()  # warm-up
    sync()
    times = []
    for _ in range(case["repeats"]):
        start = time.perf_counter()
        update()
        sync()
        times.append(time.perf_counter() - start)
    return {"min_ms": 1000 * min(times), "median_ms": 1000 * statistics.median(times), "peak_mib": peak_mib}


def child_dfs(steps: int, repeats: int) -> dict:
    import numpy as np
    import torch

    from drama_agent.config import DramaConfig
    from drama_agent.replay import ReplayBuffer

    cfg = dataclasses.replace(DramaConfig.preset("xs").replay, capacity=steps)
    buffer = ReplayBuffer(cfg, (64, 64, 3))
    frames = np.random.default_rng(0).integers(0, 256, (16, 64, 64, 3), dtype=np.uint8)
    start = time.perf_counter()
    for i in range(steps):
        buffer.add(frames[i % 16], i % 6, 0.0, False)
    fill_s = time.perf_counter() - start
    g = torch.Generator().manual_seed(0)
    result = {"steps": steps, "fill_s": fill_s}
    for name, draw in (
        ("world_model_16x128_ms", lambda: buffer.sample_world_model(16, 128, g)),
        ("imagination_1024x8_ms", lambda: buffer.sample_imagination(1024, 8, g)),
    ):
        draw()
        times = []
        for _ in range(repeats):
            begin = time.perf_counter()
            draw()
            times.append(time.perf_counter() - begin)
        result[name] = 1000 * min(times)
        result[name.replace("_ms", "_median_ms")] = 1000 * statistics.median(times)
    return result


def run_child(kind: str, payload: dict) -> dict:
    command = [sys.executable, __file__, "--child", kind, json.dumps(payload)]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def markdown(result: dict) -> str:
    lines = [
        "One world-model update (loss forward + backward + Adam step), random frames, 6 actions; "
        "time in ms (fastest / median of the repeats), peak memory rise in MiB.",
        "",
        "| preset | device | batch × length | dtype | channels_last | fastest ms | median ms | peak MiB |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in result["updates"]:
        lines.append(
            f"| {row['preset']} | {row['device']} | {row['batch']} × {row['length']} | {row['dtype']} | "
            f"{'yes' if row['channels_last'] else 'no'} | {row['min_ms']:.0f} | {row['median_ms']:.0f} | "
            f"{row['peak_mib']:.0f} |"
        )
    lines += ["", "channels_last speed-up (ratio of the fastest times):", ""]
    lines += [f"* {name}: {ratio:.2f}×" for name, ratio in result["channels_last_speedup"].items()]
    dfs = result["dfs"]
    lines += [
        "",
        f"DFS draws from a {dfs['steps']:,}-step buffer (64 × 64 frames, filled through `add` in "
        f"{dfs['fill_s']:.1f} s), fastest / median ms, including the gather of the windows:",
        "",
        "| draw | fastest ms | median ms |",
        "|---|---|---|",
        f"| `sample_world_model(16, 128)` | {dfs['world_model_16x128_ms']:.1f} | "
        f"{dfs['world_model_16x128_median_ms']:.1f} |",
        f"| `sample_imagination(1024, 8)` | {dfs['imagination_1024x8_ms']:.1f} | "
        f"{dfs['imagination_1024x8_median_ms']:.1f} |",
    ]
    lines += [
        "",
        f"Machine: {result['machine']}, torch {result['torch']}, {result['threads']} threads"
        + (f", {result['cuda_device']}" if result.get("cuda_device") else ", no CUDA device (GPU rows not measured)")
        + ".",
        f"Memory: {result['memory_method']}",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer repeats, a 10 000-step replay buffer")
    parser.add_argument("--repeats", type=int, default=5, help="timed updates per case")
    parser.add_argument("--cpu-batch", type=int, nargs=2, default=(2, 64), metavar=("B", "T"), help="xs on CPU")
    parser.add_argument("--dfs-steps", type=int, default=100_000)
    parser.add_argument("--stem", help="name of the result files (default world_model_step, or ..._quick)")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        kind, payload = args.child[0], json.loads(args.child[1])
        print(json.dumps(child_update(payload) if kind == "update" else child_dfs(**payload)))
        return

    import torch

    repeats = 2 if args.quick else args.repeats
    cases = []
    for channels_last in (False, True):
        cases.append(dict(preset="debug", device="cpu", batch=2, length=16, dtype="fp32", channels_last=channels_last))
    for channels_last in (False, True):
        b, t = args.cpu_batch
        cases.append(dict(preset="xs", device="cpu", batch=b, length=t, dtype="fp32", channels_last=channels_last))
    if torch.cuda.is_available():
        for dtype in ("fp32", "bf16"):
            for channels_last in (False, True):
                cases.append(
                    dict(preset="xs", device="cuda", batch=16, length=128, dtype=dtype, channels_last=channels_last)
                )
    result: dict = {
        "machine": f"{platform.machine()} CPU ({platform.processor() or 'unknown'})",
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cuda_device": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
        "memory_method": "the first update in a fresh process per row (activations, gradients, new Adam state); "
        "CPU: rise of the peak resident set size (VmHWM after a /proc/self/clear_refs reset), allocator overhead "
        "included; CUDA: torch.cuda.max_memory_allocated above the allocation before the update",
        "updates": [],
    }
    for case in cases:
        row = {**case, **run_child("update", {**case, "repeats": repeats})}
        result["updates"].append(row)
        print(row, flush=True)
    speedups = {}
    for plain in result["updates"]:
        for fast in result["updates"]:
            same = all(plain[k] == fast[k] for k in ("preset", "device", "batch", "dtype"))
            if same and not plain["channels_last"] and fast["channels_last"]:
                speedups[f"{plain['preset']} {plain['device']} {plain['dtype']}"] = plain["min_ms"] / fast["min_ms"]
    result["channels_last_speedup"] = speedups
    steps = 10_000 if args.quick else args.dfs_steps
    result["dfs"] = run_child("dfs", {"steps": steps, "repeats": 3 if args.quick else 10})
    print(result["dfs"], flush=True)
    write_results(
        result, markdown(result), args.stem or ("world_model_step_quick" if args.quick else "world_model_step")
    )


if __name__ == "__main__":
    main()

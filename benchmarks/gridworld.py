"""The paper's long-sequence test (its Table 2) on this machine: Mamba-2, Mamba, GRU and Transformer.

The task is described in docs/algorithm.md §Long-sequence test.

Each backbone (parameter counts matched to Mamba-2 within 10 %) is trained by next-token prediction on
grid-world sequences of 8 frames (208 tokens) and 64 frames (1664 tokens) for a fixed number of steps
and seeds, then scored with the paper's error on held-out sequences (`gridworld_task.metrics`).
Writes `benchmarks/results/gridworld.json` and `.md`, beside the paper's laptop numbers.

    python benchmarks/gridworld.py            # the full table: about an hour on 2 CPU cores
    python benchmarks/gridworld.py --quick    # smoke test, seconds
    python benchmarks/gridworld.py --backbones mamba2 gru --steps 100 --seeds 1
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch
from gridworld_task.env import FRAME_LEN, generate
from gridworld_task.metrics import grid_error, oracle_cells
from gridworld_task.model import BACKBONES, matched_configs
from gridworld_task.train import GridTrainConfig, train_and_evaluate
from results_io import RESULTS, write_results

from drama_agent.config import SequenceConfig

PAPER = {
    # backbone: {frames: (ms per training step, error %)}; the transformer ran out of memory at 1664 tokens
    "mamba2": {8: (25.0, 15.6), 64: (214.0, 14.2)},
    "mamba": {8: (34.0, 13.9), 64: (299.0, 14.0)},
    "gru": {8: (75.0, 21.3), 64: (628.0, 34.7)},
    "transformer": {8: (45.0, 75.0), 64: (None, None)},
}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="tiny models, 52/208 tokens, 3 steps, 1 seed: a smoke test")
    p.add_argument("--backbones", nargs="+", choices=BACKBONES, default=list(BACKBONES))
    p.add_argument(
        "--frames",
        nargs="+",
        type=int,
        default=None,
        help="frames per sequence, 26 tokens each (default 8 64; quick 2 8)",
    )
    p.add_argument("--steps", type=int, default=None, help="training steps per run (default 300; quick 3)")
    p.add_argument("--seeds", type=int, default=None, help="seeds 0..n-1 per backbone and length (default 2)")
    p.add_argument("--batch", type=int, default=None, help="sequences per step (default 8; quick 2)")
    p.add_argument("--d-model", type=int, default=None, help="Mamba-2 width; others are matched (default 48)")
    p.add_argument("--n-layers", type=int, default=2, help="residual blocks per backbone")
    p.add_argument("--lr", type=float, default=1e-2, help="peak AdamW learning rate")
    p.add_argument("--eval-sequences", type=int, default=None, help="held-out sequences (default 64; quick 4)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", type=Path, default=RESULTS, help="folder for gridworld.json and gridworld.md")
    p.add_argument(
        "--merge",
        type=Path,
        nargs="+",
        metavar="DIR",
        help="train nothing: combine the gridworld.json of runs made with the same settings (e.g. one backbone "
        "per process) into one table in --out",
    )
    args = p.parse_args(argv)
    quick = args.quick
    for name, full, small in [
        ("frames", [8, 64], [2, 8]),
        ("steps", 300, 3),
        ("seeds", 2, 1),
        ("batch", 8, 2),
        ("d_model", 48, 24),
        ("eval_sequences", 64, 4),
    ]:
        if getattr(args, name) is None:
            setattr(args, name, small if quick else full)
    return args


def base_config(d_model: int, n_layers: int) -> SequenceConfig:
    """Mamba-2 reference for the matched widths: expand 2, headdim 16, d_state 16, 2 attention heads."""
    return SequenceConfig(
        d_model=d_model, n_layers=n_layers, expand=2, headdim=16, d_state=16, chunk_size=64, n_heads=2, max_len=2048
    )


def oracle_error(n_frames: int, n_sequences: int = 4096) -> dict[str, float]:
    """The error of the Bayes-optimal predictor: the floor of the metric at this length."""
    seqs = generate(n_sequences, n_frames, np.random.default_rng(12345))
    err = grid_error(oracle_cells(seqs), seqs)
    return {"geometric": err.geometric, "logic": err.logic, "error": err.error}


def summarise(runs: list[dict], configs: dict[str, SequenceConfig], frames: list[int]) -> list[dict]:
    rows = []
    for n_frames in frames:
        ref = [r["ms_per_step"] for r in runs if r["backbone"] == "mamba2" and r["n_frames"] == n_frames]
        for name in configs:
            mine = [r for r in runs if r["backbone"] == name and r["n_frames"] == n_frames]
            if not mine:
                continue
            errors = np.array([r["error"] for r in mine])
            ms = float(np.mean([r["ms_per_step"] for r in mine]))
            paper_ms, paper_err = PAPER[name].get(n_frames, (None, None))
            paper_ref = PAPER["mamba2"].get(n_frames, (None, None))[0]
            rows.append(
                {
                    "backbone": name,
                    "n_frames": n_frames,
                    "seq_len": n_frames * FRAME_LEN,
                    "d_model": mine[0]["d_model"],
                    "params": mine[0]["params"],
                    "ms_per_step": ms,
                    "ms_ratio_to_mamba2": ms / float(np.mean(ref)) if ref else None,
                    "activation_mib": float(np.mean([r["activation_mib"] for r in mine])),
                    "peak_cuda_mib": mine[0]["peak_cuda_mib"],
                    "geometric": float(np.mean([r["geometric"] for r in mine])),
                    "logic": float(np.mean([r["logic"] for r in mine])),
                    "error_mean": float(errors.mean()),
                    "error_std": float(errors.std(ddof=1)) if len(errors) > 1 else 0.0,
                    "final_loss": float(np.mean([r["final_loss"] for r in mine])),
                    "seeds": len(mine),
                    "paper_ms_per_step": paper_ms,
                    "paper_ms_ratio_to_mamba2": paper_ms / paper_ref if paper_ms and paper_ref else None,
                    "paper_error": paper_err,
                }
            )
    return rows


def _fmt(value: float | None, spec: str, missing: str = "—") -> str:
    return missing if value is None else format(value, spec)


def markdown(result: dict) -> str:
    s = result["settings"]
    lines = [
        "| backbone | tokens | d_model | params | ms/step | × Mamba-2 | act. MiB | geometric | logic "
        "| error (mean ± std) | paper ms/step | paper × Mamba-2 | paper error |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in result["rows"]:
        oom = r["backbone"] == "transformer" and r["n_frames"] == 64
        lines.append(
            f"| {r['backbone']} | {r['seq_len']} | {r['d_model']} | {r['params']:,} | {r['ms_per_step']:.0f} "
            f"| {_fmt(r['ms_ratio_to_mamba2'], '.2f')} | {r['activation_mib']:.1f} | {100 * r['geometric']:.1f} % "
            f"| {100 * r['logic']:.1f} % | {100 * r['error_mean']:.1f} ± {100 * r['error_std']:.1f} % "
            f"| {_fmt(r['paper_ms_per_step'], '.0f', 'OOM' if oom else '—')} "
            f"| {_fmt(r['paper_ms_ratio_to_mamba2'], '.2f', 'OOM' if oom else '—')} "
            f"| {_fmt(r['paper_error'], '.1f', 'OOM' if oom else '—')}{'' if r['paper_error'] is None else ' %'} |"
        )
    floors = ", ".join(f"{n * FRAME_LEN} tokens {100 * o['error']:.1f} %" for n, o in result["oracle"].items())
    lines += [
        "",
        f"Settings: {s['steps']} steps × batch {s['batch']}, {s['seeds']} seed(s), {s['n_layers']} layers, "
        f"Mamba-2 d_model {s['d_model']} (others matched), lr {s['lr']}, {s['eval_sequences']} held-out "
        f"sequences per seed, device {s['device']}, {s['threads']} threads, total {s['wall_s']:.0f} s.",
        f"Bayes-optimal floor of the error (positions redrawn at random cannot be predicted): {floors}.",
        "ms/step: forward + backward + optimiser; act. MiB: tensors saved for backward in one step. "
        "Paper: laptop GPU (docs/algorithm.md §Long-sequence test); compare the × Mamba-2 ratios, not absolute times.",
    ]
    return "\n".join(lines) + "\n"


def _sequence_config(fields: dict) -> SequenceConfig:
    return SequenceConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in fields.items()})


def merge(parts: list[Path]) -> dict:
    """One result from several runs of this script (same settings, different backbones)."""
    results = [json.loads((part / "gridworld.json").read_text()) for part in parts]
    keys = ("steps", "seeds", "batch", "d_model", "n_layers", "lr", "eval_sequences", "frames")
    for other in results[1:]:
        if any(other["settings"][k] != results[0]["settings"][k] for k in keys):
            raise SystemExit("--merge: the runs were made with different settings")
    configs = {name: _sequence_config(c) for r in results for name, c in r["configs"].items()}
    configs = {name: configs[name] for name in BACKBONES if name in configs}
    runs = [run for r in results for run in r["runs"]]
    frames = results[0]["settings"]["frames"]
    settings = results[0]["settings"] | {
        "backbones": list(configs),
        "wall_s": sum(r["settings"]["wall_s"] for r in results),
        "merged_from": [str(p) for p in parts],
    }
    oracle = {int(n): o for n, o in results[0]["oracle"].items()}
    return {
        "settings": settings,
        "configs": {name: dataclasses.asdict(c) for name, c in configs.items()},
        "oracle": oracle,
        "rows": summarise(runs, configs, frames),
        "runs": runs,
    }


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    if args.merge:
        result = merge(args.merge)
        write_results(result, markdown(result), "gridworld", args.out)
        return result
    start = time.perf_counter()
    configs = matched_configs(base_config(args.d_model, args.n_layers), tuple(args.backbones))
    runs = []
    for n_frames in args.frames:
        for name, seq_cfg in configs.items():
            for seed in range(args.seeds):
                cfg = GridTrainConfig(
                    n_frames=n_frames,
                    batch_size=args.batch,
                    steps=args.steps,
                    lr=args.lr,
                    warmup_steps=min(20, args.steps),
                    eval_sequences=args.eval_sequences,
                    eval_batch=min(args.eval_sequences, 16),
                    timing_skip=min(3, args.steps - 1),
                    seed=seed,
                )
                run = dataclasses.asdict(train_and_evaluate(seq_cfg, cfg, args.device)) | {"seed": seed}
                runs.append(run)
                print(
                    f"{name:12s} {n_frames * FRAME_LEN:5d} tokens seed {seed}: {run['ms_per_step']:7.1f} ms/step, "
                    f"loss {run['final_loss']:.3f}, error {100 * run['error']:.1f} %",
                    flush=True,
                )
    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    settings |= {
        "threads": torch.get_num_threads(),
        "wall_s": time.perf_counter() - start,
        "torch": torch.__version__,
        "machine": platform.processor() or platform.machine(),
    }
    result = {
        "settings": settings,
        "configs": {name: dataclasses.asdict(c) for name, c in configs.items()},
        "oracle": {n: oracle_error(n) for n in args.frames},
        "rows": summarise(runs, configs, args.frames),
        "runs": runs,
    }
    write_results(result, markdown(result), "gridworld", args.out)
    return result


if __name__ == "__main__":
    main()

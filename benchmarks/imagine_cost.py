"""Cost of one imagined step versus the length of the real context the dream starts from.

For each context length L, a `DreamEnv` (the stepping interface over the same imagination code as
`DramaAgent.imagine`) is reset on L real steps (not timed: encoding and the parallel prefill grow with L),
then `step(action)` is timed over the horizon: sequence-model step, prior sample, reward / termination /
value / policy heads and the decode of the dreamed frame. With a recurrent backbone the per-step cost should
not depend on L; the transformer's KV cache makes it grow. Reported: median ms per step over the horizon.

Writes benchmarks/results/imagine_cost.{json,md}. Usage:
    OMP_NUM_THREADS=1 python benchmarks/imagine_cost.py [--quick] [--preset xs] [--backbones mamba2 transformer]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from drama_agent import DramaAgent, DramaConfig
from drama_agent.dream import DreamEnv

RESULTS = Path(__file__).resolve().parent / "results"


def per_step_ms(agent: DramaAgent, length: int, horizon: int, rng: np.random.Generator) -> float:
    side = agent.cfg.env.frame_size
    dream = DreamEnv(agent, seed=0)
    dream.reset(rng.integers(0, 256, (length, side, side, 3), dtype=np.uint8), rng.integers(0, 6, length))
    times = []
    for action in rng.integers(0, 6, horizon):
        start = time.perf_counter()
        dream.step(int(action))
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="debug preset, contexts 8 and 64")
    parser.add_argument("--preset", default="xs")
    parser.add_argument("--backbones", nargs="+", default=["mamba2", "transformer"])
    parser.add_argument("--horizon", type=int, default=32)
    args = parser.parse_args(argv)
    preset = "debug" if args.quick else args.preset
    contexts = (8, 64) if args.quick else (8, 64, 256, 1024)
    rows = []
    for backbone in args.backbones:
        cfg = DramaConfig.preset(preset).replace_path("sequence.backbone", backbone)
        agent = DramaAgent(cfg, action_space=6, device="cpu")
        rng = np.random.default_rng(0)
        for length in contexts:
            rows.append({"backbone": backbone, "context": length, "ms": per_step_ms(agent, length, args.horizon, rng)})
            print(rows[-1], flush=True)
    meta = {
        "preset": preset,
        "horizon": args.horizon,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "machine": platform.machine(),
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "imagine_cost.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    lines = [
        f"`{preset}` preset, one dream (batch 1), CPU {torch.get_num_threads()} thread(s); median over "
        f"{args.horizon} imagined steps.",
        "",
        "| backbone | context L | ms per imagined step | vs L = 8 |",
        "|---|---:|---:|---:|",
    ]
    for r in rows:
        base = next(x["ms"] for x in rows if x["backbone"] == r["backbone"] and x["context"] == contexts[0])
        lines.append(f"| {r['backbone']} | {r['context']} | {r['ms']:.2f} | {r['ms'] / base:.2f}× |")
    (RESULTS / "imagine_cost.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()

"""The old CPU path against the new default, side by side in one run, as ratios (new / old, lower is better).

Two worker processes run for the whole benchmark, because some settings belong to the process:
* `old`: the path before this benchmark existed — glibc's default allocator, fp32, and the reference SSD form
  (`ssd_reference` below: the minimal SSD algorithm with a segment-sum decay matrix per chunk, chunk states and
  the inter-chunk recurrence by a decay matrix).
* `new`: the package's defaults (`drama_agent.cpu.keep_freed_memory()`, `ssd_chunked`, `ssd_step`,
  `train.precision` "auto", the default `world_model.channels_last`).
Rows: the SSD scan (forward + backward) and recurrent step against the reference form, then the parts of a
training step of `xs` at CPU batch sizes (`training_parts`), old path (fp32, no channels_last, the reference SSD
inside the model) against the new default. With `--compile` a third worker, `compiled`, runs the new default with
`train.compile` on (the fixed-shape networks compiled by torch.compile, built in its warm-up calls) in the same
alternation, for the training-step rows; the table adds compiled / new.
Both use the same thread count (`--threads`, default 1). For every case the parent asks the workers for one
timed repeat in turn (old, new, and for the SSD rows also the new code in the old process, which separates the
algorithm from the process setting), so that load from other programs hits all of them alike. Times are in ms;
the table gives the fastest and the median repeat and the ratios of both.

Writes benchmarks/results/cpu_speed.{json,md} (`--quick`: cpu_speed_quick.*; `--compile`: cpu_speed_compile.*).
Usage:
    python benchmarks/cpu_speed.py [--quick] [--compile] [--threads N] [--repeats R] [--cases NAME ...] [--out STEM]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable

from results_io import write_results

SSD_SHAPE = {"batch": 8, "heads": 16, "headdim": 64, "dstate": 16}


# ----------------------------------------------------------------------------------------------- old path


def segment_sum_reference(log_decay):
    """(..., L) -> (..., L, L): sum_{k=j+1..i} log_decay_k below and on the diagonal, -inf above."""
    import torch

    length = log_decay.shape[-1]
    expanded = log_decay.unsqueeze(-1).expand(*log_decay.shape, length)
    below = torch.ones(length, length, dtype=torch.bool).tril(-1)
    sums = expanded.masked_fill(~below, 0.0).cumsum(dim=-2)
    return sums.masked_fill(~torch.ones(length, length, dtype=torch.bool).tril(0), float("-inf"))


def ssd_reference(x, dt, A, B, C, chunk_size, initial_state=None):
    """The minimal SSD algorithm (same arguments and results as `ssd_chunked`; T a multiple of the chunk)."""
    import torch

    batch, length, nheads, headdim = x.shape
    chunk_size = min(chunk_size, length)
    B = B.repeat_interleave(nheads // B.shape[2], dim=2)  # (b, T, H, N)
    C = C.repeat_interleave(nheads // C.shape[2], dim=2)
    xdt, log_decay = x * dt.unsqueeze(-1), dt * A  # (b, T, H, P), (b, T, H)
    xdt, log_decay, B, C = (t.unflatten(1, (length // chunk_size, chunk_size)) for t in (xdt, log_decay, B, C))
    log_decay = log_decay.permute(0, 3, 1, 2)  # (b, H, c, l)
    cum = log_decay.cumsum(dim=-1)
    decay = torch.exp(segment_sum_reference(log_decay))  # (b, H, c, l, l)
    y_diag = torch.einsum("bclhn,bcshn,bhcls,bcshp->bclhp", C, B, decay, xdt)
    states = torch.einsum("bclhn,bhcl,bclhp->bchpn", B, torch.exp(cum[..., -1:] - cum), xdt)
    first = torch.zeros_like(states[:, :1]) if initial_state is None else initial_state.unsqueeze(1)
    states = torch.cat([first, states], dim=1)  # (b, c + 1, H, P, N)
    chunk_decay = torch.exp(segment_sum_reference(torch.nn.functional.pad(cum[..., -1], (1, 0))))
    states = torch.einsum("bhzc,bchpn->bzhpn", chunk_decay, states)
    y_off = torch.einsum("bclhn,bchpn,bhcl->bclhp", C, states[:, :-1], torch.exp(cum))
    return (y_diag + y_off).flatten(1, 2), states[:, -1]


def ssd_step_reference(state, x, dt, A, B, C):
    """The plain-PyTorch recurrent step of a Mamba-2 inference cache (updates `state` in place)."""
    import torch

    decay = torch.exp(dt * A)  # (b, H)
    added = torch.einsum("bh,bn,bhp->bhpn", dt, B[:, 0], x)
    state.copy_(state * decay[..., None, None] + added)
    return torch.einsum("bhpn,bn->bhp", state, C[:, 0]), state


# ----------------------------------------------------------------------------------------------- cases


def ssd_case(length: int, chunk: int, impl: str) -> Callable[[], None]:
    import torch

    from drama_agent.sequence.ssd import ssd_chunked

    scan = ssd_reference if impl == "old" else ssd_chunked
    g = torch.Generator().manual_seed(0)
    b, h, p, n = (SSD_SHAPE[k] for k in ("batch", "heads", "headdim", "dstate"))
    x = torch.randn(b, length, h, p, generator=g)
    dt = torch.nn.functional.softplus(torch.randn(b, length, h, generator=g) - 2.0)
    A = -torch.empty(h).uniform_(1.0, 16.0, generator=g)  # the model's initial range of -exp(A_log)
    B, C = torch.randn(b, length, 1, n, generator=g), torch.randn(b, length, 1, n, generator=g)
    inputs = [t.requires_grad_() for t in (x, dt, A, B, C)]
    grad_y, grad_state = torch.randn(b, length, h, p, generator=g), torch.randn(b, h, p, n, generator=g)

    def run() -> None:
        y, state = scan(*inputs, chunk)
        torch.autograd.backward((y, state), (grad_y, grad_state))
        for t in inputs:
            t.grad = None

    return run


def matmul_case(impl: str) -> Callable[[], None]:
    """The actor-critic update's largest product, (2176 × 1536) @ (1536 × 512): fp32 (old) or bf16 autocast (new).

    Not a target: it shows how much faster bf16 multiplies on this CPU, which bounds the actor-critic update
    (mostly such products)."""
    import torch

    generator = torch.Generator().manual_seed(0)
    features, weight = torch.randn(2176, 1536, generator=generator), torch.randn(512, 1536, generator=generator)

    def run() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=impl != "old"):
            torch.nn.functional.linear(features, weight)

    return run


def ssd_step_case(batch: int, impl: str) -> Callable[[], None]:
    import torch

    from drama_agent.sequence.ssd import ssd_step

    step = ssd_step_reference if impl == "old" else ssd_step
    g = torch.Generator().manual_seed(0)
    h, p, n = (SSD_SHAPE[k] for k in ("heads", "headdim", "dstate"))
    x, dt = torch.randn(batch, h, p, generator=g), torch.rand(batch, h, generator=g) * 0.1
    A = -torch.empty(h).uniform_(1.0, 16.0, generator=g)
    B, C = torch.randn(batch, 1, n, generator=g), torch.randn(batch, 1, n, generator=g)
    carried = [torch.randn(batch, h, p, n, generator=g)]

    def run() -> None:
        with torch.no_grad():
            _, carried[0] = step(carried[0], x, dt, A, B, C)

    return run


def training_parts(kind: str, quick: bool):
    """A trainer for `xs` at CPU batch sizes with a filled replay; `old` as before, `new` with the defaults,
    `compiled` the defaults with `train.compile`.

    World-model update at 4 × 64, imagination of 128 rollouts × (8 context + 16 steps), the actor-critic
    update on one such rollout, and acting (window mode over the last 16 real frames). `quick` halves them.
    """
    import numpy as np

    from drama_agent import DramaAgent, DramaConfig, make_env
    from drama_agent.sequence import mamba2

    cfg = DramaConfig.preset("xs")
    sizes = {
        "replay.batch_size": 2 if quick else 4,
        "replay.seq_len": 64,
        "imagination.batch_size": 64 if quick else 128,
    }
    for key, value in {**sizes, "train.warmup_steps": 200}.items():
        cfg = cfg.replace_path(key, value)
    if kind == "old":
        cfg = cfg.replace_path("train.precision", "fp32").replace_path("world_model.channels_last", False)
        mamba2.ssd_chunked = ssd_reference
    if kind == "compiled":
        cfg = cfg.replace_path("train.compile", True)
    env = make_env("Pong", cfg.env, seed=0)
    agent = DramaAgent(cfg, env=env, device="cpu")
    trainer = agent.trainer
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (64, 64, 64, 3), dtype=np.uint8)
    for i in range(300):
        trainer.replay.add(frames[i % 64], int(rng.integers(6)), float(rng.normal()), False)
    trainer.obs = frames[0]
    for _ in range(cfg.train.act_context):  # a full acting window
        trainer.choose_action()
    return agent, trainer.imagine()


def part_case(part: str, kind: str, quick: bool) -> Callable[[], None]:
    agent, rollout = training_parts(kind, quick)
    trainer = agent.trainer
    run = {
        "world_model": trainer.update_world_model,
        "imagination": trainer.imagine,
        "actor_critic": lambda: trainer.update_actor_critic(*rollout),
        "acting": trainer.choose_action,
        "acting_fixed": fixed_agent_acting(agent, old=kind == "old"),
        "acting_encoder": window_encoding(trainer),
    }[part]
    return lambda: (run(), trainer.check_finite())


def window_encoding(trainer) -> Callable[[], None]:
    """The encoder's share of acting in training: the acting window's frames encoded at once, as `act` does."""
    import numpy as np
    import torch

    window = torch.as_tensor(np.stack(trainer.acting.obs))[None]  # (1, 16, S, S, 3)
    assert window.shape[1] == trainer.cfg.train.act_context

    def run() -> None:
        trainer._inference_mode()
        with torch.no_grad(), trainer.precision.autocast():
            trainer.world_model.encode(window)

    return run


def fixed_agent_acting(agent, old: bool) -> Callable[[], None]:
    """One env step of acting with weights that do not change (evaluation, `agent.act`, the viewer): the window
    slides by one frame per call. The old path re-encodes all of it with the models themselves; the new one is
    the agent's own acting (`DramaAgent.act`: only the new frame is encoded, by bf16 copies of the layers)."""
    from drama_agent.acting import act

    trainer, state = agent.trainer, {"acting": agent.trainer.acting}

    def run() -> None:
        if not old:
            _, state["acting"] = agent._act(trainer.obs, state["acting"], deterministic=False)
            return
        trainer._inference_mode()
        with trainer.precision.autocast():
            _, state["acting"] = act(
                trainer.world_model,
                trainer.actor_critic.actor,
                trainer.obs,
                state["acting"],
                trainer.cfg.train.acting_mode,
                trainer.cfg.train.act_context,
                trainer.random.actions,
                trainer.random.sampling,
            )

    return run


def cases(quick: bool) -> dict[str, dict]:
    """name -> {"build": (impl) -> callable, "label", "target", "both": also time the new code in `old`}."""
    table: dict[str, dict] = {}
    for length in (128, 1024):
        for chunk in (64, 256):
            table[f"ssd_T{length}_chunk{chunk}"] = {
                "build": lambda impl, length=length, chunk=chunk: ssd_case(length, chunk, impl),
                "label": f"SSD fwd+bwd, T = {length}, chunk {chunk}",
                "target": 0.67,
                "both": True,
            }
    batch = 256 if quick else 1024
    table[f"ssd_step_B{batch}"] = {
        "build": lambda impl: ssd_step_case(batch, impl),
        "label": f"SSD recurrent step, batch {batch} (no grad)",
        "target": 0.67,
        "both": True,
    }
    table["matmul"] = {
        "build": matmul_case,
        "label": "matrix product 2176 × 1536 × 512 (the critic's first layer), fp32 against bf16 autocast",
        "target": None,
        "both": False,
    }
    wm, rollouts = ("2 × 64", 64) if quick else ("4 × 64", 128)
    for part, label, target in (
        ("world_model", f"world-model update, xs, batch {wm}", 0.33),
        ("imagination", f"imagination, xs, {rollouts} rollouts × (8 context + 16 steps)", 0.33),
        ("actor_critic", "actor-critic update on that rollout", 0.5),
        ("acting", "acting one env step in training, xs, window mode (16 frames; weights change between steps)", 0.33),
        ("acting_encoder", "of which the encoder alone: the 16 frames of the window at once", None),
        ("acting_fixed", "acting one env step of a fixed agent, xs, window mode (16 frames)", 0.33),
    ):
        table[part] = {
            "build": lambda impl, part=part: part_case(part, impl, quick),
            "label": label,
            "target": target,
            "both": False,
        }
    return table


# ----------------------------------------------------------------------------------------------- workers


def worker(kind: str, quick: bool) -> None:
    """Serve `build NAME IMPL` and `time NAME IMPL` lines on stdin; answer JSON lines on stdout."""
    if kind != "old":
        from drama_agent.cpu import keep_freed_memory

        keep_freed_memory()
    table, built = cases(quick), {}
    for line in sys.stdin:
        command, name, impl = line.split()
        if command == "build":
            built[(name, impl)] = table[name]["build"](impl)
            for _ in range(3 if kind == "compiled" else 1):  # warm-up (compiled: the builds of every shape)
                built[(name, impl)]()
            answer: dict = {"ok": True}
        else:
            start = time.perf_counter()
            built[(name, impl)]()
            answer = {"ms": 1000 * (time.perf_counter() - start)}
        print(json.dumps(answer), flush=True)


class Worker:
    def __init__(self, kind: str, quick: bool, threads: int) -> None:
        env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
        command = [sys.executable, __file__, "--worker", kind] + (["--quick"] if quick else [])
        self.process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)

    def ask(self, command: str, name: str, impl: str) -> dict:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(f"{command} {name} {impl}\n")
        self.process.stdin.flush()
        return json.loads(self.process.stdout.readline())

    def close(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        self.process.wait()


# ----------------------------------------------------------------------------------------------- report


def machine() -> dict:
    import torch

    from drama_agent.cpu import cpu_flags, cpu_has_native_bf16

    model = "unknown"
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        model = next(line.split(":", 1)[1].strip() for line in lscpu.splitlines() if line.startswith("Model name"))
    except (OSError, subprocess.CalledProcessError, StopIteration):
        pass
    interesting = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile")
    return {
        "cpu": model,
        "arch": platform.machine(),
        "cpus": os.cpu_count(),
        "flags": sorted(set(interesting) & cpu_flags()),
        "native_bf16": cpu_has_native_bf16(),
        "torch": torch.__version__,
    }


def markdown(result: dict) -> str:
    m = result["machine"]
    compiled = any("compiled_min" in row for row in result["rows"])
    lines = [
        "Old CPU path against the new default, side by side in one run (alternating repeats; ms; ratio new / old, "
        "lower is better). *new code, old process*: the new code in the worker with the old process settings.",
        "",
        "| part | old fastest | old median | new fastest | new median | new / old fastest | new / old median "
        "| new code, old process / old (fastest) | target |"
        + (" compiled fastest | compiled / new (fastest) |" * compiled),
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|" + "---:|---:|" * compiled,
    ]
    for row in result["rows"]:
        both = f"{row['new_code_old_process_ratio']:.2f}" if "new_code_old_process_ratio" in row else "–"
        target = "reference" if row["target"] is None else f"≤ {row['target']:.2f}"
        line = (
            f"| {row['label']} | {row['old_min']:.1f} | {row['old_median']:.1f} | {row['new_min']:.1f} | "
            f"{row['new_median']:.1f} | **{row['ratio_min']:.2f}** | {row['ratio_median']:.2f} | {both} | "
            f"{target} |"
        )
        if compiled:
            line += (
                f" {row['compiled_min']:.1f} | {row['compiled_ratio']:.2f} |" if "compiled_min" in row else " – | – |"
            )
        lines.append(line)
    lines += [
        "",
        f"Machine: {m['cpu']} ({m['arch']}, {m['cpus']} CPUs; flags {', '.join(m['flags']) or 'none'}; native bf16: "
        f"{'yes' if m['native_bf16'] else 'no'}), torch {m['torch']}, {result['threads']} thread(s) in every worker, "
        f"{result['repeats']} repeats after one warm-up call"
        f"{' (compiled: three, which build its code)' if compiled else ''}, "
        f"load average {result['load_before']:.1f} before and "
        f"{result['load_after']:.1f} after the run (other jobs shared the machine).",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="2 repeats, a smaller step batch")
    parser.add_argument("--threads", type=int, default=1, help="intra-op threads of both workers (default 1)")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--cases", nargs="*", help="only these cases (names as in the JSON)")
    parser.add_argument("--compile", action="store_true", help="also time the new default with train.compile")
    parser.add_argument("--out", help="results file stem (default: cpu_speed, cpu_speed_quick or cpu_speed_compile)")
    parser.add_argument("--worker", choices=("old", "new", "compiled"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(args.worker, args.quick)
        return
    repeats = 2 if args.quick else args.repeats
    table = cases(args.quick)
    names = args.cases or list(table)
    kinds = ("old", "new", "compiled") if args.compile else ("old", "new")
    workers = {kind: Worker(kind, args.quick, args.threads) for kind in kinds}
    result = {
        "machine": machine(),
        "threads": args.threads,
        "repeats": repeats,
        "load_before": os.getloadavg()[0],
        "rows": [],
    }
    try:
        for name in names:
            case = table[name]
            variants = [("old", "old"), ("new", "new")] + ([("old", "new")] if case["both"] else [])
            if args.compile and not case["both"] and case["target"] is not None:  # the training-step rows
                variants.append(("compiled", "compiled"))
            for kind, impl in variants:
                workers[kind].ask("build", name, impl)
            times: dict[tuple[str, str], list[float]] = {v: [] for v in variants}
            for _ in range(repeats):
                for kind, impl in variants:
                    times[(kind, impl)].append(workers[kind].ask("time", name, impl)["ms"])
            old, new = times[("old", "old")], times[("new", "new")]
            row = {
                "case": name,
                "label": case["label"],
                "target": case["target"],
                "old_ms": old,
                "new_ms": new,
                "old_min": min(old),
                "old_median": statistics.median(old),
                "new_min": min(new),
                "new_median": statistics.median(new),
                "ratio_min": min(new) / min(old),
                "ratio_median": statistics.median(new) / statistics.median(old),
            }
            if case["both"]:
                row["new_code_old_process_ms"] = times[("old", "new")]
                row["new_code_old_process_ratio"] = min(times[("old", "new")]) / min(old)
            if ("compiled", "compiled") in times:
                compiled = times[("compiled", "compiled")]
                row |= {
                    "compiled_ms": compiled,
                    "compiled_min": min(compiled),
                    "compiled_ratio": min(compiled) / min(new),
                }
            result["rows"].append(row)
            print(json.dumps({k: v for k, v in row.items() if not k.endswith("_ms")}), flush=True)
    finally:
        for w in workers.values():
            w.close()
    result["load_after"] = os.getloadavg()[0]
    stem = args.out or ("cpu_speed_quick" if args.quick else "cpu_speed_compile" if args.compile else "cpu_speed")
    write_results(result, markdown(result), stem)


if __name__ == "__main__":
    main()

"""Frames per second of the drama-view loop on this machine (headless, uncapped), per model preset and game.

Each frame of the loop is: the agent acts (re-running its `act_context` real frames), the game steps, the
dream steps (or re-syncs from the real context every `--horizon` frames) and decodes a frame, and the
window is composed and flipped. Models are untrained (speed does not depend on the weights). Reported:
frames per second of the whole loop, and milliseconds per frame spent in the model + game (`Session.advance`)
and in drawing. Writes `benchmarks/results/viewer_fps.json` and `.md`.

    python benchmarks/viewer_fps.py            # debug and xs on Catch and Breakout, 200 frames each
    python benchmarks/viewer_fps.py --quick    # 20 frames each
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

os.environ["SDL_VIDEODRIVER"] = "dummy"
os.environ["PYGAME_HIDE_SUPPORT_PROMPT"] = "1"

import pygame  # noqa: E402
import torch  # noqa: E402

from drama_agent import DramaAgent, DramaConfig, make_env  # noqa: E402
from viewer.app import ViewerApp  # noqa: E402
from viewer.controls import action_names  # noqa: E402
from viewer.panels import Composer, Layout  # noqa: E402
from viewer.session import Session  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="20 frames per run: a smoke test")
    p.add_argument("--frames", type=int, default=None, help="measured frames per run (default 200; quick 20)")
    p.add_argument("--warmup", type=int, default=5, help="frames run before timing")
    p.add_argument("--presets", nargs="+", default=["debug", "xs"], choices=["debug", "xs", "s"])
    p.add_argument("--games", nargs="+", default=["Catch", "Breakout"])
    p.add_argument("--horizon", type=int, default=16)
    p.add_argument("--out", type=Path, default=RESULTS, help="folder for viewer_fps.json and viewer_fps.md")
    args = p.parse_args(argv)
    if args.frames is None:
        args.frames = 20 if args.quick else 200
    return args


def measure(preset: str, game: str, frames: int, warmup: int, horizon: int) -> dict[str, float | str | int]:
    """Run the viewer loop headless for `warmup + frames` frames; time the measured ones."""
    cfg = DramaConfig.preset(preset)
    env = make_env(game, cfg.env, seed=0)
    agent = DramaAgent(cfg, env=env, device="cpu")
    pygame.display.init()
    composer = Composer(Layout.for_frame(cfg.env.frame_size), action_names(env, agent.num_actions), game)
    app = ViewerApp(Session(agent, env, horizon=horizon, seed=0), composer, fps=0)
    for _ in range(warmup):
        app.update()
    model_s = draw_s = 0.0
    started = time.perf_counter()
    for _ in range(frames):
        t0 = time.perf_counter()
        app.session.advance()
        t1 = time.perf_counter()
        app.composer.draw(app.screen, app.session.view, app.status)
        pygame.display.flip()
        draw_s += time.perf_counter() - t1
        model_s += t1 - t0
    total = time.perf_counter() - started
    pygame.quit()
    return {
        "preset": preset,
        "game": game,
        "frame_size": cfg.env.frame_size,
        "frames": frames,
        "fps": frames / total,
        "model_ms": 1000 * model_s / frames,
        "draw_ms": 1000 * draw_s / frames,
    }


def markdown(rows: list[dict], meta: dict) -> str:
    lines = [
        f"Viewer loop on {meta['machine']}, torch {meta['torch']} CPU with {meta['threads']} threads, "
        f"horizon {meta['horizon']}, {meta['frames']} frames per run (untrained models, headless).",
        "",
        "| preset | game | frame | frames/s | model + game ms/frame | drawing ms/frame |",
        "|---|---|---|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['preset']} | {r['game']} | {r['frame_size']}² | {r['fps']:.1f} | {r['model_ms']:.1f} | "
            f"{r['draw_ms']:.1f} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    rows = [
        measure(preset, game, args.frames, args.warmup, args.horizon) for preset in args.presets for game in args.games
    ]
    meta = {
        "machine": f"{platform.processor() or platform.machine()} ({os.cpu_count()} cores)",
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "horizon": args.horizon,
        "frames": args.frames,
        "quick": args.quick,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "viewer_fps.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    table = markdown(rows, meta)
    (args.out / "viewer_fps.md").write_text(table)
    print(table)


if __name__ == "__main__":
    main()

"""`drama-view`: watch a Drama agent play a game beside its world model's dream of it.

    drama-view --game Breakout                       # drama-xs-breakout (or -cpu-, -s-, -debug-), via from_pretrained
    drama-view --game Catch --untrained --preset debug
    drama-view --game Pong --checkpoint runs/pong --record pong.gif --frames 300 --headless

Panels: the real game | the world model's open-loop dream under the same actions | their difference.
Keys: space pause · → one step while paused · r re-sync the dream · h human control (arrows and space play,
p pauses, n steps) · d dream only (the game stands still, the policy or you act inside the dream) ·
g start / stop a GIF · + / − horizon · q or Esc quit.

Exit status: 0 done; 1 no checkpoint resolves (the message lists what was tried and how to train one, and
mentions --untrained), the checkpoint cannot be read, or no display is available (use --headless);
2 bad arguments: an unknown game, or a checkpoint trained on another game (env id or action count differ).
"""

from __future__ import annotations

import argparse
import os
import sys

import gymnasium as gym

from drama_agent import DramaAgent, DramaConfig, make_env
from drama_agent.checkpoint import CheckpointFormatError
from drama_agent.config import EnvConfig
from drama_agent.cpu import apply_threads, choose_threads, keep_freed_memory
from drama_agent.hub import CheckpointNotFoundError
from drama_agent.model_card import preset_name
from drama_agent.presets import PRESETS
from drama_agent.scores import game_name

DEFAULT_ORDER = ("xs", "cpu", "s", "debug")
"""Presets tried, in order, for `drama-<preset>-<game>` when no --checkpoint is given."""
INVISIBLE_DRIVERS = ("offscreen", "dummy")
"""SDL video drivers that draw into memory only."""


class ViewerError(Exception):
    """A problem to report in one message and exit with `code`."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="drama-view", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--game", required=True, help="game name, e.g. Breakout, ALE/Pong-v5 or Catch")
    source = p.add_mutually_exclusive_group()
    source.add_argument(
        "--checkpoint",
        default=None,
        help="checkpoint folder, shipped name or Hub id (default: the first of drama-xs-<game>, drama-cpu-<game>, "
        "drama-s-<game>, drama-debug-<game> that resolves)",
    )
    source.add_argument("--untrained", action="store_true", help="show a freshly initialised agent")
    p.add_argument("--preset", choices=sorted(PRESETS), default="xs", help="model size for --untrained")
    p.add_argument("--horizon", type=_positive, default=16, help="frames between re-syncs of the dream")
    p.add_argument("--fps", type=float, default=30.0, help="frames per second (0: as fast as possible)")
    p.add_argument("--record", default=None, help="write the composed frames to this GIF (recording starts at once)")
    p.add_argument("--frames", type=_positive, default=None, help="stop after this many frames")
    p.add_argument("--headless", action="store_true", help="no window (SDL_VIDEODRIVER=dummy), e.g. with --record")
    p.add_argument("--seed", type=int, default=0, help="seed of the game and the dreams")
    p.add_argument("--device", default="auto", help="torch device: auto, cpu, cuda, ...")
    p.add_argument(
        "--threads",
        type=_positive,
        default=None,
        help="CPU threads of torch (default: OMP_NUM_THREADS if set, else 1 on machines with up to 3 cores and "
        "for the debug preset, else all cores but one)",
    )
    p.add_argument(
        "--acting-mode",
        choices=["window", "recurrent"],
        default=None,
        help="how the agent acts: window re-runs its last frames every step (the authors' way, the checkpoint's "
        "default), recurrent carries its state (O(1) per step, faster for xs)",
    )
    args = p.parse_args(argv)
    if args.fps < 0:
        p.error(f"--fps must be >= 0, got {args.fps}")
    return args


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def load(args: argparse.Namespace) -> tuple[DramaAgent, gym.Env, str]:
    """The agent, its game and the window title; raises ViewerError with the documented messages."""
    if args.untrained:
        cfg = DramaConfig.preset(args.preset).replace_path("seed", args.seed)
        env = _make_env(args.game, cfg.env, args.seed)
        agent = DramaAgent(cfg, env=env, device=args.device)
        return agent, env, f"{game_name(env.spec.id)}   untrained {args.preset}"
    probe = _make_env(args.game, EnvConfig(), args.seed)
    env_id, num_actions = probe.spec.id, int(probe.action_space.n)
    probe.close()
    game = game_name(env_id).lower()
    names = [args.checkpoint] if args.checkpoint else [f"drama-{preset}-{game}" for preset in DEFAULT_ORDER]
    agent, missing = None, []
    for name in names:
        try:
            agent = DramaAgent.from_pretrained(name, device=args.device)
            break
        except CheckpointNotFoundError as err:
            missing.append(err)
        except CheckpointFormatError as err:
            raise ViewerError(f"checkpoint {name!r} cannot be loaded: {err}", 1) from None
    if agent is None:
        others = f"(also tried {', '.join(names[1:])})\n" if len(names) > 1 else ""
        raise ViewerError(
            f"{missing[0]}\n{others}To watch an untrained model instead: drama-view --game {args.game} --untrained", 1
        )
    trained_on = agent.env_id or "unknown"
    if (trained_on not in ("unknown", env_id)) or agent.num_actions != num_actions:
        raise ViewerError(
            f"checkpoint {name!r} was trained on {trained_on} ({agent.num_actions} actions), but --game "
            f"{args.game} is {env_id} ({num_actions} actions). Pass --game {game_name(trained_on)} or a "
            f"checkpoint trained on {game_name(env_id)}.",
            2,
        )
    return agent, _make_env(args.game, agent.cfg.env, args.seed), f"{game_name(env_id)}   {name}"


def _make_env(game: str, cfg: EnvConfig, seed: int) -> gym.Env:
    try:
        return make_env(game, cfg, seed=seed)
    except ValueError as err:
        raise ViewerError(str(err), 2) from None


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `drama-view` console script; returns the exit status (see the module docstring)."""
    args = parse_args(argv)
    user_driver = os.environ.get("SDL_VIDEODRIVER")
    if args.headless:
        os.environ["SDL_VIDEODRIVER"] = "dummy"
    try:
        agent, env, title = load(args)
        if args.acting_mode is not None:
            agent.cfg = agent.cfg.replace_path("train.acting_mode", args.acting_mode)
        apply_threads(choose_threads(args.threads, small_model=preset_name(agent.cfg) == "debug"))
        if agent.device.type == "cpu":
            keep_freed_memory()
    except ViewerError as err:
        print(f"drama-view: {err}", file=sys.stderr)
        return err.code

    import pygame

    from viewer.app import ViewerApp
    from viewer.controls import action_names
    from viewer.panels import Composer, Layout
    from viewer.session import Session

    try:
        pygame.display.init()
        # without a screen SDL falls back to an invisible driver; only --headless (or an explicit
        # SDL_VIDEODRIVER) asks for that
        if not args.headless and user_driver is None and pygame.display.get_driver() in INVISIBLE_DRIVERS:
            raise pygame.error("SDL found no screen to open a window on")
    except pygame.error as err:
        pygame.quit()
        env.close()
        print(f"drama-view: no display ({err}); run with --headless to record without a window", file=sys.stderr)
        return 1
    pygame.font.init()
    composer = Composer(
        Layout.for_frame(agent.obs_shape[0]), action_names(env, agent.num_actions, agent.pretrained_info), title
    )
    app = ViewerApp(Session(agent, env, args.horizon, args.seed), composer, args.fps, args.record, args.frames)
    try:
        app.run()
    except KeyboardInterrupt:
        app.close()
    finally:
        pygame.quit()
        env.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

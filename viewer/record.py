"""GIF recording of composed viewer frames, and `record_rollout` for scripts and notebooks (no window)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import gymnasium as gym
import imageio.v3 as iio
import numpy as np
import pygame

from drama_agent import DramaAgent
from drama_agent.scores import game_name
from viewer.controls import action_names
from viewer.panels import Composer, Layout, Status
from viewer.session import Session

GIF_FRAME_LIMIT = 600
"""Frames an interactive recording keeps before it saves itself (20 s at 30 fps; each frame is held in memory)."""


def surface_pixels(surface: pygame.Surface) -> np.ndarray:
    """(H, W, 3) uint8 copy of a surface's pixels."""
    width, height = surface.get_size()
    return np.frombuffer(pygame.image.tobytes(surface, "RGB"), np.uint8).reshape(height, width, 3).copy()


class GifRecorder:
    """Collects composed frames and writes them as a looping GIF (imageio) at `fps`.

    A GIF frame holds at most 256 colours: frames with more are quantised by Pillow (median cut), so only
    frames with few colours (e.g. Catch, or an untrained model's flat dreams) round-trip pixel for pixel.
    """

    def __init__(self, path: str | Path, fps: float = 30.0, limit: int = GIF_FRAME_LIMIT) -> None:
        if fps <= 0:
            raise ValueError(f"fps must be > 0, got {fps}")
        self.path, self.fps, self.limit = Path(path), float(fps), limit
        self.frames: list[np.ndarray] = []

    @property
    def full(self) -> bool:
        return len(self.frames) >= self.limit

    def add(self, image: np.ndarray) -> None:
        """Append one (H, W, 3) uint8 frame (ignored once `limit` frames are held)."""
        if not self.full:
            self.frames.append(image)

    def write(self) -> Path:
        """Write the GIF (parent folders created); returns its path."""
        if not self.frames:
            raise ValueError(f"nothing was recorded for {self.path}")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        iio.imwrite(self.path, np.stack(self.frames), extension=".gif", duration=round(1000 / self.fps), loop=0)
        return self.path


@dataclass
class Recording:
    """What `record_rollout` played and wrote; index t = composed frame t of the GIF."""

    path: Path
    layout: Layout  # panel geometry; `layout.panel_frame(gif_frame, i)` recovers panel i
    real: np.ndarray  # (N, S, S, 3) uint8 real observations shown
    imagined: np.ndarray  # (N, S, S, 3) uint8 dreamed observations shown
    actions: np.ndarray  # (N,) int64 the action that led to each frame
    synced: np.ndarray  # (N,) bool: the dream restarted from real context at this frame


def record_rollout(
    agent: DramaAgent,
    env: gym.Env,
    path: str | Path,
    frames: int = 200,
    horizon: int = 16,
    seed: int = 0,
    fps: float = 30.0,
) -> Recording:
    """Let `agent` play `frames` steps of `env` and write the real | imagined | difference frames as a GIF.

    The dream re-syncs with the real game every `horizon` frames and at every episode start (see
    `viewer.session` for the alignment); `seed` seeds the game's first reset and the dreams. Needs no
    window or display.
    """
    if frames < 1:
        raise ValueError(f"frames must be >= 1, got {frames}")
    session = Session(agent, env, horizon=horizon, seed=seed)
    layout = Layout.for_frame(agent.obs_shape[0])
    title = game_name(env.spec.id) if env.spec is not None else (agent.env_id or "game")
    composer = Composer(layout, action_names(env, agent.num_actions, agent.pretrained_info), title)
    surface = composer.new_surface()
    recorder = GifRecorder(path, fps, limit=frames)
    status = Status(horizon=horizon)
    views = []
    for _ in range(frames):
        view = session.advance()
        composer.draw(surface, view, status)
        recorder.add(surface_pixels(surface))
        views.append(view)
    return Recording(
        path=recorder.write(),
        layout=layout,
        real=np.stack([v.real for v in views]),
        imagined=np.stack([v.dream for v in views]),
        actions=np.array([v.action for v in views], np.int64),
        synced=np.array([v.synced for v in views]),
    )

"""The interactive loop: a pygame window over a `Session`, with keys handled as a small state machine.

Keys (the help line shows them): space pause, → one step while paused, r re-sync, h human control (arrow
keys and space then play the game, p pauses and n steps), d dream only, g start / stop a GIF, + / − horizon,
q or Esc quit. `update()` runs one iteration (events, at most one frame, drawing), so tests can post
pygame events and drive the loop frame by frame.
"""

from __future__ import annotations

from pathlib import Path

import pygame

from viewer.controls import human_action
from viewer.panels import Composer, Status
from viewer.record import GIF_FRAME_LIMIT, GifRecorder, surface_pixels
from viewer.session import Session

CONTROL_KEYS = {
    pygame.K_UP: "UP",
    pygame.K_DOWN: "DOWN",
    pygame.K_LEFT: "LEFT",
    pygame.K_RIGHT: "RIGHT",
    pygame.K_SPACE: "FIRE",
}
"""Keys that play the game in human mode, by the control they stand for."""
PLUS_KEYS = (pygame.K_PLUS, pygame.K_EQUALS, pygame.K_KP_PLUS)
MINUS_KEYS = (pygame.K_MINUS, pygame.K_KP_MINUS)
MAX_HORIZON = 256


class ViewerApp:
    """The viewer window. `run()` loops at `fps` (0: as fast as possible) until quit or `max_frames` frames."""

    def __init__(
        self,
        session: Session,
        composer: Composer,
        fps: float = 30.0,
        record_path: str | Path | None = None,
        max_frames: int | None = None,
    ) -> None:
        self.session, self.composer = session, composer
        self.fps = fps
        self.max_frames = max_frames
        self.screen = pygame.display.set_mode(composer.layout.size)
        pygame.display.set_caption(f"drama-view  {composer.title}")
        self.paused = False
        self.human = False
        self.quit = False
        self.held: set[str] = set()
        self.saved: list[Path] = []
        self._step_once = False
        self._record_path = Path(record_path) if record_path is not None else None
        self.recorder: GifRecorder | None = None
        if self._record_path is not None:
            self.recorder = GifRecorder(self._record_path, fps or 30.0, limit=max_frames or GIF_FRAME_LIMIT)
        self.clock = pygame.time.Clock()

    @property
    def status(self) -> Status:
        return Status(
            horizon=self.session.horizon,
            paused=self.paused,
            human=self.human,
            dream_only=self.session.dream_only,
            recording=None if self.recorder is None else len(self.recorder.frames),
            fps=self.clock.get_fps() or None,
        )

    def handle_event(self, event: pygame.event.Event) -> None:
        """Apply one pygame event to the state (see the module docstring for the keys)."""
        if event.type == pygame.QUIT:
            self.quit = True
        elif event.type == pygame.KEYUP and event.key in CONTROL_KEYS:
            self.held.discard(CONTROL_KEYS[event.key])
        elif event.type == pygame.KEYDOWN:
            self._key(event.key, getattr(event, "unicode", ""))

    def _key(self, key: int, text: str) -> None:
        if self.human and key in CONTROL_KEYS:
            self.held.add(CONTROL_KEYS[key])
        elif key in (pygame.K_q, pygame.K_ESCAPE):
            self.quit = True
        elif key in (pygame.K_SPACE, pygame.K_p):
            self.paused = not self.paused
        elif key in (pygame.K_RIGHT, pygame.K_n):
            self._step_once = self.paused
        elif key == pygame.K_r:
            self.session.request_resync()
        elif key == pygame.K_h:
            self.human = not self.human
            self.held.clear()
        elif key == pygame.K_d:
            self.session.set_dream_only(not self.session.dream_only)
        elif key == pygame.K_g:
            self._toggle_recording()
        elif key in PLUS_KEYS or text == "+":
            self.session.horizon = min(self.session.horizon + 1, MAX_HORIZON)
        elif key in MINUS_KEYS or text == "-":
            self.session.horizon = max(self.session.horizon - 1, 1)

    def update(self) -> bool:
        """One loop iteration: events, one frame unless paused, drawing, recording. False once quitting."""
        for event in pygame.event.get():
            self.handle_event(event)
        if not self.quit and (not self.paused or self._step_once):
            self._step_once = False
            self.session.advance(human_action(self.held, self.composer.action_names) if self.human else None)
            self._draw()
            if self.recorder is not None:
                self.recorder.add(surface_pixels(self.screen))
                if self.recorder.full:
                    self._toggle_recording()
            if self.max_frames is not None and self.session.frame >= self.max_frames:
                self.quit = True
        else:
            self._draw()
        if self.quit:
            self.close()
        return not self.quit

    def run(self) -> list[Path]:
        """Loop until quit; returns the GIFs written."""
        while self.update():
            self.clock.tick(self.fps)
        return self.saved

    def close(self) -> None:
        """Write a recording in progress."""
        if self.recorder is not None:
            self._toggle_recording()

    def _draw(self) -> None:
        self.composer.draw(self.screen, self.session.view, self.status)
        pygame.display.flip()

    def _toggle_recording(self) -> None:
        if self.recorder is None:
            self.recorder = GifRecorder(self._next_gif_path(), self.fps or 30.0)
            return
        recorder, self.recorder = self.recorder, None
        if recorder.frames:
            print(f"drama-view: writing {len(recorder.frames)} frames to {recorder.path}…", flush=True)
            self.saved.append(recorder.write())
            print(f"drama-view: wrote {len(recorder.frames)} frames to {recorder.path}")

    def _next_gif_path(self) -> Path:
        """The --record path if still unused, else drama-view-<n>.gif beside it (or in the working directory)."""
        if self._record_path is not None and self._record_path not in self.saved:
            return self._record_path
        folder = self._record_path.parent if self._record_path is not None else Path(".")
        n = 1
        while (folder / f"drama-view-{n}.gif").exists() or folder / f"drama-view-{n}.gif" in self.saved:
            n += 1
        return folder / f"drama-view-{n}.gif"

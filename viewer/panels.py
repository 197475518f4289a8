"""Composition of one viewer frame on a pygame surface (no window needed).

    ┌ real ──────┐ ┌ imagined ──┐ ┌ difference ┐ ┌ side strip ───────────┐
    │            │ │            │ │  heat map  │ │ reward, termination,  │
    └────────────┘ └────────────┘ └────────────┘ │ value, action probs   │
    ┌ per-frame error of the open-loop dream ──┐ │                       │
    └──────────────────────────────────────────┘ └───────────────────────┘
    help line

Frames are upscaled by an integer factor with nearest-neighbour sampling, so `Layout.panel_frame` recovers
them exactly from a composed image. The interface uses few colours (text antialiasing is cut to four
levels, the heat map has 16), which keeps composed frames within a GIF's 256-colour palette whenever the
game and dream frames themselves have few colours.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pygame

from viewer.session import FrameView

PANEL_TARGET = 256
"""Panels are upscaled to about this many pixels a side."""
MARGIN, GAP, LABEL_H, STRIP_W, PLOT_H, HELP_H = 14, 14, 26, 250, 130, 26

BG = (16, 17, 24)
PANEL_BG = (30, 32, 44)
GRID = (62, 65, 84)
TEXT = (232, 232, 238)
DIM = (150, 152, 170)
ACCENT = (255, 196, 0)
GOOD = (96, 206, 128)
BAD = (240, 88, 88)
BAR = (88, 150, 255)

_HEAT_ANCHORS = np.array([(0, 0, 4), (87, 16, 110), (188, 55, 84), (249, 142, 9), (252, 255, 164)], np.float64)
HEAT_LEVELS = 16
HEAT_FULL_SCALE = 128.0
"""Mean absolute channel difference (0..255) shown at the hottest colour; larger differences saturate."""
HEAT_LUT = (
    np.stack([np.interp(np.linspace(0, 4, HEAT_LEVELS), np.arange(5), _HEAT_ANCHORS[:, c]) for c in range(3)], -1)
    .round()
    .astype(np.uint8)
)  # (HEAT_LEVELS, 3) an inferno-like ramp
_ALPHA_BINS = np.array([48, 128, 208])
_ALPHA_LEVELS = np.array([0, 96, 176, 255], np.uint8)


@dataclass(frozen=True)
class Layout:
    """Pixel geometry of the window for frames of `frame_size`, upscaled `scale` times."""

    frame_size: int
    scale: int

    @classmethod
    def for_frame(cls, frame_size: int) -> Layout:
        return cls(frame_size, max(1, PANEL_TARGET // frame_size))

    @property
    def panel(self) -> int:
        return self.frame_size * self.scale

    def panel_origin(self, index: int) -> tuple[int, int]:
        """Top-left corner of panel `index` (0 real, 1 imagined, 2 difference)."""
        return MARGIN + index * (self.panel + GAP), MARGIN + LABEL_H

    @property
    def plot(self) -> tuple[int, int, int, int]:
        """(x, y, w, h) of the error plot under the panels."""
        return MARGIN, MARGIN + LABEL_H + self.panel + GAP, 3 * self.panel + 2 * GAP, PLOT_H

    @property
    def strip(self) -> tuple[int, int, int, int]:
        """(x, y, w, h) of the side strip, as tall as panels and plot together."""
        x, y, _, h = self.plot
        return MARGIN + 3 * self.panel + 3 * GAP, MARGIN, STRIP_W, y + h - MARGIN

    @property
    def help(self) -> tuple[int, int, int, int]:
        x, y, w, h = self.strip
        return MARGIN, y + h + GAP // 2, x + w - MARGIN, HELP_H

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of the window."""
        x, y, w, h = self.strip
        return x + w + MARGIN, self.help[1] + HELP_H + MARGIN // 2

    def panel_frame(self, image: np.ndarray, index: int) -> np.ndarray:
        """Recover the (S, S, 3) frame of panel `index` from a composed (H, W, 3) image."""
        x, y = self.panel_origin(index)
        return image[y : y + self.panel : self.scale, x : x + self.panel : self.scale, :3]


@dataclass
class Status:
    """What the interactive loop adds to a frame: modes and settings."""

    horizon: int
    paused: bool = False
    human: bool = False
    dream_only: bool = False  # the mode of the next frame (`d` toggles it, even while paused)
    recording: int | None = None  # frames recorded so far, None when not recording
    fps: float | None = None  # measured frames per second


def heat_map(real: np.ndarray, dream: np.ndarray) -> np.ndarray:
    """(S, S, 3) uint8 pair -> (S, S, 3) uint8 heat map of their mean absolute channel difference."""
    diff = np.abs(real.astype(np.int16) - dream.astype(np.int16)).mean(-1)  # (S, S)
    level = np.minimum((diff * HEAT_LEVELS / HEAT_FULL_SCALE).astype(np.int64), HEAT_LEVELS - 1)
    return HEAT_LUT[level]


def help_line(status: Status) -> list[tuple[str, str]]:
    """(key, what it does) pairs of the help line; human control changes the first ones."""
    first = (
        [("arrows space", "play"), ("p", "pause"), ("n", "step"), ("h", "agent plays")]
        if status.human
        else [("space", "pause"), ("right", "step"), ("h", "human control")]
    )
    dream = ("d", "back to the game") if status.dream_only else ("d", "dream only")
    return first + [("r", "re-sync"), dream, ("g", "GIF"), ("+ -", "horizon"), ("q", "quit")]


class Composer:
    """Draws `FrameView`s for one game: `draw(surface, view, status)`."""

    def __init__(self, layout: Layout, action_names: list[str], title: str) -> None:
        pygame.font.init()
        self.layout, self.action_names, self.title = layout, action_names, title
        self.fonts = {
            "title": pygame.font.Font(None, 28),
            "label": pygame.font.Font(None, 22),
            "text": pygame.font.Font(None, 20),
            "small": pygame.font.Font(None, 17),
        }
        self._texts: dict[tuple[str, str, tuple[int, int, int]], pygame.Surface] = {}

    def new_surface(self) -> pygame.Surface:
        return pygame.Surface(self.layout.size)

    def draw(self, surface: pygame.Surface, view: FrameView | None, status: Status) -> None:
        surface.fill(BG)
        self._panels(surface, view, status)
        self._plot(surface, view, status)
        self._strip(surface, view, status)
        x, y, w, h = self.layout.help
        pygame.draw.rect(surface, PANEL_BG, (x, y, w, h))
        pen = x + 10
        for key, action in help_line(status):
            pen += self._write(surface, key, (pen, y + 6), "text", ACCENT) + 6
            pen += self._write(surface, action, (pen, y + 6), "text", DIM) + 22

    # ------------------------------------------------------------------------------------------ parts
    def _panels(self, surface: pygame.Surface, view: FrameView | None, status: Status) -> None:
        size = self.layout.panel
        step = (
            "" if view is None else f"   step {view.dream_step}" + ("" if view.dream_only else f" / {status.horizon}")
        )
        labels = ["real (frozen)" if view is not None and view.dream_only else "real", "imagined" + step, "difference"]
        for index, label in enumerate(labels):
            x, y = self.layout.panel_origin(index)
            self._write(surface, label, (x, y - LABEL_H + 6), "label", TEXT)
            pygame.draw.rect(surface, PANEL_BG, (x, y, size, size))
        if view is None:
            return
        real = view.real // 3 if view.dream_only else view.real
        self._blit_frame(surface, real, 0)
        self._blit_frame(surface, view.dream, 1)
        if view.dream_only:
            x, y = self.layout.panel_origin(2)
            self._write(surface, "dream only", (x + 16, y + size // 2 - 20), "label", ACCENT)
            self._write(
                surface,
                "you play inside" if status.human else "the policy plays inside",
                (x + 16, y + size // 2 + 4),
                "text",
                DIM,
            )
            self._write(surface, "the world model", (x + 16, y + size // 2 + 22), "text", DIM)
        else:
            self._blit_frame(surface, heat_map(view.real, view.dream), 2)
            self._heat_legend(surface)
        x, y = self.layout.panel_origin(1)
        pygame.draw.rect(surface, ACCENT if view.synced else GRID, (x - 2, y - 2, size + 4, size + 4), 2)

    def _heat_legend(self, surface: pygame.Surface) -> None:
        x, y = self.layout.panel_origin(2)
        cell = 5
        left = x + self.layout.panel - HEAT_LEVELS * cell - 34
        for level, colour in enumerate(HEAT_LUT):
            pygame.draw.rect(surface, tuple(int(c) for c in colour), (left + level * cell, y - 16, cell, 9))
        self._write(surface, "0", (left - 10, y - 18), "small", DIM)
        self._write(surface, f"{HEAT_FULL_SCALE / 255:.1f}+", (left + HEAT_LEVELS * cell + 4, y - 18), "small", DIM)

    def _blit_frame(self, surface: pygame.Surface, frame: np.ndarray, index: int) -> None:
        side = self.layout.frame_size
        small = pygame.image.frombuffer(np.ascontiguousarray(frame, np.uint8).tobytes(), (side, side), "RGB")
        surface.blit(
            pygame.transform.scale(small, (self.layout.panel, self.layout.panel)), self.layout.panel_origin(index)
        )

    def _plot(self, surface: pygame.Surface, view: FrameView | None, status: Status) -> None:
        x, y, w, h = self.layout.plot
        pygame.draw.rect(surface, PANEL_BG, (x, y, w, h))
        self._write(
            surface,
            "per-frame error of the open-loop dream   mean |real - imagined| / 255",
            (x + 8, y + 6),
            "text",
            TEXT,
        )
        errors = [] if view is None else view.errors
        left, top, right, bottom = x + 44, y + 28, x + w - 12, y + h - 22
        top_value = max(0.05, max(errors, default=0.0) * 1.15)
        for fraction in (0.0, 0.5, 1.0):
            gy = round(bottom - fraction * (bottom - top))
            pygame.draw.line(surface, GRID, (left, gy), (right, gy))
            self._write(surface, f"{fraction * top_value:.2f}", (x + 8, gy - 6), "small", DIM)
        steps = max(status.horizon, len(errors), 2)
        for k in range(1, steps + 1):
            gx = round(left + (k - 1) * (right - left) / (steps - 1))
            pygame.draw.line(surface, GRID, (gx, bottom), (gx, bottom + 3))
        self._write(surface, "1", (left - 3, bottom + 6), "small", DIM)
        self._write(surface, f"{steps}  frames since re-sync", (right - 140, bottom + 6), "small", DIM)
        points = [
            (round(left + k * (right - left) / (steps - 1)), round(bottom - e / top_value * (bottom - top)))
            for k, e in enumerate(errors)
        ]
        if len(points) > 1:
            pygame.draw.lines(surface, ACCENT, False, points, 2)
        for point in points:
            pygame.draw.rect(surface, ACCENT, (point[0] - 2, point[1] - 2, 5, 5))

    def _strip(self, surface: pygame.Surface, view: FrameView | None, status: Status) -> None:
        x, y, w, h = self.layout.strip
        pygame.draw.rect(surface, PANEL_BG, (x, y, w, h))
        pen = [x + 12, y + 10]

        def line(text: str, font: str = "text", colour: tuple[int, int, int] = TEXT, gap: int = 20) -> None:
            self._write(surface, text, tuple(pen), font, colour)
            pen[1] += gap

        game, _, source = self.title.partition("   ")  # e.g. "Breakout   untrained debug": source on its own line
        line(game, "title", TEXT, 26)
        if source:
            line(source.strip(), "text", DIM)
        mode = "dream only" if status.dream_only else "you play" if status.human else "agent plays"
        pending = view is not None and view.dream_only != status.dream_only  # toggled while paused
        if pending:
            mode += " from the next frame"
        line(f"frame {0 if view is None else view.frame}    {mode}", "text", ACCENT if pending else DIM)
        if view is not None:
            line(f"dream #{view.dream_number}    re-sync every {status.horizon}", "text", DIM)
        flags = [("PAUSED", ACCENT)] if status.paused else []
        if status.recording is not None:
            flags.append((f"REC {status.recording}", BAD))
        if status.fps is not None:
            flags.append((f"{status.fps:.0f} fps", DIM))
        fx = pen[0]
        for text, colour in flags:
            fx += self._write(surface, text, (fx, pen[1]), "text", colour) + 12
        pen[1] += 28
        if view is None:
            return
        info = view.dream_info
        line("imagined", "label", ACCENT, 22)
        end = "-" if view.dream_only else "yes" if view.real_done else "no"
        real_reward = "-" if view.real_reward is None else f"{view.real_reward:+.2f}"
        rows = [
            ("reward", f"{info['reward']:+.2f}", f"real {real_reward}"),
            ("termination", f"{info['termination_prob']:.2f}", f"real {end}"),
            ("value", f"{info['value']:+.2f}", ""),
        ]
        for name, value, real in rows:
            self._write(surface, name, tuple(pen), "text", TEXT)
            self._write(surface, value, (pen[0] + 96, pen[1]), "text", TEXT)
            self._write(surface, real, (pen[0] + 150, pen[1]), "text", DIM)
            pen[1] += 20
        pen[1] += 8
        line("action probabilities", "label", ACCENT, 22)
        line(f"last action  {self.action_names[view.action]}", "text", DIM, 22)
        probs = info["action_probs"]
        row = max(11, min(20, (y + h - pen[1] - 8) // max(len(probs), 1)))
        best = int(np.argmax(probs))
        name_w, bar_w = 96, w - 24 - 96 - 40
        for i, p in enumerate(probs):
            ry = pen[1] + i * row
            self._write(surface, self.action_names[i][:13], (pen[0], ry), "small", ACCENT if i == best else TEXT)
            pygame.draw.rect(surface, GRID, (pen[0] + name_w, ry + 1, bar_w, row - 4))
            pygame.draw.rect(surface, BAR, (pen[0] + name_w, ry + 1, round(bar_w * float(p)), row - 4))
            self._write(surface, f"{float(p):.2f}", (pen[0] + name_w + bar_w + 6, ry), "small", DIM)

    # ------------------------------------------------------------------------------------------- text
    def _write(
        self, surface: pygame.Surface, text: str, at: tuple[int, int], font: str, colour: tuple[int, int, int]
    ) -> int:
        """Blit `text` at `at`; returns its width."""
        if not text:
            return 0
        key = (text, font, colour)
        rendered = self._texts.get(key)
        if rendered is None:
            if len(self._texts) > 4096:
                self._texts.clear()
            rendered = self.fonts[font].render(text, True, colour)  # per-pixel alpha, no background
            alpha = pygame.surfarray.pixels_alpha(rendered)
            alpha[...] = _ALPHA_LEVELS[np.digitize(alpha, _ALPHA_BINS)]  # four antialiasing levels
            del alpha  # unlocks the surface
            self._texts[key] = rendered
        surface.blit(rendered, at)
        return rendered.get_width()

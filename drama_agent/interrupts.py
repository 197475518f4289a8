"""SIGINT (Ctrl-C) and SIGTERM (how clusters, Ray and job schedulers stop a process) as clean stops.

Inside `stop_signals()` the two signals only record a stop request: the training loop checks it
after each `Trainer.step()`, so the step always finishes, then saves the state and raises
`Interrupted`. Signals that arrive while the state is being saved are recorded too, so the save always
completes. `signals_raise()` (for the command lines, outside training) turns SIGTERM into `Interrupted`
like Ctrl-C, so that both end the program with one line instead of a traceback or a silent kill.
Signal handlers can only be installed in the main thread; elsewhere both contexts do nothing.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import FrameType

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(KeyboardInterrupt):
    """Stopped by a signal; `exit_code` is the shell's 128 + signal number (SIGINT 130, SIGTERM 143)."""

    def __init__(self, signum: int, message: str = "") -> None:
        super().__init__(message or f"stopped by {signal.Signals(signum).name}")
        self.signum = signum
        self.exit_code = 128 + signum


def exit_code(err: KeyboardInterrupt) -> int:
    """The exit code for an interrupt: 128 + its signal number (a bare KeyboardInterrupt is SIGINT: 130)."""
    return err.exit_code if isinstance(err, Interrupted) else 128 + signal.SIGINT


@dataclass
class StopRequest:
    """The first SIGINT/SIGTERM received inside `stop_signals()` (None: none yet)."""

    signum: int | None = None

    @property
    def requested(self) -> bool:
        return self.signum is not None


@contextmanager
def stop_signals() -> Iterator[StopRequest]:
    """Record SIGINT and SIGTERM in the yielded `StopRequest` instead of acting on them."""
    request = StopRequest()

    def record(signum: int, frame: FrameType | None) -> None:
        if request.signum is None:
            request.signum = signum

    with _installed(record):
        yield request


@contextmanager
def signals_raise() -> Iterator[None]:
    """Raise `Interrupted` on SIGINT and SIGTERM (SIGTERM would otherwise end the process silently)."""

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise Interrupted(signum)

    with _installed(interrupt):
        yield


@contextmanager
def _installed(handler: Callable[[int, FrameType | None], None]) -> Iterator[None]:
    """`handler` for SIGINT and SIGTERM inside the block (main thread only), the previous handlers after it."""
    previous = {}
    if threading.current_thread() is threading.main_thread():
        previous = {signum: signal.signal(signum, handler) for signum in SIGNALS}
    try:
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)

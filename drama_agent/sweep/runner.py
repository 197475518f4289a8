"""Run one `drama-train` process per (game, seed) as a Ray task with declared resources.

Each task starts `python -m drama_agent.cli.train` in the run's folder (fresh, or `--resume` when the folder
holds a saved training state) and waits for it. A process killed by a signal (its worker or node lost, the
OOM killer) raises `RunInterrupted`, and a worker that dies is a system failure: Ray retries both, and the
retry resumes from the last checkpoint, which is bit-exact. A process that exits with an error (an unknown
game, a bug) is a failed run, reported with the last line of its stderr; the other runs carry on. Runs whose
`protocol.json` exists are finished and skipped, so re-running a sweep after its driver was killed continues it.
Run dirs must be on a filesystem every Ray node sees (one machine, or a cluster's shared storage).
"""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from drama_agent.protocol import PROTOCOL_FILE, read_protocol
from drama_agent.sweep import require
from drama_agent.sweep.runs import STDERR_FILE, STDOUT_FILE, log_attempt, read_attempts, run_dir
from drama_agent.training_state import has_training_state

PASSED_ENV_VARS = ("PYTHONPATH",)  # taken from the driver into every task (so tasks import the same package)
_PR_SET_PDEATHSIG = 1
_LIBC = ctypes.CDLL(None, use_errno=True) if sys.platform == "linux" else None


class RunInterrupted(RuntimeError):
    """The drama-train process was killed by a signal; Ray retries the task, which resumes the run."""


@dataclass(frozen=True)
class RunSpec:
    game: str
    seed: int
    folder: str  # DIR/<game>/seed<k>


@dataclass(frozen=True)
class TrainSettings:
    """What every drama-train of a sweep gets; `config_args` (--section.field VALUE ...) apply to fresh runs."""

    preset: str
    steps: int | None = None
    config_args: tuple[str, ...] = ()
    eval_episodes: int = 10
    log_every: int = 100
    device: str = "auto"


@dataclass
class RunResult:
    game: str
    seed: int
    folder: str
    status: str  # finished | skipped (finished before this sweep) | failed
    error: str | None = None
    attempts: int = 0


def train_argv(spec: RunSpec, settings: TrainSettings) -> list[str]:
    """drama-train's arguments: resume when the run dir holds a saved state, else a fresh run into it."""
    common = ["--eval-episodes", str(settings.eval_episodes), "--log-every", str(settings.log_every)]
    common += ["--device", settings.device, "--no-progress"]
    if has_training_state(spec.folder):
        return ["--resume", spec.folder, *common]
    fresh = ["--game", spec.game, "--seed", str(spec.seed), "--preset", settings.preset, "--run-dir", spec.folder]
    if settings.steps is not None:
        fresh += ["--steps", str(settings.steps)]
    return fresh + common + list(settings.config_args)


def _die_with_parent() -> None:
    """In the child before exec: get SIGKILL when the worker that started it dies (no orphan keeps training)."""
    _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def _last_line(path: Path, offset: int) -> str:
    with open(path, "rb") as f:
        f.seek(offset)
        lines = [line.strip() for line in f.read().decode(errors="replace").splitlines() if line.strip()]
    return lines[-1] if lines else "(no output on stderr)"


def train_run(spec: RunSpec, settings: TrainSettings, tracker: Any = None) -> dict[str, Any]:
    """The body of a sweep task: one drama-train process for `spec`, its output appended to files in the run dir."""
    folder = Path(spec.folder)
    folder.mkdir(parents=True, exist_ok=True)
    if read_protocol(folder) is not None:  # a retry of a run that finished before its worker was lost
        return {"status": "finished", "error": None}
    if tracker is not None:
        tracker.start.remote((spec.game, spec.seed))
    argv = [sys.executable, "-m", "drama_agent.cli.train", *train_argv(spec, settings)]
    attempt = sum(event["event"] == "start" for event in read_attempts(folder)) + 1
    started = time.time()
    with open(folder / STDOUT_FILE, "a") as out, open(folder / STDERR_FILE, "a") as err:
        out.write(f"=== attempt {attempt}: {' '.join(argv)}\n")
        out.flush()
        err_offset = err.tell()
        process = subprocess.Popen(
            argv, stdout=out, stderr=err, preexec_fn=_die_with_parent if _LIBC is not None else None
        )
        log_attempt(
            folder, "start", attempt=attempt, pid=process.pid, worker_pid=os.getpid(), host=socket.gethostname()
        )
        returncode = process.wait()
    error = None
    if returncode < 0:
        error = f"drama-train was killed by signal {signal.Signals(-returncode).name}"
    elif returncode != 0:
        error = f"drama-train exited with code {returncode}: {_last_line(folder / STDERR_FILE, err_offset)}"
    elif read_protocol(folder) is None:
        error = f"drama-train exited without writing {PROTOCOL_FILE}"
    log_attempt(folder, "end", attempt=attempt, returncode=returncode, seconds=time.time() - started, error=error)
    if returncode < 0 or returncode == 130:
        raise RunInterrupted(error or "drama-train was interrupted")
    return {"status": "failed" if error else "finished", "error": error}


def _tracker_class(ray: Any) -> Any:
    @ray.remote(num_cpus=0)
    class Tracker:
        """Which runs have started (tasks report it), so the driver can show how many are running."""

        def __init__(self) -> None:
            self.started: set[tuple[str, int]] = set()

        def start(self, key: tuple[str, int]) -> None:
            self.started.add(key)

        def running(self) -> set[tuple[str, int]]:
            return self.started

    return Tracker


def run_sweep(
    out: str | Path,
    games: list[str],
    seeds: list[int],
    settings: TrainSettings,
    address: str | None = None,
    cpus_per_run: float = 1,
    gpus_per_run: float = 0,
    max_retries: int = 3,
    num_cpus: int | None = None,
    progress: bool = True,
) -> list[RunResult]:
    """Train every (game, seed) under `out` on Ray; returns one result per run (finished, skipped or failed).

    When Ray is already initialised in this process, that instance is used (and left running). Otherwise
    `address` None starts a local Ray instance (with `num_cpus`, default all) and any other `address` is
    passed to `ray.init` ('auto' joins the cluster this machine belongs to, 'ray://head:10001' a remote one).
    """
    ray = require("ray")
    from tqdm.auto import tqdm

    out = Path(out).resolve()  # tasks may run in another working directory
    specs = [RunSpec(game, seed, str(run_dir(out, game, seed))) for game in games for seed in seeds]
    results = [RunResult(s.game, s.seed, s.folder, "skipped") for s in specs if read_protocol(s.folder) is not None]
    todo = [s for s in specs if read_protocol(s.folder) is None]
    runtime_env = {"env_vars": {name: os.environ[name] for name in PASSED_ENV_VARS if name in os.environ}}
    start_ray = not ray.is_initialized()
    if start_ray and address is None:  # a new instance on this machine, even when another one is running
        ray.init(address="local", num_cpus=num_cpus, include_dashboard=False, log_to_driver=False)
    elif start_ray:
        ray.init(address=address, log_to_driver=False)
    try:
        tracker = _tracker_class(ray).options(runtime_env=runtime_env).remote()
        task = ray.remote(train_run).options(
            num_cpus=cpus_per_run,
            num_gpus=gpus_per_run,
            max_retries=max_retries,
            retry_exceptions=[RunInterrupted],
            runtime_env=runtime_env,
        )
        pending = {task.remote(spec, settings, tracker): spec for spec in todo}
        bar = tqdm(total=len(specs), initial=len(results), unit="run", disable=not progress, dynamic_ncols=True)
        failed, done = 0, {(r.game, r.seed) for r in results}
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1, timeout=1.0)
            for ref in ready:
                spec = pending.pop(ref)
                result = RunResult(spec.game, spec.seed, spec.folder, "finished")
                try:
                    outcome = ray.get(ref)
                    result.status, result.error = outcome["status"], outcome.get("error")
                except ray.exceptions.RayError as err:
                    result.status, result.error = "failed", _short_error(err)
                    log_attempt(spec.folder, "end", error=result.error)
                result.attempts = sum(event["event"] == "start" for event in read_attempts(spec.folder))
                failed += result.status == "failed"
                done.add((spec.game, spec.seed))
                results.append(result)
            running = len(ray.get(tracker.running.remote()) - done)
            bar.set_postfix(running=running, failed=failed, refresh=False)
            bar.update(len(ready))
            bar.refresh()
        bar.close()
    finally:
        if start_ray:
            ray.shutdown()
    order = {(s.game, s.seed): i for i, s in enumerate(specs)}
    return sorted(results, key=lambda r: order[(r.game, r.seed)])


def _short_error(err: Exception) -> str:
    """The first line of a Ray error's own message (a task error's cause, or a lost worker)."""
    cause = getattr(err, "cause", None)
    text = str(cause if isinstance(cause, Exception) else err).strip()
    return text.splitlines()[0] if text else type(err).__name__

"""The run loop around `Trainer.step`: logging, checkpoint timing, progress bar and signals, in one place.

`run_steps` is what `DramaAgent.learn` (and so `drama-train`) runs; anything else that drives a `Trainer`
for many steps (benchmarks, sweeps) should call it too, so that a run behaves the same everywhere.
"""

from __future__ import annotations

import signal
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from torch import Tensor

from drama_agent.interrupts import Interrupted, stop_signals
from drama_agent.metrics import MetricsLogger
from drama_agent.scores import human_normalized_score
from drama_agent.trainer import StepResult, Trainer
from drama_agent.training_state import remove_stale_temp_files

Callback = Callable[[StepResult], bool | None]
"""Called after every step with its result; returning False stops the loop."""


def run_steps(
    trainer: Trainer,
    steps: int,
    *,
    save: Callable[[Path], Any] | None = None,
    run_dir: str | Path | None = None,
    env_id: str | None = None,
    log_every: int = 100,
    progress_bar: bool = False,
    callback: Callback | None = None,
) -> None:
    """Take `steps` more env steps with `trainer`.

    With `run_dir`, episode returns (and their human-normalised score for `env_id`) and, every `log_every`
    steps, the update metrics go to its `metrics.csv` and TensorBoard; `save(run_dir)` writes the training
    state every `cfg.train.checkpoint_every` steps and at the end. SIGINT (Ctrl-C) and SIGTERM stop the
    loop at a step boundary: the current `Trainer.step()` finishes, the state is saved (further signals
    wait until the save is done) and `Interrupted` (a KeyboardInterrupt; `exit_code` 130 or 143) is raised.
    A KeyboardInterrupt raised by other means between steps (e.g. by `callback`) also saves. Before every
    log and save the trainer checks that no loss became non-finite (`Trainer.check_finite`); its
    NonFiniteLossError propagates without saving, so the last checkpoint stays intact. Warns when the
    config's step budget (`cfg.train.total_steps`) stops the updates during these steps.
    """
    if steps < 0:
        raise ValueError(f"the number of steps must be >= 0, got {steps}")
    run_dir = None if run_dir is None else Path(run_dir)
    if run_dir is not None and save is None:
        raise ValueError("a run directory needs a `save` function for its checkpoints")
    start = trainer.env_steps
    end = start + steps
    _warn_about_budget(trainer, start, end)
    if run_dir is not None:
        remove_stale_temp_files(run_dir)
    logger = MetricsLogger(run_dir) if run_dir is not None else None
    if logger is not None:
        logger.truncate_after(start)
    bar = progress(progress_bar, end, initial=start)

    def checked_save() -> None:
        trainer.check_finite()
        save(run_dir)

    last_return: float | None = None
    started = time.perf_counter()
    saved_at, between_steps = None, True
    with stop_signals() as stop:
        try:
            while trainer.env_steps < end and not stop.requested:
                between_steps = False
                result = trainer.step()
                between_steps = True
                if result.episode_return is not None:
                    last_return = result.episode_return
                    if logger is not None:
                        episode = {"episode/return": result.episode_return, "episode/length": result.episode_length}
                        hns = human_normalized_score(env_id or "", result.episode_return)
                        if hns is not None:
                            episode["episode/hns"] = hns
                        logger.log(result.env_step, episode)
                if result.metrics and result.env_step % log_every == 0:
                    trainer.check_finite()
                    if logger is not None:
                        logger.log(result.env_step, result.metrics)
                if run_dir is not None and result.env_step % trainer.cfg.train.checkpoint_every == 0:
                    checked_save()
                    saved_at = trainer.env_steps
                if bar is not None:
                    bar.update(1)
                    if result.env_step % 10 == 0:
                        rate = (trainer.env_steps - start) / (time.perf_counter() - started)
                        bar.set_postfix(_postfix(rate, last_return, result.metrics), refresh=False)
                if callback is not None and callback(result) is False:
                    break
        except KeyboardInterrupt:
            if run_dir is not None and between_steps and saved_at != trainer.env_steps:
                checked_save()
            raise
        finally:
            if bar is not None:
                bar.close()
            if logger is not None:
                logger.close()
        trainer.check_finite()
        if run_dir is not None and saved_at != trainer.env_steps:
            save(run_dir)  # signals that arrive now are recorded, so the save completes
    if stop.requested:
        saved = f"; training state saved to {run_dir}" if run_dir is not None else ""
        name = signal.Signals(stop.signum).name
        raise Interrupted(stop.signum, f"stopped by {name} at step {trainer.env_steps}{saved}")


def progress(enabled: bool, total: int, initial: int = 0, unit: str = "step"):
    """A tqdm progress bar, or None when not `enabled`."""
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, unit=unit, dynamic_ncols=True)


def _warn_about_budget(trainer: Trainer, start: int, end: int) -> None:
    """Warn when some of the steps start+1..end come after the step budget, where no update runs.

    An update follows step n while n - 1 <= budget (`Trainer.learning`), so the frozen steps are n >= budget + 2.
    """
    budget = trainer.cfg.train.total_steps
    first_frozen = max(start + 1, budget + 2)
    frozen = end - first_frozen + 1
    if frozen <= 0:
        return
    warnings.warn(
        f"no updates from env step {first_frozen} on: the step budget cfg.train.total_steps={budget} "
        f"stops them, so {frozen} of these {end - start} steps run with frozen networks",
        stacklevel=4,  # the caller of DramaAgent.learn
    )


def _postfix(rate: float, last_return: float | None, metrics: dict[str, Tensor]) -> dict[str, str]:
    postfix = {"steps/s": f"{rate:.1f}", "return": "-" if last_return is None else f"{last_return:g}"}
    for key, short in (("world_model/loss", "wm"), ("actor_critic/loss", "ac")):
        if key in metrics:
            postfix[short] = f"{float(metrics[key]):.3f}"
    return postfix

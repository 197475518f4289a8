"""Ring buffer of real steps with the DFS visit counters (docs/algorithm.md §DFS sampling, §Training loop and acting).

Step t stores (o_t, a_t, r_t, e_t): the observation *before* action a_t, the reward it earned and the
termination flag (terminated or life lost). Steps are addressed by their *logical* index, 0 = the
oldest step held, `len(buf) − 1` = the newest; a window of length L starts at a logical index in
[0, len − L], so it never crosses the write seam (it may cross episode boundaries, which the
termination flags mark, as in the authors' code).

Storage lives on `device`; the counters and the sampling live on the CPU with an injected CPU
`torch.Generator`, so the same generator state draws the same starts on every device.
"""

from __future__ import annotations

import math
from numbers import Integral, Real
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import Tensor

from drama_agent.config import ReplayConfig
from drama_agent.replay.dfs import (
    draw_starts,
    imagination_sampling_probs,
    uniform_sampling_probs,
    world_model_sampling_probs,
)

_STATE_TENSORS = ("obs", "actions", "rewards", "terminations", "wm_counts", "imag_counts")
_STATE_INTS = ("capacity", "size", "total_added")
_INT64_MAX = 2**63 - 1
_FLOAT32_MAX = float(torch.finfo(torch.float32).max)


class Batch(NamedTuple):
    """Windows of consecutive real steps, on the buffer's device."""

    obs: Tensor  # (B, T, H, W, 3) uint8
    actions: Tensor  # (B, T) int64
    rewards: Tensor  # (B, T) float32
    terminations: Tensor  # (B, T) float32, 1.0 = terminated or life lost
    starts: Tensor  # (B,) int64 logical start index of each window


class ReplayBuffer:
    """Fixed-capacity ring buffer of uint8 frames with DFS (or uniform) window sampling.

    `v` (world-model) and `b` (imagination) count, per stored step, how often it began a sampled
    window; overwriting a step resets its counters. With the uniform sampler the counters are still
    kept, so the state has the same form for both samplers.
    """

    def __init__(self, cfg: ReplayConfig, obs_shape: tuple[int, int, int], device: str | torch.device = "cpu"):
        for name in ("capacity", "batch_size"):
            value = getattr(cfg, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"ReplayConfig.{name} must be an int >= 1, got {value!r}")
        if cfg.sampler not in ("dfs", "uniform"):
            raise ValueError(f"ReplayConfig.sampler must be 'dfs' or 'uniform', got {cfg.sampler!r}")
        if len(obs_shape) != 3 or obs_shape[2] != 3 or min(obs_shape) < 1:
            raise ValueError(f"obs_shape must be (H, W, 3), got {obs_shape!r}")
        self.cfg = cfg
        self.capacity = cfg.capacity
        self.obs_shape = tuple(int(s) for s in obs_shape)
        self.device = torch.device(device)
        # Frames are written before they are read, so they need no zero fill (1.2 GB at 100k × 64² × 3).
        self.obs = torch.empty((self.capacity, *self.obs_shape), dtype=torch.uint8, device=self.device)
        self.actions = torch.zeros(self.capacity, dtype=torch.int64, device=self.device)
        self.rewards = torch.zeros(self.capacity, dtype=torch.float32, device=self.device)
        self.terminations = torch.zeros(self.capacity, dtype=torch.float32, device=self.device)
        self.wm_counts = torch.zeros(self.capacity, dtype=torch.int64)  # v, per slot, CPU
        self.imag_counts = torch.zeros(self.capacity, dtype=torch.int64)  # b, per slot, CPU
        self.size = 0
        self.total_added = 0

    def __len__(self) -> int:
        return self.size

    # ---- writing ---------------------------------------------------------------------------

    def add(self, obs: np.ndarray, action: int, reward: float, termination: bool) -> None:
        """Append one step; when full, the oldest step is overwritten. Everything is checked before writing."""
        frame, action, reward = self._check_step(obs, action, reward, termination)
        slot = self.total_added % self.capacity
        self.obs[slot].copy_(frame)
        self.actions[slot] = action
        self.rewards[slot] = reward
        self.terminations[slot] = float(termination)
        self.wm_counts[slot] = 0
        self.imag_counts[slot] = 0
        self.total_added += 1
        self.size = min(self.size + 1, self.capacity)

    def _check_step(self, obs: Any, action: Any, reward: Any, termination: Any) -> tuple[Tensor, int, float]:
        """The frame, action and reward as stored, or ValueError before anything is written."""
        if not isinstance(obs, (np.ndarray, Tensor)):
            raise ValueError(f"obs must be a uint8 numpy array of shape {self.obs_shape}, got {type(obs).__name__}")
        is_uint8 = obs.dtype == (torch.uint8 if isinstance(obs, Tensor) else np.uint8)
        if not is_uint8 or tuple(obs.shape) != self.obs_shape:
            raise ValueError(
                f"obs must be uint8 with shape {self.obs_shape}, got {obs.dtype} with shape {tuple(obs.shape)}"
            )
        if not isinstance(action, Integral) or isinstance(action, (bool, np.bool_)) or not 0 <= action <= _INT64_MAX:
            raise ValueError(f"action must be an int >= 0 (e.g. int(action)), got {action!r}")
        if not isinstance(reward, Real) or isinstance(reward, (bool, np.bool_)):
            raise ValueError(f"reward must be a finite number, got {reward!r}")
        try:
            value = float(reward)
        except OverflowError:
            value = math.inf
        if not abs(value) <= _FLOAT32_MAX:  # also catches NaN; the buffer stores float32
            raise ValueError(f"reward must be a finite number within float32 range, got {reward!r}")
        if not isinstance(termination, (bool, np.bool_)):
            raise ValueError(f"termination must be a bool (terminated or life lost), got {termination!r}")
        frame = torch.from_numpy(np.ascontiguousarray(obs)) if isinstance(obs, np.ndarray) else obs
        return frame, int(action), value

    # ---- sampling --------------------------------------------------------------------------

    def num_starts(self, length: int) -> int:
        """How many windows of `length` steps the buffer holds (starts 0 … len − length)."""
        return max(self.size - length + 1, 0)

    def visit_counts(self) -> tuple[Tensor, Tensor]:
        """(v, b) of every stored step in logical order (oldest first), as CPU int64 copies. -> (N,), (N,)."""
        slots = self._slots(torch.arange(self.size))
        return self.wm_counts[slots].clone(), self.imag_counts[slots].clone()

    def sample_world_model(self, batch_size: int, length: int, generator: torch.Generator | None = None) -> Batch:
        """`batch_size` distinct windows of `length` steps, starts drawn with softmax(−v/τ); v[start] += 1."""
        n_starts = self._check_request(batch_size, length, generator)
        slots = self._slots(torch.arange(n_starts))  # (N,)
        if self.cfg.sampler == "dfs":
            probs = world_model_sampling_probs(self.wm_counts[slots], self.cfg.tau)
        else:
            probs = uniform_sampling_probs(n_starts)
        starts = draw_starts(probs, batch_size, generator)  # (B,)
        self.wm_counts[slots[starts]] += 1
        return self._gather(starts, length)

    def sample_imagination(
        self, batch_size: int, length: int, generator: torch.Generator | None = None, ratio: float | None = None
    ) -> Batch:
        """`batch_size` distinct windows seeding imagination, starts drawn with the DFS imagination rule; b[start] += 1.

        `ratio` scales b to the world model's counter (b' = b / ratio); by default it is
        `batch_size / cfg.batch_size`, the imagination batch over the world-model batch (1024 / 16 = 64 for xs).
        """
        n_starts = self._check_request(batch_size, length, generator)
        ratio = batch_size / self.cfg.batch_size if ratio is None else ratio
        slots = self._slots(torch.arange(n_starts))  # (N,)
        if self.cfg.sampler == "dfs":
            v, b = self.wm_counts[slots], self.imag_counts[slots]
            probs = imagination_sampling_probs(v, b, ratio, self.cfg.alpha, self.cfg.beta, self.cfg.imag_tau)
        else:
            probs = uniform_sampling_probs(n_starts)
        starts = draw_starts(probs, batch_size, generator)  # (B,)
        self.imag_counts[slots[starts]] += 1
        return self._gather(starts, length)

    def _check_request(self, batch_size: int, length: int, generator: torch.Generator | None) -> int:
        for name, value in (("batch_size", batch_size), ("length", length)):
            if not isinstance(value, Integral) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be an int >= 1, got {value!r}")
        if length > self.size:
            raise ValueError(f"window length {length} is longer than the {self.size} steps held")
        n_starts = self.num_starts(length)
        if batch_size > n_starts:
            raise ValueError(
                f"batch_size {batch_size} exceeds the {n_starts} distinct windows of length {length} "
                f"in {self.size} steps (starts are drawn without replacement)"
            )
        if generator is not None and generator.device.type != "cpu":
            raise ValueError(f"generator must be a CPU torch.Generator, got one on {generator.device}")
        return n_starts

    def _slots(self, logical: Tensor) -> Tensor:
        """Storage slot of each logical index (0 = oldest step held)."""
        oldest = (self.total_added - self.size) % self.capacity
        return (logical + oldest) % self.capacity

    def _gather(self, starts: Tensor, length: int) -> Batch:
        logical = starts[:, None] + torch.arange(length)  # (B, T)
        slots = self._slots(logical)  # (B, T)
        return Batch(
            obs=_take(self.obs, slots),  # (B, T, H, W, 3)
            actions=_take(self.actions, slots),
            rewards=_take(self.rewards, slots),
            terminations=_take(self.terminations, slots),
            starts=starts.to(self.device),
        )

    # ---- state -----------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Tensor | int]:
        """Stored steps (slots 0 … size − 1, on CPU), counters and write position.

        As with `nn.Module.state_dict`, CPU tensors share memory with the buffer; copy them to keep
        a snapshot while adding steps.
        """
        n = self.size
        return {
            "obs": self.obs[:n].cpu(),
            "actions": self.actions[:n].cpu(),
            "rewards": self.rewards[:n].cpu(),
            "terminations": self.terminations[:n].cpu(),
            "wm_counts": self.wm_counts[:n],
            "imag_counts": self.imag_counts[:n],
            "capacity": self.capacity,
            "size": n,
            "total_added": self.total_added,
        }

    def load_state_dict(self, state: dict[str, Tensor | int]) -> None:
        """Restore `state_dict()` exactly; every key and shape is checked before anything is written."""
        keys = set(_STATE_TENSORS + _STATE_INTS)
        missing, unknown = keys - set(state), set(state) - keys
        if missing or unknown:
            raise ValueError(f"replay state: missing keys {sorted(missing)}, unknown keys {sorted(unknown)}")
        capacity, size, total_added = (int(state[k]) for k in _STATE_INTS)
        if capacity != self.capacity:
            raise ValueError(f"replay state has capacity {capacity}, this buffer {self.capacity}")
        if not 0 <= size <= capacity or total_added < size or (size < capacity and total_added != size):
            raise ValueError(f"inconsistent replay counters: size {size}, total_added {total_added}")
        expected = {
            "obs": ((size, *self.obs_shape), torch.uint8),
            "actions": ((size,), torch.int64),
            "rewards": ((size,), torch.float32),
            "terminations": ((size,), torch.float32),
            "wm_counts": ((size,), torch.int64),
            "imag_counts": ((size,), torch.int64),
        }
        for key, (shape, dtype) in expected.items():
            value = state[key]
            if not isinstance(value, Tensor) or tuple(value.shape) != shape or value.dtype != dtype:
                got = (tuple(value.shape), value.dtype) if isinstance(value, Tensor) else type(value).__name__
                raise ValueError(f"replay state {key!r}: expected {shape} {dtype}, got {got}")
        for key in _STATE_TENSORS:
            target = getattr(self, key)
            target[:size].copy_(state[key])
            if key != "obs":
                target[size:] = 0
        self.size, self.total_added = size, total_added


def _take(storage: Tensor, slots: Tensor) -> Tensor:
    """storage[slots] for a (B, T) CPU index: (capacity, ...) -> (B, T, ...).

    On CPU numpy's fancy indexing copies whole frames about 4x faster than torch's indexing kernels.
    """
    if storage.device.type == "cpu":
        return torch.from_numpy(storage.numpy()[slots.numpy()])
    return storage.index_select(0, slots.flatten().to(storage.device)).unflatten(0, slots.shape)

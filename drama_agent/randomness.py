"""`RunRandomness`: the one owner of a run's random generators, saved with the training state.

Every random draw of the agent comes from one of these generators, all seeded from the run seed; nothing
reads or seeds PyTorch's global generator (model initialisation forks it, see `seeded_init`). The real
environment's generator lives in the environment and is saved with it (`drama_agent.env_state`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch


@dataclass
class RunRandomness:
    """The generators of one run: training draws (replay, samples, warm-up actions) and acting draws."""

    replay: torch.Generator  # CPU: replay windows (DFS)
    sampling: torch.Generator  # models' device: latent and policy samples during training
    actions: np.random.Generator  # random actions during warm-up and at the first step of an episode
    acting_actions: np.random.Generator  # the first random action of an episode in act / predict / evaluate
    acting: torch.Generator  # models' device: latent and policy samples in act / predict / evaluate / imagine

    @classmethod
    def from_seed(cls, seed: int, device: torch.device) -> RunRandomness:
        return cls(
            replay=torch.Generator().manual_seed(seed),
            sampling=torch.Generator(device).manual_seed(seed + 1),
            actions=np.random.default_rng(seed),
            acting_actions=np.random.default_rng(seed + 2),
            acting=torch.Generator(device).manual_seed(seed + 3),
        )

    def state_dict(self) -> dict[str, Any]:
        return {
            "replay": self.replay.get_state(),
            "sampling": self.sampling.get_state(),
            "numpy": self.actions.bit_generator.state,
            "acting_numpy": self.acting_actions.bit_generator.state,
            "acting": self.acting.get_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.replay.set_state(state["replay"])
        self.sampling.set_state(state["sampling"])
        self.actions.bit_generator.state = state["numpy"]
        self.acting_actions.bit_generator.state = state["acting_numpy"]
        self.acting.set_state(state["acting"])


@contextmanager
def seeded_init(seed: int) -> Iterator[None]:
    """Seed PyTorch's global CPU generator for module initialisation (modules are built on the CPU) and restore
    its previous state afterwards."""
    with torch.random.fork_rng(devices=[]):
        torch.default_generator.manual_seed(seed)
        yield

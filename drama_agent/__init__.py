"""drama-agent: the Drama model-based RL agent (Mamba-2 world model) for Gymnasium pixel games.

The public names are imported on first use, so that importing a submodule (the command lines do) is
quick and does not pull in PyTorch before the caller is ready for it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from drama_agent.version import __version__

__all__ = ["DramaAgent", "DramaConfig", "Imagination", "__version__", "make_env"]

_HOMES = {
    "DramaAgent": "drama_agent.agent",
    "DramaConfig": "drama_agent.config",
    "Imagination": "drama_agent.dream",
    "make_env": "drama_agent.envs",
}

if TYPE_CHECKING:
    from drama_agent.agent import DramaAgent
    from drama_agent.config import DramaConfig
    from drama_agent.dream import Imagination
    from drama_agent.envs import make_env


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module 'drama_agent' has no attribute {name!r}")
    value = getattr(importlib.import_module(_HOMES[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])

"""drama-agent: the Drama model-based RL agent (Mamba-2 world model) for Gymnasium pixel games."""

__version__ = "0.1.0"

from drama_agent.agent import DramaAgent  # noqa: E402
from drama_agent.config import DramaConfig  # noqa: E402
from drama_agent.dream import Imagination  # noqa: E402
from drama_agent.envs import make_env  # noqa: E402

__all__ = ["DramaAgent", "DramaConfig", "Imagination", "make_env"]

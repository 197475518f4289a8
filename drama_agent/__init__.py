"""drama-agent: the Drama model-based RL agent (Mamba-2 world model) for Gymnasium pixel games."""

from drama_agent.agent import DramaAgent
from drama_agent.config import DramaConfig
from drama_agent.dream import Imagination
from drama_agent.envs import make_env
from drama_agent.version import __version__

__all__ = ["DramaAgent", "DramaConfig", "Imagination", "__version__", "make_env"]

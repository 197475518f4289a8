"""drama-agent: the Drama model-based RL agent (Mamba-2 world model) for Gymnasium pixel games."""

from drama_agent.config import DramaConfig

__all__ = ["DramaConfig"]
__version__ = "0.1.0"

"""World model of Drama (docs/algorithm.md §World model): `build_world_model(cfg, num_actions)` -> `WorldModel`."""

from drama_agent.world_model.model import WorldModel, build_world_model

__all__ = ["WorldModel", "build_world_model"]

"""Sequence backbones: Mamba-2 (Drama's), Mamba, GRU and Transformer behind one stateful interface."""

from drama_agent.sequence.model import (
    MIXERS,
    ResidualStack,
    SequenceModel,
    State,
    build_backbone,
    build_sequence_model,
    state_index,
)

__all__ = [
    "MIXERS",
    "ResidualStack",
    "SequenceModel",
    "State",
    "build_backbone",
    "build_sequence_model",
    "state_index",
]

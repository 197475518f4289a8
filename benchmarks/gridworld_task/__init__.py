"""The paper's long-sequence test: a 5×5 grid world, its tokens, error, token model and training loop.

A benchmark task, not part of the drama_agent library: `benchmarks/gridworld.py` runs it.

See docs/algorithm.md §Long-sequence test.

Importing this package does not import the sequence backbones; `model` and `train` do.
"""

from gridworld_task.env import FRAME_LEN, VOCAB_SIZE, GridSequences, generate, next_token_pairs, tokenize
from gridworld_task.metrics import GridError, grid_error, oracle_cells, valid_frames

__all__ = [
    "FRAME_LEN",
    "VOCAB_SIZE",
    "GridError",
    "GridSequences",
    "generate",
    "grid_error",
    "next_token_pairs",
    "oracle_cells",
    "tokenize",
    "valid_frames",
]

"""Next-token training and the paper's evaluation of one token model on the grid world (used by the benchmark)."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from drama_agent.checks import count_parameters
from drama_agent.config import SequenceConfig
from gridworld_task.env import FRAME_LEN, GridSequences, frame_cells, generate, next_token_pairs, tokenize
from gridworld_task.metrics import GridError, grid_error
from gridworld_task.model import GridTokenModel


@dataclass(frozen=True)
class GridTrainConfig:
    """One training run: fresh random sequences every step, then the error on a held-out set."""

    n_frames: int = 8
    """Frames per sequence (8 → 208 tokens, 64 → 1664 tokens)."""
    batch_size: int = 16
    """Sequences per training step."""
    steps: int = 300
    """Optimiser steps."""
    lr: float = 1e-2
    """Peak AdamW learning rate (linear warm-up, then cosine decay to 10 %)."""
    warmup_steps: int = 20
    """Steps of linear learning-rate warm-up."""
    weight_decay: float = 0.0
    """AdamW weight decay."""
    grad_clip: float = 1.0
    """Gradient-norm clip."""
    eval_sequences: int = 128
    """Held-out sequences the error is computed on."""
    eval_batch: int = 32
    """Sequences per evaluation forward pass."""
    timing_skip: int = 3
    """First steps left out of the time per step (allocator and kernel warm-up); step 0 always is."""
    seed: int = 0
    """Seeds the initial weights, the training stream and (separately) the held-out set."""


@dataclass(frozen=True)
class GridRunResult:
    """What one run measured."""

    backbone: str
    n_frames: int
    seq_len: int
    d_model: int
    params: int
    ms_per_step: float
    """Mean wall time of a training step (forward, backward, clip, optimiser) after `timing_skip` steps."""
    activation_mib: float
    """Bytes of the tensors saved for backward in one training step (parameters excluded), in MiB."""
    peak_cuda_mib: float | None
    """`torch.cuda.max_memory_allocated` over training, on CUDA; None on CPU."""
    final_loss: float
    """Mean training cross-entropy (nats per token) over the last 10 % of the steps."""
    geometric: float
    logic: float
    error: float


def _lr_factor(step: int, cfg: GridTrainConfig) -> float:
    if step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    progress = (step - cfg.warmup_steps) / max(cfg.steps - cfg.warmup_steps, 1)
    return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress))


def _saved_bytes(model: GridTokenModel, inputs: Tensor, targets: Tensor) -> tuple[Tensor, int]:
    """The training loss, and the bytes of the distinct storages autograd saved for backward, parameters excluded."""
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    storages: dict[int, int] = {}

    def pack(t: Tensor) -> Tensor:
        storage = t.untyped_storage()
        if storage.data_ptr() not in params:
            storages[storage.data_ptr()] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = _loss(model, inputs, targets)
    return loss, sum(storages.values())


def _loss(model: GridTokenModel, inputs: Tensor, targets: Tensor) -> Tensor:
    logits = model(inputs)  # (B, L, V)
    return F.cross_entropy(logits.flatten(0, 1), targets.flatten())


@torch.no_grad()
def predict_cells(model: GridTokenModel, seqs: GridSequences, batch: int, device: torch.device) -> Tensor:
    """Teacher-forced argmax of every token, as predicted cells (B, F, 25) on the CPU."""
    model.eval()
    tokens = tokenize(seqs)
    preds = []
    for chunk in tokens.split(batch):
        inputs, _ = next_token_pairs(chunk.to(device))
        preds.append(model(inputs).argmax(-1).cpu())  # (b, L)
    model.train()
    return frame_cells(torch.cat(preds))


def evaluate(model: GridTokenModel, seqs: GridSequences, batch: int, device: torch.device) -> GridError:
    """The paper's error of `model` on held-out sequences (docs/algorithm.md §Long-sequence test; see `metrics`)."""
    return grid_error(predict_cells(model, seqs, batch, device), seqs)


def train_and_evaluate(seq_cfg: SequenceConfig, cfg: GridTrainConfig, device: str = "cpu") -> GridRunResult:
    """Train a fresh `GridTokenModel(seq_cfg)` for `cfg.steps` steps and measure time, memory and error."""
    dev = torch.device(device)
    torch.manual_seed(cfg.seed)
    train_rng = np.random.default_rng((cfg.seed, 0))
    held_out = generate(cfg.eval_sequences, cfg.n_frames, np.random.default_rng((cfg.seed, 1)))
    model = GridTokenModel(seq_cfg).to(dev)
    optimiser = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimiser, lambda s: _lr_factor(s, cfg))
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)

    losses, times, activation_bytes = [], [], 0
    for step in range(cfg.steps):
        inputs, targets = next_token_pairs(tokenize(generate(cfg.batch_size, cfg.n_frames, train_rng)).to(dev))
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        start = time.perf_counter()
        if step == 0:
            loss, activation_bytes = _saved_bytes(model, inputs, targets)
        else:
            loss = _loss(model, inputs, targets)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        optimiser.step()
        schedule.step()
        losses.append(loss.detach())
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        if step >= max(cfg.timing_skip, 1):  # step 0 also measures memory
            times.append(time.perf_counter() - start)

    tail = max(cfg.steps // 10, 1)
    err = evaluate(model, held_out, cfg.eval_batch, dev)
    return GridRunResult(
        backbone=seq_cfg.backbone,
        n_frames=cfg.n_frames,
        seq_len=cfg.n_frames * FRAME_LEN,
        d_model=seq_cfg.d_model,
        params=count_parameters(model),
        ms_per_step=1000 * float(np.mean(times)) if times else float("nan"),
        activation_mib=activation_bytes / 2**20,
        peak_cuda_mib=torch.cuda.max_memory_allocated(dev) / 2**20 if dev.type == "cuda" else None,
        final_loss=torch.stack(losses[-tail:]).mean().item(),
        geometric=err.geometric,
        logic=err.logic,
        error=err.error,
    )

"""One `Trainer.step()` = one env step plus the scheduled updates (docs/algorithm.md §Training loop and acting).

Updates run on every `cfg.train.update_every`-th env step once the buffer is warm (1: every step, the paper):
the world model's, then imagination and the actor-critic's, which wait `cfg.train.world_model_only_steps` more.

`state_dict()` holds everything a run needs to resume exactly: models, optimisers and schedules,
the replay buffer with its DFS counters, the run's generators (`RunRandomness`) and the environment's
state, step counters, the acting context, normaliser and EMA state (inside the actor-critic's state dict).
The loop around `step` (logging, checkpoints, Ctrl-C) is `drama_agent.run_loop.run_steps`.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor

from drama_agent.acting import ActingState, act
from drama_agent.behavior import ActorCritic
from drama_agent.behavior.loss import actor_critic_loss
from drama_agent.checks import check_env_matches, eval_mode
from drama_agent.compiled import compile_networks
from drama_agent.config import DramaConfig, TrainConfig
from drama_agent.env_state import get_env_state, set_env_state
from drama_agent.imagination import Rollout, imagine_rollout
from drama_agent.optim import build_optimizer, clip_grad_norm
from drama_agent.precision import resolve_precision
from drama_agent.randomness import RunRandomness
from drama_agent.replay import ReplayBuffer
from drama_agent.training_state import check_fits
from drama_agent.world_model import WorldModel


class NonFiniteLossError(RuntimeError):
    """A loss became NaN or infinite; training stops and the last checkpoint stays as it was.

    Raised by `Trainer.check_finite` (the run loop calls it before logging and saving), not inside `step`,
    so that no update waits for the device to report its loss.
    """


@dataclass
class StepResult:
    """What one `Trainer.step()` did; `metrics` holds the update losses of this step (detached tensors)."""

    env_step: int
    reward: float
    episode_return: float | None  # the finished episode's return, when this step ended one
    episode_length: int | None
    metrics: dict[str, Tensor]


def planned_updates(cfg: TrainConfig, env_steps: int, actor_critic: bool = False) -> int:
    """How many updates a run of `env_steps` steps from a fresh start does under `Trainer.step`'s rule.

    One update follows step n when the buffer holds more than `warmup_steps` steps (n > warmup_steps, as long
    as the buffer's capacity exceeds the warm-up), n - 1 <= `total_steps` and n is a multiple of `update_every`.
    With `actor_critic`, only the updates that also train the actor-critic: n > warmup_steps +
    world_model_only_steps.
    """
    start = cfg.warmup_steps + (cfg.world_model_only_steps if actor_critic else 0)
    first, last = start + 1, min(env_steps, cfg.total_steps + 1)
    return max(0, last // cfg.update_every - (first - 1) // cfg.update_every)


class Trainer:
    """Trains an agent's models in `env`: owns the optimisers, replay and the real environment.

    The environment is first reset, with the run seed `cfg.seed`, by the first `step` (with `make_env`
    every later episode gets a seed derived from it); creating a trainer changes nothing outside it.
    `random` is the run's generators, shared with the agent that acts with the same models.
    """

    def __init__(
        self,
        cfg: DramaConfig,
        env: gym.Env,
        world_model: WorldModel,
        actor_critic: ActorCritic,
        random: RunRandomness,
    ) -> None:
        self.cfg = cfg
        self.env = env
        self.world_model = world_model
        self.actor_critic = actor_critic
        self.device = next(world_model.parameters()).device
        self.num_actions = actor_critic.num_actions
        self.obs_shape = (cfg.env.frame_size, cfg.env.frame_size, 3)
        check_env_matches(env, self.num_actions, self.obs_shape)
        self.replay = ReplayBuffer(cfg.replay, self.obs_shape, self.device)
        self.wm_optim, self.wm_schedule = build_optimizer(self.world_model.parameters(), cfg.train)
        self.ac_optim, self.ac_schedule = build_optimizer(
            self.actor_critic.trainable_parameters(), cfg.train, lr_scale=cfg.train.ac_lr_scale
        )
        self.random = random
        self.precision = resolve_precision(cfg.train.precision, self.device)
        if cfg.train.compile:
            compile_networks(world_model, actor_critic, self.device)
        # env step of the first non-finite loss per model (-1: none), kept on the device until checked
        self._nonfinite_at = {name: torch.tensor(-1, device=self.device) for name in ("world model", "actor-critic")}
        self.env_steps = 0
        self.updates = 0
        self.episodes = 0
        self.episode_return = 0.0
        self.episode_length = 0
        self.acting = ActingState()
        self.timer: Callable[[str], AbstractContextManager] | None = None
        """Optional `timer(section)` context manager wrapped around each part of `step` (benchmarks use it)."""
        self.obs: np.ndarray | None = None  # the current observation; None until the first step resets the env

    @property
    def learning(self) -> bool:
        """True when the env step just taken is followed by updates (checked after the step).

        As the authors' loop counts: the buffer holds more than `warmup_steps` steps and the steps taken
        before this one are at most `total_steps` (inclusive), so the last update follows step `total_steps + 1`.
        """
        warm = len(self.replay) > self.cfg.train.warmup_steps
        return warm and self.env_steps - 1 <= self.cfg.train.total_steps

    @property
    def policy_learning(self) -> bool:
        """True when the buffer holds more than the warm-up and world-model-only steps: the policy acts, and
        updates (when `learning`) include imagination and the actor-critic."""
        train = self.cfg.train
        return len(self.replay) > train.warmup_steps + train.world_model_only_steps

    def choose_action(self) -> int:
        """The action for the current observation: random during warm-up and the world-model-only steps, else
        the policy's.

        See docs/algorithm.md §Training loop and acting.
        """
        cfg = self.cfg
        if not self.policy_learning:
            return int(self.random.actions.integers(self.num_actions))
        self._inference_mode()
        with self.precision.autocast():
            action, self.acting = act(
                self.world_model,
                self.actor_critic.actor,
                self.obs,
                self.acting,
                cfg.train.acting_mode,
                cfg.train.act_context,
                self.random.actions,
                self.random.sampling,
            )
        return action

    def step(self) -> StepResult:
        """Act once in the real environment, store the transition, then run this step's updates."""
        if self.obs is None:
            self.obs, _ = self.env.reset(seed=self.cfg.seed)
        with self._section("acting"):
            action = self.choose_action()
        with self._section("env"):
            next_obs, reward, terminated, truncated, info = self.env.step(action)
        reward = float(reward)
        self.replay.add(self.obs, action, reward, bool(terminated or info.get("life_loss", False)))
        self.env_steps += 1
        self.episode_return += reward
        self.episode_length += 1
        result = StepResult(self.env_steps, reward, None, None, {})
        if terminated or truncated:
            result.episode_return, result.episode_length = self.episode_return, self.episode_length
            self.episodes += 1
            self.episode_return, self.episode_length = 0.0, 0
            self.acting = ActingState()
            next_obs, _ = self.env.reset()
        self.obs = next_obs
        if self.learning and self.env_steps % self.cfg.train.update_every == 0:
            with self._section("world_model"):
                result.metrics.update(self.update_world_model())
            if self.policy_learning:
                with self._section("imagination"):
                    rollout, rewards, continues = self.imagine()
                with self._section("actor_critic"):
                    result.metrics.update(self.update_actor_critic(rollout, rewards, continues))
            self.updates += 1
        return result

    def restart_count(self) -> None:
        """Start counting env steps (and so the step budget) from 0 with a fresh episode; models, optimisers,
        replay and generators are kept. The next `step` resets the environment with the run seed."""
        self.env_steps = self.episode_length = 0
        self.episode_return = 0.0
        self.acting = ActingState()
        self.obs = None

    def _section(self, name: str) -> AbstractContextManager:
        return nullcontext() if self.timer is None else self.timer(name)

    def _inference_mode(self) -> None:
        """Eval mode for acting and imagination; the actor's input statistics keep updating with
        `obs_norm_update="every_forward"` (the authors' loop updates them on every actor forward)."""
        eval_mode(self.world_model, self.actor_critic)
        if self.cfg.actor_critic.obs_norm_update == "every_forward":
            self.actor_critic.actor.normalizer.train()

    def update_world_model(self) -> dict[str, Tensor]:
        cfg = self.cfg
        batch = self.replay.sample_world_model(cfg.replay.batch_size, cfg.replay.seq_len, self.random.replay)
        self.world_model.train()
        with self.precision.autocast():
            loss, metrics = self.world_model.loss(
                batch.obs, batch.actions, batch.rewards, batch.terminations, self.random.sampling
            )
        update = self._apply(
            loss, self.wm_optim, self.wm_schedule, self.world_model.parameters(), cfg.train.wm_grad_clip, "world model"
        )
        return {f"world_model/{k}": v for k, v in (metrics | update).items()}

    @torch.no_grad()
    def imagine(self) -> tuple[Rollout, Tensor, Tensor]:
        """Dream from DFS-sampled real windows with the current policy: the rollout, its rewards and continues."""
        cfg = self.cfg
        batch = self.replay.sample_imagination(cfg.imagination.batch_size, cfg.imagination.context, self.random.replay)
        self._inference_mode()
        actor = self.actor_critic.actor
        with self.precision.autocast():
            rollout = imagine_rollout(
                self.world_model,
                batch.obs,
                batch.actions,
                cfg.imagination.horizon,
                policy=lambda features: actor.act(features, generator=self.random.sampling),
                generator=self.random.sampling,
            )
            rewards, continues = rollout.rewards_and_continues(self.world_model, cfg.actor_critic.reward_before_action)
        return rollout, rewards, continues

    def update_actor_critic(self, rollout: Rollout, rewards: Tensor, continues: Tensor) -> dict[str, Tensor]:
        """One actor-critic update on an imagined rollout, then the slow-critic EMA.

        See docs/algorithm.md §Behaviour policy.
        """
        cfg = self.cfg
        self.actor_critic.train()
        with self.precision.autocast():
            loss, metrics = actor_critic_loss(
                self.actor_critic, rollout.features, rollout.actions, rewards, continues, cfg.actor_critic
            )
        update = self._apply(
            loss,
            self.ac_optim,
            self.ac_schedule,
            self.actor_critic.trainable_parameters(),
            cfg.train.ac_grad_clip,
            "actor-critic",
        )
        self.actor_critic.update_slow_critic()
        metrics["imagined_reward"] = rewards.mean()
        return {f"actor_critic/{k}": v for k, v in (metrics | update).items()}

    def _apply(self, loss: Tensor, optim, schedule, params, clip: float, name: str) -> dict[str, Tensor]:
        """Backward, clip and step, skipping the step when the gradients are not finite (as a gradient scaler
        does under bf16); nothing is read on the host. Returns the grad norm and whether the step was skipped."""
        first = self._nonfinite_at[name]
        bad_loss = ~torch.isfinite(loss.detach())
        self._nonfinite_at[name] = torch.where(bad_loss & (first < 0), self.env_steps, first)
        optim.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = clip_grad_norm(list(params), clip)
        finite = torch.isfinite(grad_norm)
        optim.step(apply=finite)
        schedule.step()
        return {"grad_norm": grad_norm, "skipped_update": (~finite).float()}

    def check_finite(self) -> None:
        """Raise NonFiniteLossError if a loss was NaN or infinite since the trainer was made (reads the device)."""
        for name, step in self._nonfinite_at.items():
            if int(step) >= 0:
                raise NonFiniteLossError(
                    f"the {name} loss was not finite at env step {int(step)}; training stopped "
                    "(the last saved checkpoint is intact)"
                )

    def state_dict(self) -> dict[str, Any]:
        return {
            "format": "drama-agent training state",
            "config": self.cfg.to_dict(),
            "world_model": self.world_model.state_dict(),
            "actor_critic": self.actor_critic.state_dict(),
            "wm_optim": self.wm_optim.state_dict(),
            "wm_schedule": self.wm_schedule.state_dict(),
            "ac_optim": self.ac_optim.state_dict(),
            "ac_schedule": self.ac_schedule.state_dict(),
            "replay": self.replay.state_dict(),
            "rng": self.random.state_dict(),
            "env": get_env_state(self.env),
            "obs": self.obs,
            "acting": {
                "obs": list(self.acting.obs),
                "actions": list(self.acting.actions),
                "sequence": self.acting.sequence,
                "last_z": self.acting.last_z,
                "last_action": self.acting.last_action,
            },
            "counters": {
                "env_steps": self.env_steps,
                "updates": self.updates,
                "episodes": self.episodes,
                "episode_return": self.episode_return,
                "episode_length": self.episode_length,
            },
        }

    def load_state_dict(self, state: dict[str, Any], source: str = "the training state") -> None:
        """Restore `state_dict()`; a state that does not fit (another config, shapes, optimisers) is a
        ValueError naming `source` and the first misfit, found before the models are touched."""
        modules = {"world_model": self.world_model, "actor_critic": self.actor_critic}
        check_fits(state, source, self.cfg, modules, {"wm_optim": self.wm_optim, "ac_optim": self.ac_optim})
        self.world_model.load_state_dict(state["world_model"])
        self.actor_critic.load_state_dict(state["actor_critic"])
        self.wm_optim.load_state_dict(state["wm_optim"])
        self.wm_schedule.load_state_dict(state["wm_schedule"])
        self.ac_optim.load_state_dict(state["ac_optim"])
        self.ac_schedule.load_state_dict(state["ac_schedule"])
        self.replay.load_state_dict(state["replay"])
        self.random.load_state_dict(state["rng"])
        set_env_state(self.env, state["env"])
        self.obs = None if state["obs"] is None else np.asarray(state["obs"])
        acting = state["acting"]
        sequence = acting["sequence"]
        self.acting = ActingState(
            obs=tuple(np.asarray(o) for o in acting["obs"]),
            actions=tuple(acting["actions"]),
            sequence=None if sequence is None else [tuple(t.to(self.device) for t in layer) for layer in sequence],
            last_z=None if acting["last_z"] is None else acting["last_z"].to(self.device),
            last_action=acting["last_action"],
        )
        for name, value in state["counters"].items():
            setattr(self, name, value)

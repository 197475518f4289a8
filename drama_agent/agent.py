"""`DramaAgent`: the whole agent behind one object."""

from __future__ import annotations

import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from drama_agent import checkpoint, dream, hub, model_card
from drama_agent.acting import ActingState, act, weights_version
from drama_agent.atomic import atomic_folder
from drama_agent.behavior import Actor, build_actor_critic
from drama_agent.checks import (
    check_action_ids,
    check_batch_length,
    check_count,
    check_env_matches,
    check_frames,
    check_same_game,
    count_parameters,
    eval_mode,
    num_actions_of,
    resolve_device,
)
from drama_agent.config import DramaConfig
from drama_agent.dream import Imagination
from drama_agent.envs import action_meanings, make_env
from drama_agent.precision import Precision, resolve_precision, with_bf16_layers
from drama_agent.randomness import RunRandomness, seeded_init
from drama_agent.run_loop import progress, run_steps
from drama_agent.scores import game_name, summarize_returns
from drama_agent.serialization import StateFileError
from drama_agent.trainer import StepResult, Trainer
from drama_agent.training_state import load_training_state, save_training_state
from drama_agent.version import __version__
from drama_agent.world_model import WorldModel, build_world_model


class DramaAgent:
    """Train, act, imagine, evaluate, save and load a Drama agent.

    `DramaAgent(cfg, env=env)` builds the models for `env`; without an env give `action_space` (or an
    int) and `obs_shape`. The default config is the `xs` preset.
    """

    def __init__(
        self,
        cfg: DramaConfig | None = None,
        env: gym.Env | None = None,
        *,
        action_space: gym.spaces.Discrete | int | None = None,
        obs_shape: tuple[int, int, int] | None = None,
        env_id: str | None = None,
        device: str | torch.device = "auto",
    ) -> None:
        self.cfg = cfg or DramaConfig.preset("xs")
        self.device = resolve_device(device)
        side = self.cfg.env.frame_size
        self.obs_shape = (side, side, 3)
        if obs_shape is not None and tuple(obs_shape) != self.obs_shape:
            raise ValueError(f"obs_shape {tuple(obs_shape)} does not match cfg.env.frame_size ({self.obs_shape})")
        if env is not None:
            action_space = env.action_space
            env_id = env_id or (env.spec.id if env.spec is not None else None)
        elif action_space is None:
            raise ValueError(
                "DramaAgent needs the game it plays: DramaAgent(cfg, env=make_env(game, cfg.env)), or for acting "
                "only DramaAgent(cfg, action_space=<a Discrete space or the number of actions>)"
            )
        num_actions = num_actions_of(action_space)
        if env is not None:
            check_env_matches(env, num_actions, self.obs_shape)
        self.num_actions = num_actions
        self.env_id = env_id
        self.env = env
        with seeded_init(self.cfg.seed):
            self.world_model = build_world_model(self.cfg, num_actions).to(self.device)
            self.actor_critic = build_actor_critic(self.cfg, num_actions).to(self.device)
        self.random = RunRandomness.from_seed(self.cfg.seed, self.device)
        """The run's generators, shared with the trainer and saved with the training state."""
        self._trainer: Trainer | None = None
        self._acting = ActingState()
        self._bf16_acting: tuple[tuple[int, int], WorldModel, Actor] | None = None
        self.pretrained_info: dict[str, Any] | None = None

    # ----------------------------------------------------------------------------------- training
    @property
    def trainer(self) -> Trainer:
        """The training state (created on first use, for the agent's env)."""
        if self._trainer is None:
            if self.env is None:
                raise ValueError("this agent has no environment to learn in: DramaAgent(cfg, env=make_env(...))")
            self._trainer = Trainer(self.cfg, self.env, self.world_model, self.actor_critic, self.random)
        return self._trainer

    @property
    def num_timesteps(self) -> int:
        return 0 if self._trainer is None else self._trainer.env_steps

    @property
    def steps_trained(self) -> int:
        """Env steps the weights have learned from: a loaded checkpoint's own count plus this agent's steps."""
        before = 0 if self.pretrained_info is None else int(self.pretrained_info.get("steps_trained") or 0)
        return before + self.num_timesteps

    def learn(
        self,
        total_timesteps: int,
        progress_bar: bool = False,
        callback: Callable[[DramaAgent, StepResult], bool | None] | None = None,
        run_dir: str | Path | None = None,
        log_every: int = 100,
        reset_num_timesteps: bool = True,
    ) -> DramaAgent:
        """Train for `total_timesteps` more env steps (Stable-Baselines3's meaning).

        `reset_num_timesteps=True` (as in Stable-Baselines3) first restarts the step count at 0, which restarts
        the config's step budget and, with `run_dir`, its metrics log; models, optimisers, replay and
        generators are kept. Pass False to continue a run (e.g. after `DramaAgent.load`). Updates follow every
        env step while the steps before it are <= `cfg.train.total_steps`; later steps are the frozen protocol
        phase, and a warning says when these steps reach it. With `run_dir`, metrics go to its `metrics.csv`
        and TensorBoard, and the full training state is saved every `cfg.train.checkpoint_every` steps and at
        the end. Ctrl-C or SIGTERM stops after the step in progress, saves, and raises
        `drama_agent.interrupts.Interrupted`. `callback(agent, step_result)` returning False stops early. The
        loop is `run_loop.run_steps`.
        """
        total_timesteps = check_count(total_timesteps, "total_timesteps", minimum=0)
        trainer = self.trainer
        if reset_num_timesteps:
            trainer.restart_count()
        run_steps(
            trainer,
            total_timesteps,
            save=self.save,
            run_dir=run_dir,
            env_id=self.env_id,
            log_every=log_every,
            progress_bar=progress_bar,
            callback=None if callback is None else (lambda result: callback(self, result)),
        )
        return self

    train = learn
    """The same call as `learn` (the name the paper's users expect)."""

    # ------------------------------------------------------------------------------------- acting
    def _check_obs(self, obs: Any, batched: bool) -> np.ndarray:
        obs = np.asarray(obs)
        check_frames(obs, self.obs_shape[0], ("N",) if batched and obs.ndim == 4 else ())
        return obs

    @property
    def precision(self) -> Precision:
        """What this agent computes in on its device: `cfg.train.precision` resolved (auto: by the hardware)."""
        return resolve_precision(self.cfg.train.precision, self.device)

    def _act(self, obs: np.ndarray, state: ActingState, deterministic: bool) -> tuple[int, ActingState]:
        eval_mode(self.world_model, self.actor_critic)
        precision, version = self.precision, weights_version(self.world_model)
        world_model, actor = self._acting_modules(precision.bf16, version)
        with precision.autocast():  # as the trainer acts
            return act(
                world_model,
                actor,
                obs,
                state,
                self.cfg.train.acting_mode,
                self.cfg.train.act_context,
                self.random.acting_actions,
                self.random.acting,
                deterministic,
                reuse_encodings=True,  # the weights do not change while acting
                version=version,
            )

    def _acting_modules(self, bf16: bool, version: int) -> tuple[WorldModel, Actor]:
        """The world model and actor to act with: on CPU under bf16, copies with bf16 layers (`with_bf16_layers`,
        same results without the per-call casts), made again whenever the weights changed."""
        if not bf16 or self.device.type != "cpu":
            return self.world_model, self.actor_critic.actor
        versions = (version, weights_version(self.actor_critic.actor))
        if self._bf16_acting is None or self._bf16_acting[0] != versions:
            copies = (with_bf16_layers(self.world_model), with_bf16_layers(self.actor_critic.actor))
            self._bf16_acting = (versions, *copies)
        return self._bf16_acting[1], self._bf16_acting[2]

    def act(self, obs: Any, deterministic: bool = False) -> int:
        """Action for one observation (S, S, 3) uint8 of a single env; call `reset()` when its episode ends."""
        action, self._acting = self._act(self._check_obs(obs, batched=False), self._acting, deterministic)
        return action

    def reset(self) -> None:
        """Forget the acting context (start of a new episode)."""
        self._acting = ActingState()

    def predict(
        self,
        obs: Any,
        state: list[ActingState] | None = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = False,
    ) -> tuple[np.ndarray, list[ActingState]]:
        """Stable-Baselines3-style: obs (N, S, S, 3) or (S, S, 3) -> actions (N,) or (), per-env state."""
        obs = self._check_obs(obs, batched=True)
        single = obs.ndim == 3
        batch = obs[None] if single else obs
        n = len(batch)
        if state is None:
            state = [ActingState() for _ in range(n)]
        check_batch_length(state, "state", n)
        starts = np.zeros(n, bool) if episode_start is None else np.asarray(episode_start, bool).reshape(-1)
        check_batch_length(starts, "episode_start", n)
        actions, new_state = np.zeros(n, np.int64), []
        for i in range(n):
            acting = ActingState() if starts[i] else state[i]
            actions[i], acting = self._act(batch[i], acting, deterministic)
            new_state.append(acting)
        return (actions[0] if single else actions), new_state

    # ---------------------------------------------------------------------------------- imagining
    def imagine(
        self,
        obs_context: Any,
        action_context: Any,
        horizon: int = 16,
        actions: Any = None,
        decode: bool = True,
        seed: int | None = None,
    ) -> Imagination:
        """Dream `horizon` steps beyond real context.

        obs_context (B, L, S, S, 3) or (L, S, S, 3) uint8: real observations o_1..o_L; action_context (B, L)
        or (L,): a_t taken at o_t (a_L leads out of the context). `actions` (B, H) drives the dream open
        loop; None lets the policy choose. `seed` makes the latent (and policy) samples reproducible.
        """
        horizon = check_count(horizon, "horizon")
        action_context = np.asarray(action_context)
        check_action_ids(action_context, "action_context")
        obs = torch.as_tensor(np.asarray(obs_context), device=self.device)
        acts = torch.as_tensor(action_context, device=self.device)
        if obs.dim() == 4:
            obs, acts = obs[None], acts[None]
        check_frames(obs, self.obs_shape[0], ("B", "L"), "obs_context")
        if acts.shape != obs.shape[:2]:
            raise ValueError(f"action_context must have shape {tuple(obs.shape[:2])}, got {tuple(acts.shape)}")
        planned = None
        if actions is not None:
            actions = np.asarray(actions)
            check_action_ids(actions, "actions")
            planned = torch.as_tensor(actions, device=self.device).long()
            planned = planned[None] if planned.dim() == 1 else planned  # (H,) -> (1, H)
            if planned.dim() != 2 or planned.shape[0] != obs.shape[0]:
                raise ValueError(
                    f"actions must have shape ({obs.shape[0]}, {horizon}), one row per context, "
                    f"got {tuple(actions.shape)}"
                )
            if planned.shape[1] != horizon:
                raise ValueError(f"actions must have {horizon} steps (the horizon), got {planned.shape[1]}")
        generator = self.random.acting if seed is None else torch.Generator(self.device).manual_seed(seed)
        return dream.imagine(self.world_model, self.actor_critic, obs, acts.long(), horizon, planned, generator, decode)

    # --------------------------------------------------------------------------------- evaluating
    def evaluate(
        self,
        env: gym.Env,
        n_episodes: int = 10,
        deterministic: bool = True,
        progress_bar: bool = False,
        stall_warning: int = 5_000,
        on_episode: Callable[[float, int], None] | None = None,
    ) -> dict[str, Any]:
        """Play `n_episodes` full episodes; mean, std, returns, lengths and the human-normalised mean (Atari).

        `env` must be the agent's game under its protocol (`make_env(agent.env_id, agent.cfg.env)`): another
        game, frame size, action repeat or frame limit is refused. A greedy policy can stall (in Breakout only
        FIRE serves the ball, and an argmax that prefers waiting never serves it), and a stalled episode plays on
        to the frame limit: the first greedy episode that goes `stall_warning` steps without a reward raises a
        warning (0: never). The progress bar shows the steps of the episode in play. `on_episode(return, length)`
        is called after each episode (an interrupted evaluation keeps what it reported).
        """
        n_episodes = check_count(n_episodes, "n_episodes")
        check_env_matches(env, self.num_actions, self.obs_shape)
        check_same_game(env, self.env_id, self.cfg.env)
        returns, lengths, warned = [], [], not deterministic or stall_warning <= 0
        bar = progress(progress_bar, n_episodes, unit="episode")
        for episode in range(n_episodes):
            obs, _ = env.reset()
            state, total, length, done, unrewarded = ActingState(), 0.0, 0, False, 0
            while not done:
                action, state = self._act(obs, state, deterministic)
                obs, reward, terminated, truncated, _ = env.step(action)
                total, length, done = total + float(reward), length + 1, terminated or truncated
                unrewarded = 0 if reward else unrewarded + 1
                if not warned and unrewarded == stall_warning:
                    warned = True
                    warnings.warn(
                        f"greedy episode {episode + 1} has had no reward for {stall_warning} steps: the policy may "
                        "have stalled (in Breakout only FIRE serves the ball) and then plays on to the frame limit "
                        f"({self.cfg.env.max_episode_frames} frames); sampled actions (deterministic=False, "
                        "drama-eval --stochastic) act as in training, and env.auto_fire presses FIRE for the agent",
                        stacklevel=2,
                    )
                if bar is not None and length % 1_000 == 0:
                    bar.set_postfix(mean=f"{np.mean(returns):.2f}" if returns else "-", episode_steps=length)
            returns.append(total)
            lengths.append(length)
            if on_episode is not None:
                on_episode(total, length)
            if bar is not None:
                bar.update(1)
                bar.set_postfix(mean=f"{np.mean(returns):.2f}", refresh=False)
        if bar is not None:
            bar.close()
        env_id = env.spec.id if env.spec is not None else (self.env_id or "")
        return summarize_returns(env_id, returns, lengths) | {"precision": self.precision.name}

    def parameter_counts(self) -> dict[str, int]:
        """Trainable parameters: world model (and its parts), actor, critic (the slow critic is a copy)."""
        wm = self.world_model.parameter_counts()
        counts = {"world_model": wm.pop("total"), **wm}
        counts["actor"] = count_parameters(self.actor_critic.actor)
        counts["critic"] = count_parameters(self.actor_critic.critic)
        return counts

    # ------------------------------------------------------------------------------ save and load
    def save(self, run_dir: str | Path) -> Path:
        """Write the full training state to `<run_dir>/state.safetensors` atomically; returns its path.

        The state it replaces is kept as `state.prev.safetensors` (the fallback of `load`). A full disk
        raises `drama_agent.atomic.WriteError` (an OSError, one line) and leaves both files as they were.
        """
        state = self.trainer.state_dict()
        state["agent"] = {"env_id": self.env_id}
        return save_training_state(state, run_dir)

    def save_pretrained(
        self,
        folder: str | Path,
        evaluation: dict[str, Any] | None = None,
        name: str | None = None,
        weights_dtype: torch.dtype | None = None,
    ) -> Path:
        """Write config.json, model.safetensors and a README.md model card; `evaluation` is `evaluate`'s dict
        plus an `episodes` count. `weights_dtype=torch.bfloat16` stores the weights in half the space (loading
        casts them back to float32; evaluate the saved folder, since rounding can change greedy play).

        The folder is written whole into a temporary folder that then takes its place (other files already
        in it, like an eval.json, are kept), so a reader or a kill never leaves a mix of old and new files;
        a full disk raises `drama_agent.atomic.WriteError` and leaves the old folder as it was.
        """
        env_id = self.env_id or "unknown"
        config = {
            "package_version": __version__,
            "config": self.cfg.to_dict(),
            "env_id": env_id,
            "num_actions": self.num_actions,
            "obs_shape": list(self.obs_shape),
            "action_meanings": (
                action_meanings(self.env)
                if self.env is not None
                else (self.pretrained_info or {}).get("action_meanings")
            ),
            "steps_trained": self.steps_trained,
            "evaluation": evaluation,
        }
        folder = Path(folder)
        card = {
            "name": name or folder.name,
            "game": game_name(env_id),
            "env_id": env_id,
            "preset": model_card.preset_name(self.cfg),
            "steps_trained": self.steps_trained,
            "eval": evaluation,
            "parameter_counts": self.parameter_counts(),
            "limits": model_card.limits(env_id),
            "package_version": __version__,
        }
        with atomic_folder(folder) as tmp:
            checkpoint.write_checkpoint(tmp, config, self.shared_modules(), weights_dtype)
            (tmp / "README.md").write_text(model_card.model_card(card), encoding="utf-8")
        return folder

    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str,
        revision: str | None = None,
        device: str | torch.device = "auto",
        env: gym.Env | None = None,
        local_files_only: bool = False,
    ) -> DramaAgent:
        """Load a shared agent: a folder path, a checkpoint shipped in `checkpoints/`, or a Hub repo."""
        folder = hub.resolve_checkpoint(name_or_path, revision=revision, local_files_only=local_files_only)
        config, cfg, num_actions, env_id = checkpoint.read_agent_config(folder)
        if env is not None and env.action_space != gym.spaces.Discrete(num_actions):
            raise ValueError(
                f"checkpoint {name_or_path!r} was trained on {env_id} with {num_actions} actions; "
                f"the given environment has {env.action_space}"
            )
        if env is not None:
            check_same_game(env, env_id, cfg.env)
        agent = cls(cfg, env=env, action_space=num_actions, env_id=env_id, device=device)
        checkpoint.load_modules(folder, agent.shared_modules(), config)
        agent.pretrained_info = config
        return agent

    def push_to_hub(self, repo_id: str, folder: str | Path | None = None, **kwargs: Any) -> str:
        """Upload a `save_pretrained` folder (written to a temporary one if not given) to the Hub."""
        if folder is not None:
            return hub.push_to_hub(folder, repo_id, **kwargs)
        with tempfile.TemporaryDirectory() as tmp:
            return hub.push_to_hub(self.save_pretrained(tmp, name=repo_id.split("/")[-1]), repo_id, **kwargs)

    def shared_modules(self) -> dict[str, torch.nn.Module]:
        """The modules a shared checkpoint holds, by the prefix of their keys."""
        return {"world_model": self.world_model, "actor_critic": self.actor_critic}

    @classmethod
    def load(cls, run_dir: str | Path, env: gym.Env | None = None, device: str | torch.device = "auto") -> DramaAgent:
        """Resume a run saved by `save`; without `env` the game is rebuilt with `make_env`.

        The state is verified first (SHA-256, finite values, counters that agree); when the latest fails, a
        `CheckpointFallbackWarning` says why and the previous one (`state.prev.safetensors`) is loaded.
        """
        state, path = load_training_state(run_dir)
        try:
            cfg = DramaConfig.from_dict(state["config"])
            env_id = state["agent"]["env_id"]
        except (KeyError, TypeError, ValueError) as err:
            raise StateFileError(f"{path} does not describe a Drama run: {err!r}") from None
        if env is None:
            if env_id is None:
                raise ValueError("the saved run does not name its environment; pass env=")
            env = make_env(env_id, cfg.env, seed=cfg.seed)
        agent = cls(cfg, env=env, env_id=env_id, device=device)
        agent.trainer.load_state_dict(state, source=str(path))
        return agent

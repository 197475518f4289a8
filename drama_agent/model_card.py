"""The model card: `README.md` of a shared checkpoint, Hub YAML metadata followed by a markdown description."""

from __future__ import annotations

from typing import Any

import yaml

from drama_agent.checkpoint import CheckpointFormatError
from drama_agent.config import DramaConfig
from drama_agent.dream_quality import MOVING_THRESHOLD
from drama_agent.envs import CATCH_ID, random_policy_return
from drama_agent.presets import PRESETS
from drama_agent.scores import game_name, score_table

LIMITS = [
    "Scores are from the agent's own evaluation episodes stated above, not from the paper's 5-seed protocol.",
    "Sampling (latents and, unless deterministic, actions) makes returns vary from run to run.",
]
"""Limits stated on every card."""


def limits(env_id: str) -> list[str]:
    """`LIMITS`, and on Catch a line that puts the score in context (Atari games get `_reference_scores`)."""
    if env_id == CATCH_ID:
        baseline = random_policy_return()
        return LIMITS + [f"Catch is a toy game: a random policy averages {baseline:.2f}, perfect play +5."]
    return list(LIMITS)


def preset_name(cfg: DramaConfig) -> str:
    """The preset whose world model and sequence model `cfg` uses, or "custom"."""
    for name, preset in PRESETS.items():
        if (preset.world_model, preset.sequence) == (cfg.world_model, cfg.sequence):
            return name
    return "custom"


def model_card(meta: dict[str, Any]) -> str:
    """Render README.md: Hub YAML metadata (library, tags, model-index) followed by a markdown description.

    `meta` keys: name, game, env_id, preset, steps_trained, eval (mean, std, episodes, optional hns and protocol)
    or None, parameter_counts, limits (list of str), package_version.
    """
    evaluation = meta.get("eval")
    tags = ["reinforcement-learning", "model-based-rl", "drama", "mamba2"]
    if str(meta["env_id"]).startswith("ALE/"):
        tags.append("atari")
    tags.append(str(meta["game"]))
    front: dict[str, Any] = {"library_name": "drama-agent", "tags": tags}
    if evaluation is not None:
        metrics: list[dict[str, Any]] = [
            {
                "type": "mean_reward",
                "name": "mean_reward",
                "value": f"{evaluation['mean']:.2f} ± {evaluation['std']:.2f}",
                "verified": False,
            }
        ]
        if evaluation.get("hns") is not None:
            metrics.append(
                {
                    "type": "human_normalized_score",
                    "name": "human-normalised score",
                    "value": round(float(evaluation["hns"]), 4),
                    "verified": False,
                }
            )
        front["model-index"] = [
            {
                "name": meta["name"],
                "results": [
                    {
                        "task": {"type": "reinforcement-learning", "name": "reinforcement-learning"},
                        "dataset": {"name": meta["game"], "type": meta["env_id"]},
                        "metrics": metrics,
                    }
                ],
            }
        ]
    header = yaml.safe_dump(front, sort_keys=False, allow_unicode=True)
    return f"---\n{header}---\n\n{_card_body(meta)}"


def parse_model_card(text: str) -> tuple[dict[str, Any], str]:
    """Split a model card into its YAML front matter (a dict, empty if absent) and its markdown body."""
    if not text.startswith("---\n"):
        return {}, text
    end = text.find("\n---\n", 3)
    if end < 0:
        raise CheckpointFormatError("model card front matter opens with '---' but never closes")
    try:
        front = yaml.safe_load(text[4:end]) or {}
    except yaml.YAMLError as err:
        raise CheckpointFormatError(f"model card front matter is not valid YAML: {err}") from None
    if not isinstance(front, dict):
        raise CheckpointFormatError(f"model card front matter must be a mapping, not {type(front).__name__}")
    return front, text[end + len("\n---\n") :].lstrip("\n")


def _card_body(meta: dict[str, Any]) -> str:
    """Markdown part of the model card."""
    evaluation = meta.get("eval")
    lines = [
        f"# {meta['name']}",
        "",
        f"A Drama agent (model-based RL with a Mamba-2 world model; Wang et al., ICLR 2025) trained on "
        f"**{meta['game']}** (`{meta['env_id']}`) with drama-agent {meta['package_version']}.",
        "",
        "## Result",
        "",
    ]
    reference = _reference_scores(meta["env_id"])
    if evaluation is None:
        lines.append("Not evaluated: no score is claimed for this checkpoint.")
        if reference:
            lines += ["", f"Published Atari100k scores of {meta['game']}: {reference}."]
    else:
        hns = "n/a" if evaluation.get("hns") is None else f"{evaluation['hns']:.4f}"
        lines += [
            "| mean return | std | episodes | human-normalised score |",
            "|---|---|---|---|",
            f"| {evaluation['mean']:.2f} | {evaluation['std']:.2f} | {evaluation['episodes']} | {hns} |",
            "",
            "## How the score was measured",
            "",
            f"Undiscounted return of {evaluation['episodes']} evaluation episodes, reported as mean ± standard "
            f"deviation. Protocol: {evaluation.get('protocol') or 'not recorded with this checkpoint.'}",
        ]
        if reference:
            lines += [
                "",
                f"Against the published Atari100k scores of {meta['game']}: this agent "
                f"{evaluation['mean']:.2f}, {reference}.",
            ]
        lines += _dream_quality_lines(evaluation.get("dream_quality"))
    lines += [
        "",
        "## Training",
        "",
        f"- preset: `{meta['preset']}`",
        f"- environment steps trained: {int(meta['steps_trained']):,}",
        f"- environment: `{meta['env_id']}`",
    ]
    lines += _training_lines(None if evaluation is None else evaluation.get("training"))
    lines += [
        "",
        "## Parameters",
        "",
        "| part | parameters |",
        "|---|---|",
    ]
    lines += [f"| {part} | {int(count):,} |" for part, count in meta["parameter_counts"].items()]
    lines += ["", "## Limits", ""]
    lines += [f"- {limit}" for limit in meta["limits"]] or ["- No limits were recorded for this checkpoint."]
    lines += [
        "",
        "## Usage",
        "",
        "```python",
        "from drama_agent import DramaAgent, DramaConfig, make_env",
        "",
        f'agent = DramaAgent.from_pretrained("{meta["name"]}")',
        f'env = make_env("{meta["env_id"]}", DramaConfig.preset("{meta["preset"]}").env, seed=0)',
        "obs, info = env.reset(seed=0)",
        "action = agent.act(obs)",
        "```",
        "",
    ]
    return "\n".join(lines)


DREAM_ROWS = (
    ("this agent", "trained"),
    ("untrained, same config", "untrained"),
    ("no motion: the episode's median frame", "background"),
)
"""Rows of the card's dream-quality table: label and key in `dream_quality`'s dict (the last is absent from
results recorded before it existed)."""


def _dream_quality_lines(dream: dict[str, Any] | None) -> list[str]:
    """The card's dream-quality section from `drama_agent.dream_quality.dream_quality`'s dict (none if absent)."""
    if dream is None:
        return []
    return [
        "",
        "## Dream quality",
        "",
        "| model | mean squared pixel error of 16-step open-loop dreams | on the moving pixels | windows |",
        "|---|---|---|---|",
        *(
            f"| {label} | {dream[key]['mse']:.5f} | {_moving_error(dream[key])} | {dream[key]['windows']} |"
            for label, key in DREAM_ROWS
            if key in dream
        ),
        "",
        f"Moving pixels: those of the real frame whose colour is more than {MOVING_THRESHOLD:g} away from their "
        "episode's median frame (the static background). A model that dreams only the background scores well on "
        "all pixels but not on these; the last row is that motionless dream.",
        "",
        f"Protocol: {dream['protocol']}.",
    ]


def _moving_error(error: dict[str, Any]) -> str:
    """The moving-pixel error with the share of pixels that moved ("-" for results recorded before it existed)."""
    if error.get("moving_mse") is None:
        return "-"
    return f"{error['moving_mse']:.5f} ({error['moving_fraction']:.1%} of pixels)"


def _reference_scores(env_id: str) -> str | None:
    """Random play, the paper's Drama XS (100k env steps) and human on this game, when the table has it."""
    row = score_table().get(game_name(env_id))
    if row is None:
        return None
    return (
        f"random play {row['Random']:g}, Drama XS in the paper {row['DramaXS']:g} (100k env steps, trained on a "
        f"GPU), human {row['Human']:g}"
    )


def _training_lines(training: dict[str, Any] | None) -> list[str]:
    """How the run was made, from the evaluation's optional `training` dict: command, wall_clock_s, machine, notes."""
    if not training:
        return []
    lines = []
    if "wall_clock_s" in training:
        hours, minutes = divmod(round(float(training["wall_clock_s"]) / 60), 60)
        lines.append(
            f"- training wall-clock: {hours} h {minutes:02d} min ({training.get('machine', 'machine not recorded')})"
        )
    if "command" in training:
        lines += ["- command:", "", "```bash", str(training["command"]), "```"]
    lines += [f"- {note}" for note in training.get("notes", [])]
    return lines

"""Checkpoint folders on disk and on the Hugging Face Hub.

A checkpoint is a folder holding `config.json` (with `format_version`), `model.safetensors`, `README.md`
(model card) and optionally `rollout.gif`. `resolve_checkpoint` turns a name into such a folder, trying in
order: an existing directory path, a checkpoint shipped in `checkpoints/` (or in `$DRAMA_CHECKPOINTS_DIR`),
then the Hub (a full `org/name` id, or a bare name under `$DRAMA_HUB_ORG`) through `huggingface_hub`, whose
cache, `HF_HUB_OFFLINE`, `HF_ENDPOINT` and `HF_TOKEN` apply. Loading is safetensors-only and strict.

`huggingface_hub` is imported inside the functions that need it, so that its environment variables (read
when it is first imported) may be set after `drama_agent` is imported.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import torch
import yaml
from safetensors import SafetensorError
from safetensors.torch import load_file

FORMAT_VERSION = 1
"""Version of the checkpoint layout written by this package; newer folders are refused."""

CHECKPOINT_FILES = ("config.json", "model.safetensors", "README.md", "rollout.gif")
"""Every file a checkpoint may hold (the last is optional); nothing else is fetched or pushed."""
REQUIRED_FILES = ("config.json", "model.safetensors")
"""Files without which a folder is not a checkpoint."""

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*$")
_BARE_NAME = re.compile(r"^[A-Za-z0-9][\w.-]*$")
_DRAMA_NAME = re.compile(r"^drama-(?P<preset>[a-z0-9]+)-(?P<game>[a-z0-9][a-z0-9-]*)$", re.IGNORECASE)
_MAX_LISTED_KEYS = 20


class CheckpointNotFoundError(FileNotFoundError):
    """No source holds the checkpoint; the message lists every place tried and how to make it."""


class CheckpointFormatError(ValueError):
    """A checkpoint exists but cannot be loaded: missing files, bad config, corrupt weights, wrong keys."""


def shipped_checkpoints_dir() -> Path:
    """Folder of the shipped checkpoints: `$DRAMA_CHECKPOINTS_DIR` if set, else `checkpoints/` beside the package."""
    override = os.environ.get("DRAMA_CHECKPOINTS_DIR")
    if override:
        return Path(override).expanduser()
    return Path(__file__).resolve().parent.parent / "checkpoints"


def resolve_checkpoint(
    name_or_path: str,
    revision: str | None = None,
    local_files_only: bool = False,
    cache_dir: str | None = None,
) -> Path:
    """Return the folder of checkpoint `name_or_path` (see the module docstring for the search order).

    `revision` (branch, tag or commit sha), `local_files_only` and `cache_dir` apply to the Hub only.
    Raises CheckpointNotFoundError listing each place tried, or CheckpointFormatError if the folder found
    lacks a required file.
    """
    name = str(name_or_path)
    tried: list[str] = []
    path = Path(name).expanduser()
    if path.is_dir():
        return _checked_folder(path, f"local folder {path.resolve()}")
    tried.append(f"local folder {path.resolve()}: no such directory")

    if _BARE_NAME.match(name):
        shipped_root = shipped_checkpoints_dir()
        shipped = shipped_root / name
        if shipped.is_dir():
            return _checked_folder(shipped, f"shipped checkpoint {shipped}")
        available = sorted(p.name for p in shipped_root.iterdir() if p.is_dir()) if shipped_root.is_dir() else []
        tried.append(f"shipped checkpoint {shipped}: not there (shipped: {', '.join(available) or 'none'})")

    repo_id, why_not = _hub_repo_id(name)
    if repo_id is None:
        tried.append(f"Hugging Face Hub: {why_not}")
    else:
        where = f"Hugging Face Hub repo {repo_id} (revision {revision or 'main'})"
        try:
            folder = _download(repo_id, revision, local_files_only, cache_dir)
        except (OSError, ValueError) as err:
            tried.append(f"{where}: {_hub_failure_reason(err, local_files_only, cache_dir)}")
        else:
            return _checked_folder(folder, where)
    raise CheckpointNotFoundError(_not_found_message(name, tried))


def read_checkpoint_config(folder: str | os.PathLike) -> dict[str, Any]:
    """Parse `folder/config.json`; refuse a missing or malformed file and a format newer than FORMAT_VERSION."""
    path = Path(folder) / "config.json"
    if not path.is_file():
        raise CheckpointFormatError(f"{path} is missing: {Path(folder)} is not a drama-agent checkpoint")
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CheckpointFormatError(f"{path} is not valid JSON: {err}") from None
    if not isinstance(config, dict):
        raise CheckpointFormatError(f"{path} must hold a JSON object, not {type(config).__name__}")
    version = config.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise CheckpointFormatError(f"{path} has no valid 'format_version' (a positive integer); got {version!r}")
    if version > FORMAT_VERSION:
        writer = config.get("package_version", "a newer version")
        raise CheckpointFormatError(
            f"{path} has format_version {version}, but this drama-agent reads format_version <= {FORMAT_VERSION}. "
            f"It was written by drama-agent {writer}; upgrade with `pip install -U drama-agent`."
        )
    return config


def load_checkpoint_tensors(folder: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read `folder/model.safetensors` on the CPU; a missing, truncated or corrupt file raises CheckpointFormatError."""
    path = Path(folder) / "model.safetensors"
    if not path.is_file():
        pickles = sorted(p.name for p in Path(folder).glob("*") if p.suffix in (".bin", ".pt", ".pth", ".ckpt"))
        note = f" (found {', '.join(pickles)}: pickle files are never loaded)" if pickles else ""
        raise CheckpointFormatError(f"{path} is missing{note}")
    try:
        return load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError) as err:
        size = path.stat().st_size
        raise CheckpointFormatError(
            f"{path} ({size} bytes) is not a readable safetensors file, it is truncated or corrupt: {err}. "
            "Download or copy it again."
        ) from None


def strict_load(module: torch.nn.Module, tensors: dict[str, torch.Tensor], prefix: str = "") -> None:
    """Load the entries of `tensors` under `prefix` into `module`, refusing missing, extra or mis-shaped keys.

    Keys outside `prefix` belong to other modules and are left alone. The error names every offending key.
    """
    own = {key[len(prefix) :]: value for key, value in tensors.items() if key.startswith(prefix)}
    expected = module.state_dict()
    missing = sorted(set(expected) - set(own))
    unexpected = sorted(set(own) - set(expected))
    mismatched = sorted(
        f"{prefix}{key}: checkpoint {tuple(own[key].shape)} vs model {tuple(expected[key].shape)}"
        for key in set(own) & set(expected)
        if own[key].shape != expected[key].shape
    )
    problems = []
    if missing:
        problems.append(f"missing keys ({len(missing)}): {_key_list([prefix + k for k in missing])}")
    if unexpected:
        problems.append(f"unexpected keys ({len(unexpected)}): {_key_list([prefix + k for k in unexpected])}")
        if all(k.startswith("_orig_mod.") for k in unexpected):
            problems.append("the '_orig_mod.' prefix comes from saving a torch.compile'd module; save the original")
    if mismatched:
        problems.append(f"shape mismatches ({len(mismatched)}): {_key_list(mismatched)}")
    if problems:
        name = type(module).__name__
        raise CheckpointFormatError(f"checkpoint does not match {name} (prefix {prefix!r}): " + "; ".join(problems))
    module.load_state_dict(own, strict=True)


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


def push_to_hub(
    folder: str | os.PathLike,
    repo_id: str,
    token: str | None = None,
    private: bool = False,
    revision: str | None = None,
    commit_message: str = "Upload Drama agent",
) -> str:
    """Create `repo_id` if needed and upload the checkpoint files of `folder`; return the commit URL.

    A bare `repo_id` goes under `$DRAMA_HUB_ORG` if set, else under the token's user. `revision` names a
    branch, created from the default branch if it does not exist yet. The folder is checked first so that
    nothing unloadable is published.
    """
    from huggingface_hub import HfApi

    from drama_agent import __version__

    folder = Path(folder)
    read_checkpoint_config(folder)
    load_checkpoint_tensors(folder)
    org = os.environ.get("DRAMA_HUB_ORG")
    if "/" not in repo_id and org:
        repo_id = f"{org}/{repo_id}"
    api = HfApi(token=token, library_name="drama-agent", library_version=__version__)
    repo_url = api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
    if revision is not None and not revision.startswith("refs/"):
        api.create_branch(repo_url.repo_id, branch=revision, exist_ok=True)
    info = api.upload_folder(
        repo_id=repo_url.repo_id,
        folder_path=folder,
        revision=revision,
        commit_message=commit_message,
        allow_patterns=list(CHECKPOINT_FILES),
    )
    return str(info.commit_url)


def _checked_folder(folder: Path, source: str) -> Path:
    """Return `folder` if it holds every required file, else raise CheckpointFormatError naming the missing ones."""
    missing = [name for name in REQUIRED_FILES if not (folder / name).is_file()]
    if missing:
        raise CheckpointFormatError(f"{source} is not a drama-agent checkpoint: it has no {', '.join(missing)}")
    return folder


def _hub_repo_id(name: str) -> tuple[str | None, str]:
    """The Hub repo id for `name`, or None and the reason why the Hub cannot be asked."""
    if _HUB_ID.match(name):
        return name, ""
    if _BARE_NAME.match(name):
        org = os.environ.get("DRAMA_HUB_ORG")
        if org:
            return f"{org}/{name}", ""
        return None, f"not asked, a bare name needs an organisation: set DRAMA_HUB_ORG=<org> or pass '<org>/{name}'"
    return None, "not asked, the name is neither 'org/name' nor a bare name"


def _download(repo_id: str, revision: str | None, local_files_only: bool, cache_dir: str | None) -> Path:
    """Fetch the checkpoint files of `repo_id` into the huggingface_hub cache and return the snapshot folder."""
    from huggingface_hub import snapshot_download

    from drama_agent import __version__

    folder = snapshot_download(
        repo_id,
        revision=revision,
        cache_dir=cache_dir,
        local_files_only=local_files_only,
        allow_patterns=list(CHECKPOINT_FILES),
        library_name="drama-agent",
        library_version=__version__,
    )
    return Path(folder)


def _hub_failure_reason(err: Exception, local_files_only: bool, cache_dir: str | None) -> str:
    """One line saying why the Hub gave nothing."""
    from huggingface_hub import constants
    from huggingface_hub.errors import LocalEntryNotFoundError, RepositoryNotFoundError, RevisionNotFoundError

    cache = cache_dir or constants.HF_HUB_CACHE
    if isinstance(err, RevisionNotFoundError):
        return "that revision does not exist in the repo (HTTP 404)"
    if isinstance(err, RepositoryNotFoundError):
        return (
            f"no such repo at {constants.ENDPOINT} (HTTP 404), or it is private or gated and no valid token was "
            "given (set HF_TOKEN or run `hf auth login`)"
        )
    if isinstance(err, LocalEntryNotFoundError):
        if local_files_only:
            return f"not in the huggingface_hub cache ({cache}) and local_files_only=True forbids downloading"
        if constants.HF_HUB_OFFLINE:
            return f"not in the huggingface_hub cache ({cache}) and HF_HUB_OFFLINE=1 forbids downloading"
        return f"{constants.ENDPOINT} could not be reached and the repo is not in the cache ({cache}): {_first(err)}"
    return f"{type(err).__name__}: {_first(err)}"


def _not_found_message(name: str, tried: list[str]) -> str:
    """The CheckpointNotFoundError text: each place tried, then how to make the checkpoint."""
    lines = [f"Could not find the Drama checkpoint {name!r}. Tried, in order:"]
    lines += [f"  {i}. {entry}" for i, entry in enumerate(tried, start=1)]
    match = _DRAMA_NAME.match(Path(name).name)
    if match:
        game = "".join(part.capitalize() for part in match["game"].split("-"))
        lines.append(
            f"It is not available here: train it with `drama-train --game {game} --preset {match['preset'].lower()}` "
            "(--game takes the ALE game name), then pass the folder it saves with save_pretrained to from_pretrained, "
            f"or copy that folder to {shipped_checkpoints_dir() / Path(name).name}."
        )
    else:
        lines.append(
            "To make a checkpoint, train an agent with `drama-train --game <Game> --preset <preset>` and pass the "
            "folder it saves with save_pretrained, or give a Hub id 'org/name'."
        )
    return "\n".join(lines)


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
    if evaluation is None:
        lines.append("Not evaluated: no score is claimed for this checkpoint.")
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
    lines += [
        "",
        "## Training",
        "",
        f"- preset: `{meta['preset']}`",
        f"- environment steps trained: {int(meta['steps_trained']):,}",
        f"- environment: `{meta['env_id']}`",
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


def _key_list(keys: list[str]) -> str:
    """Comma-separated keys, at most _MAX_LISTED_KEYS of them."""
    shown = ", ".join(keys[:_MAX_LISTED_KEYS])
    return shown if len(keys) <= _MAX_LISTED_KEYS else f"{shown}, ... ({len(keys) - _MAX_LISTED_KEYS} more)"


def _first(err: Exception) -> str:
    """First non-empty line of an exception's message."""
    return next((line for line in str(err).splitlines() if line.strip()), type(err).__name__)

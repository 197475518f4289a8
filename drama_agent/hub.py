"""Finding, downloading and uploading checkpoint folders (their format lives in `drama_agent.checkpoint`).

`resolve_checkpoint` turns a name into a checkpoint folder, trying in order: an existing directory path, a
checkpoint shipped in `checkpoints/` (or in `$DRAMA_CHECKPOINTS_DIR`), then the Hub (a full `org/name` id,
or a bare name under `$DRAMA_HUB_ORG`) through `huggingface_hub`, whose cache, `HF_HUB_OFFLINE`,
`HF_ENDPOINT` and `HF_TOKEN` apply.

`huggingface_hub` is imported inside the functions that need it, so that its environment variables (read
when it is first imported) may be set after `drama_agent` is imported.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from drama_agent.checkpoint import (
    CHECKPOINT_FILES,
    checked_folder,
    load_checkpoint_tensors,
    read_checkpoint_config,
)
from drama_agent.version import __version__

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*$")
_BARE_NAME = re.compile(r"^[A-Za-z0-9][\w.-]*$")
_DRAMA_NAME = re.compile(r"^drama-(?P<preset>[a-z0-9]+)-(?P<game>[a-z0-9][a-z0-9-]*)$", re.IGNORECASE)


class CheckpointNotFoundError(FileNotFoundError):
    """No source holds the checkpoint; the message lists every place tried and how to make it."""


def shipped_checkpoints_dir() -> Path:
    """Folder of the shipped checkpoints: `$DRAMA_CHECKPOINTS_DIR` if set, else `checkpoints/` beside the package."""
    override = os.environ.get("DRAMA_CHECKPOINTS_DIR")
    if override:
        return Path(override).expanduser()
    return Path(__file__).resolve().parent.parent / "checkpoints"


def shipped_for_game(game: str) -> list[str]:
    """Names of the shipped checkpoints `drama-<preset>-<game>` for one game (`game` as in the name, e.g. 'pong')."""
    root = shipped_checkpoints_dir()
    if not root.is_dir():
        return []
    names = [p.name for p in root.iterdir() if p.is_dir()]
    return sorted(n for n in names if (m := _DRAMA_NAME.match(n)) and m["game"].lower() == game.lower())


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
        return checked_folder(path, f"local folder {path.resolve()}")
    tried.append(f"local folder {path.resolve()}: no such directory")

    if _BARE_NAME.match(name):
        shipped_root = shipped_checkpoints_dir()
        shipped = shipped_root / name
        if shipped.is_dir():
            return checked_folder(shipped, f"shipped checkpoint {shipped}")
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
            return checked_folder(folder, where)
    raise CheckpointNotFoundError(_not_found_message(name, tried))


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

    folder = Path(folder)
    config = read_checkpoint_config(folder)
    load_checkpoint_tensors(folder, config.get("model_sha256"))
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
        same_game = shipped_for_game(match["game"])
        lines.append(
            f"Shipped checkpoints for {game}: {', '.join(same_game)}."
            if same_game
            else f"No checkpoint for {game} is shipped."
        )
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


def _first(err: Exception) -> str:
    """First non-empty line of an exception's message."""
    return next((line for line in str(err).splitlines() if line.strip()), type(err).__name__)

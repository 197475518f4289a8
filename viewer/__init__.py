"""drama-view: the real game, the world model's dream of it and their difference, side by side (pygame).

`record_rollout(agent, env, path, frames, horizon)` writes such a GIF from a script or notebook, without a
window; the `drama-view` command (`viewer.main`) opens the interactive window.
"""

import os

os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")

from viewer.record import Recording, record_rollout  # noqa: E402

__all__ = ["Recording", "record_rollout"]

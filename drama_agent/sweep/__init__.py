"""Many training runs at once: `drama-sweep` runs them on Ray, `drama-report` aggregates them with rliable.

`ray`, `rliable` and `matplotlib` come with the optional extra `sweep` (`pip install -e ".[sweep]"`).
"""

from __future__ import annotations

import importlib
from types import ModuleType

INSTALL_HINT = 'pip install -e ".[sweep]"  (or pip install "drama-agent[sweep]")'


class MissingExtraError(ImportError):
    """A package of the `sweep` extra is not installed."""


def require(module: str) -> ModuleType:
    """Import `module`, or fail with an error that names the extra to install."""
    try:
        return importlib.import_module(module)
    except ImportError as err:
        top = module.split(".")[0]
        raise MissingExtraError(
            f"{top} is not installed; sweeps and reports need the 'sweep' extra: {INSTALL_HINT}"
        ) from err

"""Writing a benchmark's result: `<stem>.json` (the numbers) and `<stem>.md` (the table), shared by the benchmarks."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def write_results(result: dict[str, Any], table: str, stem: str, folder: Path = RESULTS) -> None:
    """Write `folder/<stem>.json` and `folder/<stem>.md`, and print the table."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{stem}.json").write_text(json.dumps(result, indent=2) + "\n")
    (folder / f"{stem}.md").write_text(table)
    print(table)

"""Command-line entry points: `drama-train`, `drama-eval` (and `drama-view` in the `viewer` package)."""

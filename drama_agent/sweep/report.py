"""The report of a sweep folder: per-game table, rliable aggregates, performance profile; markdown, JSON and PNG.

Every run is scored by its `protocol.json` (the paper's protocol: mean return of its last 5 training
episodes). Atari100k games are also human-normalised and aggregated across games; other games (Catch) are
reported by raw return only.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from drama_agent.protocol import PROTOCOL, read_protocol
from drama_agent.scores import human_normalized_score, score_table
from drama_agent.sweep.aggregate import (
    AGGREGATES,
    aggregate_scores,
    interval_estimates,
    performance_profile,
    plot_profile,
    profile_point,
)
from drama_agent.sweep.runs import SETTINGS_FILE, find_runs, run_status

PUBLISHED = "DramaXS"  # the column of the published Drama (XS) scores in the shipped table
PROFILE_FILE = "performance_profile.png"


def collect(out: str | Path) -> tuple[dict[str, dict[int, float]], list[dict[str, Any]]]:
    """({game: {seed: protocol score}}, [runs without a score: game, seed, status, error])."""
    scores: dict[str, dict[int, float]] = {}
    problems = []
    for game, seed, folder in find_runs(out):
        record = read_protocol(folder)
        if record is not None and record["score"] is not None:
            scores.setdefault(game, {})[seed] = record["score"]
            continue
        status, error = run_status(folder)
        if record is not None:
            error = f"no training episode ended in {record['env_steps']} steps"
        problems.append({"game": game, "seed": seed, "status": status, "error": error})
    return scores, problems


def score_matrix(scores: dict[str, dict[int, float]]) -> tuple[list[str], list[int], np.ndarray]:
    """Atari100k games with scores, the seeds every one of them has, and their (seeds, games) HNS matrix."""
    games = sorted(game for game in scores if game in score_table())
    seeds = sorted(set.intersection(*(set(scores[game]) for game in games))) if games else []
    hns = np.array([[human_normalized_score(game, scores[game][seed]) for game in games] for seed in seeds])
    return games, seeds, hns.reshape(len(seeds), len(games))


def published_hns(games: list[str]) -> np.ndarray:
    """(1, games): the published Drama XS scores, human-normalised, as one run of a score matrix."""
    table = score_table()
    return np.array([[human_normalized_score(game, table[game][PUBLISHED]) for game in games]])


def build_report(out: str | Path, reps: int = 50_000, profile_reps: int = 2_000, seed: int = 0) -> dict[str, Any]:
    """Everything the report shows, as JSON-ready values (the aggregates with `reps` bootstrap samples)."""
    scores, problems = collect(out)
    table = score_table()
    rows = []
    for game in sorted(scores):
        values = np.array([scores[game][s] for s in sorted(scores[game])])
        row = {"game": game, "seeds": sorted(scores[game]), "scores": values.tolist()}
        row |= {"mean": float(values.mean()), "std": float(values.std())}
        if game in table:
            row |= {"random": table[game]["Random"], "human": table[game]["Human"], "published": table[game][PUBLISHED]}
            row["hns"] = human_normalized_score(game, row["mean"])
        rows.append(row)
    games, seeds, hns = score_matrix(scores)
    settings_path = Path(out) / SETTINGS_FILE
    report: dict[str, Any] = {
        "folder": str(out),
        "settings": json.loads(settings_path.read_text()) if settings_path.is_file() else None,
        "protocol": PROTOCOL,
        "games": rows,
        "problems": problems,
        "matrix": {"games": games, "seeds": seeds, "hns": hns.tolist()},
        "excluded": [(g, s) for g in games for s in sorted(scores[g]) if s not in seeds],
        "bootstrap": {"reps": reps, "profile_reps": profile_reps, "seed": seed, "confidence": 0.95},
        "aggregates": None,
        "published_aggregates": None,
    }
    if hns.size:
        report["aggregates"] = interval_estimates(hns, reps=reps, seed=seed)
        published = aggregate_scores(published_hns(games))
        report["published_aggregates"] = dict(zip(AGGREGATES, published.tolist(), strict=True))
    return report


def write_report(report: dict[str, Any], folder: str | Path) -> Path:
    """Write report.json, report.md and (with aggregates) the performance-profile PNG; returns report.md."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if report["aggregates"] is not None:
        hns = np.array(report["matrix"]["hns"])
        games = report["matrix"]["games"]
        published = published_hns(games)
        taus = np.linspace(min(0.0, float(hns.min())), max(2.0, float(hns.max()), float(published.max())), 201)
        boot = report["bootstrap"]
        profile, ci = performance_profile(hns, taus, reps=boot["profile_reps"], seed=boot["seed"])
        profiles = {"this sweep": profile, "Drama XS (published)": profile_point(published, taus)}
        title = f"{len(games)} games x {len(report['matrix']['seeds'])} seeds"
        plot_profile(folder / PROFILE_FILE, taus, profiles, {"this sweep": ci}, title)
        report = report | {"profile": PROFILE_FILE}
    (folder / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    path = folder / "report.md"
    path.write_text(render_markdown(report))
    return path


def _number(value: float | None, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def render_markdown(report: dict[str, Any]) -> str:
    lines = [f"# Drama sweep report: {report['folder']}", ""]
    settings = report["settings"]
    if settings is not None:
        steps = settings["steps"] if settings["steps"] is not None else "the preset's"
        extra = " ".join(settings["config_args"]) or "none"
        lines += [f"Preset `{settings['preset']}`, {steps} agent steps per run, config overrides: {extra}.", ""]
    lines += [
        f"Score of a run: {report['protocol']} (the paper's protocol). Per game: mean ± std over seeds. "
        "Human-normalised = (score − random) / (human − random); games outside Atari100k are shown by raw "
        "return. Published Drama: the paper's XS agent (100k steps, 5 seeds).",
        "",
        "| Game | Seeds | Score | Random | Human | Drama XS (published) | Human-normalised |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in report["games"]:
        score = f"{row['mean']:.2f} ± {row['std']:.2f}"
        if "hns" in row:
            cells = [f"{row['random']:g}", f"{row['human']:g}", f"{row['published']:g}", _number(row["hns"])]
        else:
            cells = ["–", "–", "–", "raw return (not an Atari100k game)"]
        lines.append(f"| {row['game']} | {len(row['seeds'])} | {score} | " + " | ".join(cells) + " |")
    lines.append("")
    aggregates = report["aggregates"]
    if aggregates is not None:
        matrix, boot = report["matrix"], report["bootstrap"]
        lines += [
            f"## Aggregates over {len(matrix['games'])} Atari100k games x {len(matrix['seeds'])} seeds",
            "",
            f"Human-normalised; 95 % stratified-bootstrap confidence intervals from rliable ({boot['reps']} "
            f"samples, seed {boot['seed']}). The published row is the paper's per-game XS scores aggregated "
            "over the same games (a point, no interval).",
            "",
            "| | Mean | Median | IQM | Optimality gap |",
            "|---|---|---|---|---|",
            "| this sweep | "
            + " | ".join(
                f"{aggregates[n]['value']:.3f} [{aggregates[n]['ci_low']:.3f}, {aggregates[n]['ci_high']:.3f}]"
                for n in AGGREGATES
            )
            + " |",
            "| Drama XS (published) | "
            + " | ".join(f"{report['published_aggregates'][n]:.3f}" for n in AGGREGATES)
            + " |",
            "",
            f"![performance profile]({report['profile']})",
            "",
        ]
        if report["excluded"]:
            left = ", ".join(f"{g} seed {s}" for g, s in report["excluded"])
            lines += [f"Not in the aggregates (the seed is missing in another game): {left}.", ""]
    if report["problems"]:
        lines += ["## Runs without a score", ""]
        for p in report["problems"]:
            lines.append(f"* {p['game']} seed {p['seed']}: {p['status']}" + (f": {p['error']}" if p["error"] else ""))
        lines.append("")
    return "\n".join(lines)

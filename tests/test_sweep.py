"""drama-sweep and drama-report: real drama-train processes as tasks of a real local Ray instance."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import threading
import time
from contextlib import redirect_stdout
from pathlib import Path

import numpy as np
import pytest

from drama_agent.cli import report, sweep
from drama_agent.metrics import read_metrics
from drama_agent.protocol import read_protocol, write_protocol
from drama_agent.scores import score_table
from drama_agent.sweep.runs import read_attempts, run_status

REPO = Path(__file__).resolve().parents[1]
# Tiny runs: 250 random warm-up steps (a Breakout episode ends), then 30 steps with updates; a checkpoint
# every 40 steps, so a killed run has a saved state to resume from.
TRAIN = ["--preset", "debug", "--steps", "280", "--train.warmup_steps", "250", "--train.checkpoint_every", "40"]
TRAIN += ["--eval-episodes", "0", "--log-every", "25", "--no-progress"]


@pytest.fixture(scope="module")
def ray_instance():
    """One local Ray instance (2 CPUs) for the module; its workers and their drama-train processes import this
    checkout's package and run on one thread each. Returns its address."""
    import ray

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
        patch.setenv("OMP_NUM_THREADS", "1")
        ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
        try:
            yield ray.get_runtime_context().gcs_address
        finally:
            ray.shutdown()


def _starts(folder: Path) -> list[dict]:
    return [event for event in read_attempts(folder) if event["event"] == "start"]


def _wait_for(condition, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture(scope="module")
def swept(ray_instance, tmp_path_factory):
    """Catch and Breakout, 2 seeds each, swept once for the tests below."""
    out = tmp_path_factory.mktemp("sweep")
    printed = io.StringIO()
    with redirect_stdout(printed):
        code = sweep.main(["--games", "Catch", "Breakout", "--seeds", "2", "--out", str(out)] + TRAIN)
    return out, code, printed.getvalue()


@pytest.mark.slow
def test_sweep_trains_every_game_and_seed(swept):
    out, code, printed = swept
    assert code == 0
    for game, env_id in (("Catch", "Catch-v0"), ("Breakout", "ALE/Breakout-v5")):
        for seed in (0, 1):
            folder = out / game / f"seed{seed}"
            record = read_protocol(folder)
            assert record["env_id"].endswith(env_id) and record["env_steps"] == 280
            returns = [float(v) for _, name, v in read_metrics(folder) if name == "episode/return"]
            assert record["training_episodes"] == len(returns) >= 1
            assert record["last_returns"] == returns[-5:]
            assert record["score"] == pytest.approx(np.mean(returns[-5:]), abs=1e-12)
            assert len(_starts(folder)) == 1
            assert f"training {record['env_id']}" in (folder / "train.out").read_text()  # stdout kept
    assert "4 runs finished, 0 skipped (finished before), 0 failed" in printed


@pytest.mark.slow
def test_report_has_every_cell_and_equals_rliable_on_the_same_matrix(swept, capsys):
    from rliable import library, metrics

    out = swept[0]
    assert report.main([str(out), "--reps", "500", "--profile-reps", "100", "--seed", "3"]) == 0
    result = json.loads((out / "report.json").read_text())
    rows = {row["game"]: row for row in result["games"]}
    assert set(rows) == {"Catch", "Breakout"}
    for game, row in rows.items():
        scores = [read_protocol(out / game / f"seed{s}")["score"] for s in (0, 1)]
        assert row["seeds"] == [0, 1] and row["scores"] == scores
        assert row["mean"] == pytest.approx(np.mean(scores)) and row["std"] == pytest.approx(np.std(scores))
    assert "hns" not in rows["Catch"]  # raw return only
    breakout = score_table()["Breakout"]
    hns = [[(s - breakout["Random"]) / (breakout["Human"] - breakout["Random"])] for s in rows["Breakout"]["scores"]]
    assert result["matrix"] == {"games": ["Breakout"], "seeds": [0, 1], "hns": hns}

    def aggregates(x):
        return np.array(
            [metrics.aggregate_mean(x), metrics.aggregate_median(x), metrics.aggregate_iqm(x)]
            + [metrics.aggregate_optimality_gap(x)]
        )

    np.random.seed(3)  # rliable resamples with numpy's global RNG
    point, interval = library.get_interval_estimates({"x": np.array(hns)}, aggregates, reps=500)
    for i, name in enumerate(("mean", "median", "iqm", "optimality_gap")):
        got = result["aggregates"][name]
        assert [got["value"], got["ci_low"], got["ci_high"]] == [point["x"][i], *interval["x"][:, i]]
    assert result["problems"] == []
    markdown = (out / "report.md").read_text()
    assert markdown in capsys.readouterr().out
    for row in rows.values():
        assert f"| {row['game']} | 2 | {row['mean']:.2f} ± {row['std']:.2f} |" in markdown
    assert f"| 2 | 30 | 7 | {rows['Breakout']['hns']:.3f} |" in markdown
    assert (out / "performance_profile.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_report_aggregates_many_games_and_leaves_out_incomplete_seeds(tmp_path):
    from rliable import library, metrics

    rng = np.random.default_rng(0)
    games = ["Alien", "Boxing", "Breakout", "Pong", "Seaquest"]
    for game in games:
        for seed in range(3 if game != "Pong" else 2):  # Pong lacks seed 2
            folder = tmp_path / game / f"seed{seed}"
            folder.mkdir(parents=True)
            table = score_table()[game]
            score = table["Random"] + rng.uniform(-0.2, 1.5) * (table["Human"] - table["Random"])
            write_protocol(folder, {"score": score, "env_steps": 100})
    (tmp_path / "Catch" / "seed0").mkdir(parents=True)
    write_protocol(tmp_path / "Catch" / "seed0", {"score": 2.5, "env_steps": 100})
    (tmp_path / "Catch" / "seed1").mkdir()  # started, never finished
    assert report.main([str(tmp_path), "--reps", "300", "--profile-reps", "50", "--seed", "1"]) == 0
    result = json.loads((tmp_path / "report.json").read_text())
    assert result["matrix"]["games"] == games and result["matrix"]["seeds"] == [0, 1]  # no Catch in it
    catch = next(row for row in result["games"] if row["game"] == "Catch")
    assert catch["scores"] == [2.5] and "hns" not in catch
    assert result["problems"] == [{"game": "Catch", "seed": 1, "status": "unfinished", "error": None}]
    assert result["excluded"] == [[g, 2] for g in games if g != "Pong"]
    hns = np.array(result["matrix"]["hns"])
    table = score_table()
    for j, game in enumerate(games):
        for i in (0, 1):
            raw = read_protocol(tmp_path / game / f"seed{i}")["score"]
            assert hns[i, j] == pytest.approx(
                (raw - table[game]["Random"]) / (table[game]["Human"] - table[game]["Random"])
            )
    np.random.seed(1)
    point, interval = library.get_interval_estimates(
        {"x": hns}, lambda x: np.array([metrics.aggregate_iqm(x)]), reps=300
    )
    iqm = result["aggregates"]["iqm"]
    # the same seed draws the same resamples whichever aggregates are computed on them
    assert [iqm["value"], iqm["ci_low"], iqm["ci_high"]] == [point["x"][0], *interval["x"][:, 0]]
    published = np.array(
        [[(table[g]["DramaXS"] - table[g]["Random"]) / (table[g]["Human"] - table[g]["Random"])] for g in games]
    ).T
    assert result["published_aggregates"]["median"] == pytest.approx(metrics.aggregate_median(published))
    assert result["published_aggregates"]["optimality_gap"] == pytest.approx(
        metrics.aggregate_optimality_gap(published)
    )


@pytest.mark.slow
def test_a_killed_worker_is_retried_and_resumes_and_a_failing_run_does_not_stop_the_others(swept, tmp_path):
    folder = tmp_path / "Catch" / "seed0"
    killed = {}

    def kill_worker_after_first_checkpoint():
        _wait_for(lambda: (folder / "state.safetensors").is_file() and _starts(folder))
        start = _starts(folder)[0]
        os.kill(start["worker_pid"], signal.SIGKILL)
        killed.update(start)

    killer = threading.Thread(target=kill_worker_after_first_checkpoint)
    killer.start()
    printed = io.StringIO()
    with redirect_stdout(printed):
        code = sweep.main(["--games", "Catch", "NoSuchGame", "--seeds", "1", "--out", str(tmp_path)] + TRAIN)
    killer.join()
    assert code == 1  # a run failed
    status, error = run_status(tmp_path / "NoSuchGame" / "seed0")
    assert status == "failed" and "unknown game 'NoSuchGame'" in error
    assert f"failed: NoSuchGame seed 0 after 1 attempt(s): {error}" in printed.getvalue()
    assert "1 runs finished, 0 skipped (finished before), 1 failed" in printed.getvalue()
    _wait_for(lambda: not _alive(killed["pid"]), timeout=10)  # the first drama-train died with its worker
    starts = _starts(folder)
    assert len(starts) == 2 and starts[1]["worker_pid"] != killed["worker_pid"]
    record = read_protocol(folder)
    resumed = record["resumed_from_step"]
    assert 0 < resumed < 280 and resumed % 40 == 0 and record["env_steps"] == 280
    assert f"resuming {folder} at step {resumed}" in (folder / "train.out").read_text()
    rows = read_metrics(folder)
    assert len({(step, name) for step, name, _ in rows}) == len(rows)  # no duplicated row
    # bit for bit the rows of the same run never interrupted (no row lost or changed)
    assert (folder / "metrics.csv").read_bytes() == (swept[0] / "Catch" / "seed0" / "metrics.csv").read_bytes()


@pytest.mark.slow
def test_a_killed_then_restarted_sweep_skips_finished_runs_and_resumes_the_rest(swept, ray_instance, tmp_path):
    # two CPUs per run on the 2-CPU instance: seed 1 starts once seed 0 has finished
    argv = ["--games", "Catch", "--seeds", "2", "--out", str(tmp_path), "--cpus-per-run", "2"] + TRAIN
    first, second = tmp_path / "Catch" / "seed0", tmp_path / "Catch" / "seed1"
    driver = subprocess.Popen([sys.executable, "-m", "drama_agent.cli.sweep", *argv, "--address", ray_instance])
    try:
        _wait_for(lambda: read_protocol(first) is not None and (second / "state.safetensors").is_file())
    finally:
        driver.send_signal(signal.SIGKILL)
        driver.wait()
    orphan = _starts(second)[0]["pid"]
    _wait_for(lambda: not _alive(orphan), timeout=30)  # the driver's job, its workers and their runs ended
    finished = (first / "protocol.json").read_bytes()
    printed = io.StringIO()
    with redirect_stdout(printed):
        assert sweep.main(argv) == 0
    assert "1 runs finished, 1 skipped (finished before), 0 failed" in printed.getvalue()
    assert len(_starts(first)) == 1 and (first / "protocol.json").read_bytes() == finished
    assert len(_starts(second)) == 2 and read_protocol(second)["resumed_from_step"] > 0
    for seed, folder in enumerate((first, second)):
        reference = swept[0] / "Catch" / f"seed{seed}" / "metrics.csv"
        assert (folder / "metrics.csv").read_bytes() == reference.read_bytes()


def test_sweep_refuses_a_folder_with_other_settings_and_names_the_missing_extra(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # as if ray were not installed
    argv = ["--games", "Catch", "--seeds", "1", "--out", str(tmp_path)] + TRAIN
    assert sweep.main(argv) == 2
    assert 'pip install -e ".[sweep]"' in capsys.readouterr().err
    assert json.loads((tmp_path / "sweep.json").read_text())["steps"] == 280
    assert sweep.main([arg if arg != "280" else "400" for arg in argv]) == 2
    assert "other settings (steps)" in capsys.readouterr().err

"""metrics.csv: append-only during a run, truncated atomically on resume, usable after a kill at any point."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from drama_agent.atomic import WriteError
from drama_agent.metrics import MetricsLogger, read_metrics

ROWS = [(step, name, repr(step / 7 + len(name))) for step in range(1, 31) for name in ("loss", "return")]


def write_run(run_dir) -> None:
    logger = MetricsLogger(run_dir, tensorboard=False)
    for step in range(1, 31):
        logger.log(step, {"loss": step / 7 + 4, "return": step / 7 + 6})
    logger.close()


def test_truncation_keeps_older_rows_and_drops_a_row_cut_short(tmp_path):
    write_run(tmp_path)
    assert read_metrics(tmp_path) == ROWS
    path = tmp_path / "metrics.csv"
    with open(path, "a", newline="") as f:
        f.write("31,loss,4.4")  # a row a kill cut short: no line end
    MetricsLogger(tmp_path, tensorboard=False).truncate_after(31)
    assert read_metrics(tmp_path) == ROWS
    MetricsLogger(tmp_path, tensorboard=False).truncate_after(12)
    assert read_metrics(tmp_path) == [row for row in ROWS if row[0] <= 12]
    assert not (tmp_path / "metrics.csv.tmp").exists()


def test_an_empty_csv_left_by_an_old_kill_is_resumable(tmp_path):
    (tmp_path / "metrics.csv").write_text("")  # what a kill during the old non-atomic rewrite left
    logger = MetricsLogger(tmp_path, tensorboard=False)
    logger.truncate_after(10)
    logger.log(11, {"loss": 0.5})
    assert read_metrics(tmp_path) == [(11, "loss", "0.5")]


KILL_BEFORE_RENAME = textwrap.dedent("""
    import os, sys
    from drama_agent.metrics import MetricsLogger
    real_replace = os.replace
    def dying_replace(src, dst):
        if str(dst).endswith("metrics.csv"):
            os._exit(9)  # killed once the truncated copy is written, before it replaces metrics.csv
        real_replace(src, dst)
    os.replace = dying_replace
    MetricsLogger(sys.argv[1], tensorboard=False).truncate_after(int(sys.argv[2]))
""")


def test_a_kill_during_the_resume_truncation_leaves_a_resumable_run(tmp_path):
    write_run(tmp_path)
    before = (tmp_path / "metrics.csv").read_bytes()
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", KILL_BEFORE_RENAME, str(tmp_path), "12"], env=env)
    assert proc.returncode == 9
    assert (tmp_path / "metrics.csv").read_bytes() == before  # the old file, untouched
    logger = MetricsLogger(tmp_path, tensorboard=False)  # the next resume works and gives the right rows
    logger.truncate_after(12)
    assert read_metrics(tmp_path) == [row for row in ROWS if row[0] <= 12]


def test_a_full_disk_gives_one_line_and_no_traceback_from_tensorboard(small_disk, capfd):
    disk = small_disk("2m")
    logger = MetricsLogger(disk)
    logger.log(1, {"loss": 0.5})
    with open(disk / "filler", "wb") as f, pytest.raises(OSError, match="No space left"):
        f.write(b"x" * 3_000_000)  # fill the disk
    with pytest.raises(WriteError) as err:
        logger.log(2, {"loss": 0.25})
    assert str(err.value).startswith(f"could not write {disk / 'metrics.csv'}: No space left on device (")
    logger.close()
    assert read_metrics(disk) == [(1, "loss", "0.5")]
    assert "Traceback" not in capfd.readouterr().err

"""Process-wide CPU settings: the thread policy and glibc's treatment of large freed blocks."""

import subprocess
import sys

import pytest

from drama_agent import cpu


def test_requested_threads_win_and_bad_counts_raise(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert cpu.choose_threads(5) == cpu.ThreadChoice(5, "set by --threads")
    assert cpu.choose_threads().threads == 3
    with pytest.raises(ValueError, match="at least 1"):
        cpu.choose_threads(0)


def test_default_threads_by_cores_and_model_size(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(cpu.torch, "get_num_threads", lambda: 8)
    for cores, expected in ((1, 1), (2, 1), (3, 1), (4, 3), (16, 7)):
        monkeypatch.setattr(cpu, "usable_cpus", lambda cores=cores: cores)
        assert cpu.choose_threads().threads == expected, cores
        assert cpu.choose_threads(small_model=True).threads == 1


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc only")
def test_keep_freed_memory_keeps_a_freed_large_block() -> None:
    """A freed 256 MiB tensor stays in the process (resident) instead of going back to the OS."""
    script = """
import re, sys, torch
from drama_agent import cpu

def rss_mib():
    return int(re.search(r"VmRSS:\\s+(\\d+)", open("/proc/self/status").read()).group(1)) / 1024

if sys.argv[1] == "keep":
    assert cpu.keep_freed_memory()
before = rss_mib()
block = torch.ones(64 * 2**20)  # 256 MiB, touched
del block
print(rss_mib() - before)
"""
    kept = {}
    for mode in ("keep", "default"):
        done = subprocess.run([sys.executable, "-c", script, mode], capture_output=True, text=True, check=True)
        kept[mode] = float(done.stdout.split()[-1])
    assert kept["keep"] > 200 and kept["default"] < 50, kept

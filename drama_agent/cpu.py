"""Process-wide CPU settings: how many threads torch uses, native bf16 detection and large freed blocks.

These are choices about the process, not about a model, so the command-line tools make them and print them;
a library user keeps torch's defaults unless they call these functions.

Threads: torch's default is one OpenMP thread per physical core. Every parallel operation then waits for all
of them, and an OpenMP thread that does not get a core spins and waits for a whole scheduler slice. On a
2-core machine kept busy by other programs, a `debug` training step took 10-20× longer with two threads than
with one (`benchmarks/README.md`, threads). The default here is therefore one thread on machines with up to
3 cores and for small models (their operations are too small to be shared out), otherwise all physical cores
but one (left to the game, the viewer and other programs); one inter-op thread, since nothing here runs
operations side by side.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import torch

_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4


@dataclass(frozen=True)
class ThreadChoice:
    """The intra-op thread count to use and why (printed by the command-line tools)."""

    threads: int
    reason: str


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity mask where the OS has one)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def choose_threads(requested: int | None = None, small_model: bool = False) -> ThreadChoice:
    """The thread policy of the module docstring; `requested` (e.g. `--threads`) or OMP_NUM_THREADS win."""
    if requested is not None:
        if requested < 1:
            raise ValueError(f"threads must be at least 1, got {requested}")
        return ThreadChoice(requested, "set by --threads")
    if os.environ.get("OMP_NUM_THREADS", "").isdigit() and int(os.environ["OMP_NUM_THREADS"]) > 0:
        return ThreadChoice(int(os.environ["OMP_NUM_THREADS"]), "set by OMP_NUM_THREADS")
    cores = min(usable_cpus(), torch.get_num_threads())  # torch's default is the physical core count
    if small_model:
        return ThreadChoice(1, "a small model: its operations are too small to share between threads")
    if cores <= 3:
        return ThreadChoice(1, f"{cores} cores: a second thread stalls whenever another program needs a core")
    return ThreadChoice(cores - 1, f"{cores} cores, one left for the game and other programs")


def apply_threads(choice: ThreadChoice) -> None:
    """Set torch's intra-op threads to `choice.threads` and its inter-op threads to 1 (if not yet started)."""
    torch.set_num_threads(choice.threads)
    with contextlib.suppress(RuntimeError):  # settable only before the process's first inter-op work
        torch.set_num_interop_threads(1)


def cpu_flags() -> set[str]:
    """The CPU's feature flags from /proc/cpuinfo (empty where there is none)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def cpu_has_native_bf16() -> bool:
    """True if the CPU multiplies bf16 matrices natively (x86 AMX-BF16 or AVX512-BF16) and torch can use it."""
    return torch.backends.mkldnn.is_available() and bool(cpu_flags() & {"amx_bf16", "avx512_bf16"})


def matmul_kernels() -> str:
    """The widest matrix instructions of this CPU that torch's kernels pick from its flags (amx_bf16, avx512_bf16,
    avx512f, avx2 or other): runs agree bit for bit only on the same kind, as the kernels' summation orders differ."""
    flags = cpu_flags()
    return next((kind for kind in ("amx_bf16", "avx512_bf16", "avx512f", "avx2") if kind in flags), "other")


def keep_freed_memory() -> bool:
    """Make glibc keep freed large blocks for reuse instead of returning them to the OS (Linux/glibc only).

    By default glibc maps every block above 32 MiB freshly from the OS and unmaps it when freed, so each large
    tensor (an imagination state at batch 1024 is 64 MiB) costs a page fault per 4 KiB on its first touch:
    several times the arithmetic on it. With mmap off and a 1 GiB trim threshold the process keeps its peak
    memory instead. Returns False where this is not glibc.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        return bool(libc.mallopt(_M_MMAP_MAX, 0)) and bool(libc.mallopt(_M_TRIM_THRESHOLD, 2**30))
    except (OSError, AttributeError):
        return False

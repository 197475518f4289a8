"""CPU peak-memory measurement shared by the benchmarks (Linux only)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path


def _vm_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def rss_peak_rise_mib(fn: Callable[[], object]) -> float:
    """Run `fn` once; the rise of the process's peak resident set size over the RSS before it, in MiB.

    VmHWM is reset to the current RSS through /proc/self/clear_refs just before the call, so the result
    includes allocator overhead; call it in a fresh process so caches of earlier work do not hide memory.
    """
    before = _vm_kib("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
    fn()
    return (_vm_kib("VmHWM") - before) / 1024

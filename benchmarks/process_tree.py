"""CPU seconds of a process and everything it started: what the benchmarks compare when the machine is shared."""

from __future__ import annotations

from collections.abc import Iterable

import psutil


def cpu_seconds(processes: Iterable[psutil.Process]) -> float:
    """User + system CPU seconds used so far by ``processes`` (those that are gone or unreadable count 0)."""
    total = 0.0
    for proc in processes:
        try:
            times = proc.cpu_times()
            total += times.user + times.system
        except psutil.Error:
            pass
    return total


def tree_cpu_seconds(pid: int | None = None) -> float:
    """User + system CPU seconds used so far by process ``pid`` (default: this one) and all its children."""
    try:
        root = psutil.Process(pid)
        return cpu_seconds([root, *root.children(recursive=True)])
    except psutil.Error:
        return 0.0

"""How many cores and how much memory this process may use, and the BLAS libraries that share them."""

from __future__ import annotations

import functools
import os

from threadpoolctl import ThreadpoolController


def available_cores() -> int:
    """The cores the process may use (its CPU affinity on Linux), at least 1."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def available_memory() -> int | None:
    """Bytes of memory this process could still allocate: the smaller of the kernel's MemAvailable and
    what the cgroup's limit leaves; None where neither can be read."""
    candidates = []
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    candidates.append(int(line.split()[1]) * 1024)
    except (OSError, ValueError, IndexError):
        pass
    try:
        with open("/sys/fs/cgroup/memory.max", encoding="ascii") as handle:
            limit = handle.read().strip()
        with open("/sys/fs/cgroup/memory.current", encoding="ascii") as handle:
            used = int(handle.read().strip())
        if limit != "max":
            candidates.append(max(int(limit) - used, 0))
    except (OSError, ValueError):
        pass
    return min(candidates) if candidates else None


@functools.cache
def blas_controller() -> ThreadpoolController:
    """The loaded BLAS libraries, found once per process."""
    return ThreadpoolController()

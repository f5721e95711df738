"""How many cores this process may run on, and the BLAS libraries that share them."""

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


@functools.cache
def blas_controller() -> ThreadpoolController:
    """The loaded BLAS libraries, found once per process."""
    return ThreadpoolController()

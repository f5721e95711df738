"""Batch selection: which examples each step of an epoch takes.

Batch modes, as in the lecture's "Optimization Procedure":

- ``batch``: every step uses all m examples, in their order; one step per epoch;
- ``stochastic``: one example per step, in a fresh seeded order each epoch; m steps per epoch;
- ``mini-batch``: partitions B_1, B_2, … of ``batch_size`` examples (the last may be smaller) of a fresh
  seeded order each epoch, with J_i = (1/|B_i|) Σ_{j ∈ B_i} loss^(j).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class BatchMode:
    """How many examples a step takes, and whether each epoch visits them in a new order."""

    name: str
    size: Callable[[int, int], int]
    shuffle: bool


BATCH_MODES: dict[str, BatchMode] = {
    "batch": BatchMode("batch", lambda m, batch_size: m, shuffle=False),
    "stochastic": BatchMode("stochastic", lambda m, batch_size: 1, shuffle=True),
    "mini-batch": BatchMode("mini-batch", lambda m, batch_size: min(batch_size, m), shuffle=True),
}


def epoch_batches(
    m: int, mode: BatchMode, batch_size: int, rng: np.random.Generator
) -> Iterator[np.ndarray | slice]:
    """The example indices of each step of one epoch: slices in order, or a seeded permutation's parts."""
    size = mode.size(m, batch_size)
    if not mode.shuffle:
        for start in range(0, m, size):
            yield slice(start, min(start + size, m))
        return
    order = rng.permutation(m)
    if size == 1:  # one example a step: a slice is a view, with nothing to gather
        for row in order.tolist():
            yield slice(row, row + 1)
        return
    for start in range(0, m, size):
        yield order[start : start + size]

"""The benchmark workloads of the performance issue, their synthetic data and their GEMM limit."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

ALPHA, BETA, LAMBDA = 0.01, 0.9, 1e-4


@dataclass(frozen=True)
class Workload:
    name: str
    m: int
    sizes: tuple[int, ...]
    activation: str
    output: str
    batch: str
    batch_size: int

    @property
    def step_rows(self) -> list[int]:
        """The number of rows of each step of one epoch."""
        size = {"batch": self.m, "stochastic": 1}.get(self.batch, self.batch_size)
        full, rest = divmod(self.m, size)
        return [size] * full + ([rest] if rest else [])

    def data(self, dtype, seed: int = 0):
        """Seeded synthetic X (m, n) and one-hot (or 0/1) Y, labelled by a random linear teacher."""
        rng = np.random.default_rng(seed)
        X = rng.normal(size=(self.m, self.sizes[0]))
        scores = X @ rng.normal(size=(self.sizes[0], max(self.sizes[-1], 2)))
        labels = scores.argmax(axis=1)
        Y = labels.reshape(-1, 1).astype(float) if self.sizes[-1] == 1 else np.eye(self.sizes[-1])[labels]
        return X.astype(dtype), Y.astype(dtype), labels

    def products(self) -> dict[tuple[int, int, int], int]:
        """{(rows, inner, cols): count} of every matrix product one epoch's steps take."""
        counts: dict[tuple[int, int, int], int] = {}
        for rows in self.step_rows:
            for layer, (s_in, s_out) in enumerate(zip(self.sizes[:-1], self.sizes[1:], strict=True)):
                shapes = [(rows, s_in, s_out), (s_out, rows, s_in)]  # z = a Wᵀ, Δ = δᵀ a
                if layer > 0:
                    shapes.append((rows, s_out, s_in))  # δ W, propagated to the layer below
                for shape in shapes:
                    counts[shape] = counts.get(shape, 0) + 1
        return counts


WORKLOADS = [
    Workload("W1", 1797, (64, 64, 10), "relu", "softmax", "mini-batch", 32),
    Workload("W2", 60000, (784, 256, 128, 10), "relu", "softmax", "mini-batch", 128),
    Workload("W3", 20000, (100, 50, 1), "tanh", "sigmoid", "batch", 20000),
    Workload("W4", 5000, (20, 16, 3), "sigmoid", "softmax", "stochastic", 1),
]


def gemm_limit(workload: Workload, dtype, min_seconds: float = 0.05) -> float:
    """Seconds one epoch's matrix products take on their own: each shape timed in a tight loop at its
    best speed (the faster of np.matmul and np.dot, best of three), times how often the epoch computes it,
    summed."""
    rng = np.random.default_rng(0)
    total = 0.0
    for (rows, inner, cols), count in workload.products().items():
        a = rng.normal(size=(rows, inner)).astype(dtype)
        b = rng.normal(size=(inner, cols)).astype(dtype)
        out = np.empty((rows, cols), dtype=dtype)
        best = min(_best_seconds(product, a, b, out, min_seconds) for product in (np.matmul, np.dot))
        total += best * count
    return total


def _best_seconds(product, a, b, out, min_seconds: float) -> float:
    """Seconds per call of product(a, b, out=out): the best of three loops that each last ≥ min_seconds."""
    product(a, b, out=out)
    repeats = 1
    while _timed(product, a, b, out, repeats) < min_seconds:
        repeats *= 4
    return min(_timed(product, a, b, out, repeats) for _ in range(3)) / repeats


def _timed(product, a, b, out, repeats) -> float:
    start = time.perf_counter()
    for _ in range(repeats):
        product(a, b, out=out)
    return time.perf_counter() - start

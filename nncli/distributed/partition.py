"""What a worker does with its partitions: parse its range of lines, summarize it, standardize it, and
give the sums a step or an evaluation needs. Every function here runs on a worker and returns something
small, except the partitions themselves, which stay where they were made."""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np

from nncli.io.datasets import read_range, split_rows
from nncli.moments import merged


@dataclass(frozen=True)
class RawPartition:
    """One range of the training file, parsed: X (m_p, n) and the targets (class indices into ``labels``,
    or numbers (m_p, K)), split into training and validation rows."""

    X: np.ndarray
    values: np.ndarray
    labels: list
    validation: np.ndarray  # the rows held out (indices into X)
    train: np.ndarray


def load(
    source, line_range, first_row, columns, features, targets, task, fraction, seed, index
) -> RawPartition:
    """Parse the range and hold out ``fraction`` of its rows (of each class), chosen by a generator
    seeded by (seed, partition index)."""
    X, values, labels = read_range(source, line_range, first_row, columns, features, targets, task)
    rng = np.random.default_rng([seed, index])
    train, validation = split_rows(len(X), values if task == "classification" else None, fraction, rng)
    return RawPartition(X, values, labels, validation, train)


@dataclass(frozen=True)
class Summary:
    """A partition's training rows in sums: their count, each column's mean and Σ (x − mean)² (features,
    then numeric targets), the class labels met and how many validation rows it holds."""

    rows: int
    validation_rows: int
    labels: list
    mean: np.ndarray
    squares: np.ndarray


def summarize(part: RawPartition, task: str) -> Summary:
    X = part.X[part.train]
    if task != "classification":
        X = np.column_stack([X, part.values[part.train]])
    mean = X.mean(axis=0) if len(X) else np.zeros(X.shape[1])
    squares = ((X - mean) ** 2).sum(axis=0)
    labels = sorted(set(part.labels), key=repr) if task == "classification" else []
    return Summary(
        len(part.train), len(part.validation), labels if task == "classification" else [], mean, squares
    )


def combined(summaries: list[Summary]) -> tuple[int, np.ndarray, np.ndarray]:
    """(m, mean, std) of the training rows of all partitions, combined in partition order (Chan's pairwise
    update of the mean and Σ (x − mean)²); a std of 0 is taken as 1, as locally."""
    count, mean, squares = 0, 0.0, 0.0
    for s in summaries:
        count, mean, squares = merged(count, mean, squares, s.rows, s.mean, s.squares)
    std = np.sqrt(squares / count)
    std[std == 0.0] = 1.0
    return count, mean, std


@dataclass(frozen=True)
class Partition:
    """A partition ready to train on: standardized X and the targets as Y, for training and validation."""

    X: np.ndarray
    Y: np.ndarray
    X_val: np.ndarray
    Y_val: np.ndarray


def prepared(part: RawPartition, pre, class_order: dict | None) -> Partition:
    """Standardize the features (and numeric targets) with the combined statistics and encode the classes
    (the partition's own label indices mapped to the run's sorted classes)."""
    X = (part.X - pre.mean) / pre.std
    if pre.task == "classification":
        codes = np.array([class_order[label] for label in part.labels], dtype=np.intp)[part.values]
        Y = pre.encode(codes)
    elif pre.task == "regression":
        Y = (part.values - pre.target_mean) / pre.target_std
    else:
        Y = part.values.astype(np.float64)
    return Partition(X[part.train], Y[part.train], X[part.validation], Y[part.validation])


def batch_rows(rows: int, seed: int, epoch: int, step: int, size: int, index: int) -> np.ndarray:
    """The partition's rows in a mini-batch step: [step·size, (step+1)·size) of its order of the epoch, a
    permutation drawn from (seed, epoch, partition index)."""
    order = np.random.default_rng([seed, epoch, index]).permutation(rows)
    return np.sort(order[step * size : (step + 1) * size])


def sums(part: Partition, net, metric, validation: bool = False, step=None, index: int = 0):
    """(Σ loss, Σ ∂loss/∂Θ per parameter array (None for validation rows), the metric's sum, m) of the
    partition's training rows (or its validation rows, or its rows of a mini-batch ``step`` = (seed,
    epoch, step, size)) at ``net``'s parameters."""
    X, Y = (part.X_val, part.Y_val) if validation else (part.X, part.Y)
    if step is not None:
        rows = batch_rows(len(X), *step, index)
        X, Y = X[rows], Y[rows]
    if len(X) == 0:
        return 0.0, None, 0.0, 0
    net = copy.deepcopy(net)  # tasks on one worker's threads must not share one network's buffers
    if validation:
        a_out, loss = net.output.activate_and_loss(net.output_z(X), Y)
        return float(loss), None, metric.batch_sum(a_out, Y) if metric else 0.0, len(X)
    loss, grads, a_out = net.backprop(X, Y)
    return float(loss), grads, metric.batch_sum(a_out, Y) if metric else 0.0, len(X)


def digest(part: Partition) -> bytes:
    """The partition's arrays' bytes hashed, for the run's fingerprint."""
    import hashlib

    h = hashlib.sha256()
    for array in (part.X, part.Y, part.X_val, part.Y_val):
        h.update(np.ascontiguousarray(array).data)
    return h.digest()

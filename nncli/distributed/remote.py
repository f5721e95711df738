"""The client's side of a run on Dask: the partitions made and summarized on the workers, the
preprocessing combined from their sums, and the rows they hold seen as the trainer's X (``RemoteRows``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nncli.distributed import partition
from nncli.errors import DataError
from nncli.io.datasets import (
    MIN_ROWS,
    CsvSource,
    PreparedData,
    Preprocessing,
    held_out_files,
    resolve_output,
    sorted_classes,
    training_columns,
)
from nncli.io.line_ranges import row_grid

# Up to this many bytes of θ (times the partitions), each step sends the network inside every partition's
# task; beyond, it scatters the network to every worker first, which costs a round trip of its own but
# sends θ once per worker instead of once per partition (and past the scheduler).
INLINE_BYTES = 1 << 20


@dataclass(frozen=True)
class TargetShape:
    """What the trainer reads of Y for rows the workers hold: its shape (m, K)."""

    shape: tuple[int, int]

    def __len__(self) -> int:
        return self.shape[0]


@dataclass(frozen=True)
class RemoteRows:
    """The training (or validation) rows of a run, held by the workers in partitions; what the trainer
    reads of X — its length and shape — and the sums a step or an evaluation needs, added in partition
    order."""

    client: object
    parts: list  # futures of partition.Partition, in the file's order
    shape: tuple[int, int]
    validation: bool = False
    sizes: tuple[int, ...] = ()  # each partition's training rows
    seed: int = 0

    def __len__(self) -> int:
        return self.shape[0]

    def steps_per_epoch(self, mode, batch_size: int) -> int:
        """Batch mode: one step; mini-batch: as many as the largest partition needs for its own batches."""
        if mode.name == "batch":
            return 1
        return max(-(-size // batch_size) for size in self.sizes)

    def epoch_batches(self, mode, batch_size: int, epoch: int):
        """The steps of epoch ``epoch``: all rows (batch mode), or the union of one batch of
        ``batch_size`` rows per partition, each partition's rows in an order drawn from (seed, epoch,
        partition) on its worker (``partition.batch_rows``)."""
        if mode.name == "batch":
            yield slice(0, len(self))
            return
        for step in range(self.steps_per_epoch(mode, batch_size)):
            yield PartitionBatch(epoch, step, batch_size, self.seed, self.sizes)

    def sums(self, net, metric, with_gradient: bool = True, batch=None):
        """(Σ loss, Σ ∂loss/∂Θ per parameter array (None without gradient), the metric's sum, m) over
        every partition's rows (or its part of ``batch``, a ``PartitionBatch``) at the network's θ, the
        partitions' sums added in partition order."""
        if net.theta.nbytes * len(self.parts) <= INLINE_BYTES:
            template = net  # sent inside each task: no round trip of its own
        else:  # sent once to every worker; the tasks name it
            template = self.client.scatter(net, broadcast=True, hash=False)
        step = None if batch is None else (batch.seed, batch.epoch, batch.step, batch.size)
        futures = [
            self.client.submit(
                partition.sums, part, template, metric, self.validation, step, index, pure=False
            )
            for index, part in enumerate(self.parts)
        ]
        loss, grads, metric_sum, m = 0.0, None, 0.0, 0
        for part_loss, part_grads, part_metric, rows in self.client.gather(futures):
            loss += part_loss
            metric_sum += part_metric
            m += rows
            if with_gradient and part_grads is not None:
                grads = (
                    part_grads if grads is None else [a + b for a, b in zip(grads, part_grads, strict=True)]
                )
        return loss, grads, metric_sum, m

    def digest(self) -> list[bytes]:
        return self.client.gather([self.client.submit(partition.digest, part) for part in self.parts])


@dataclass(frozen=True)
class PartitionBatch:
    """One mini-batch step of a dask run: rows [step·size, (step+1)·size) of each partition's order of
    ``epoch``; its length is the step's m, the rows of all partitions together."""

    epoch: int
    step: int
    size: int
    seed: int
    sizes: tuple[int, ...]

    def __len__(self) -> int:
        start = self.step * self.size
        return sum(max(0, min(self.size, rows - start)) for rows in self.sizes)


@dataclass(frozen=True)
class Grid:
    """How a run's data is cut and held: partitions of ``partition_rows`` rows on ``workers`` workers."""

    partitions: int
    partition_rows: int
    workers: int


def prepare_remote(client, data, requested_output: str, seed: int, partition_rows: int):
    """``nncli.io.datasets.prepare`` for rows the workers read and keep: (PreparedData whose training and
    validation splits are ``RemoteRows``, the Grid). The validation split is drawn within each partition
    (seeded by (seed, partition)); a validation file and the test file are read here, as locally."""
    source = CsvSource(data.path, data.delimiter, data.encoding)
    columns, targets, features, task = training_columns(data, source)
    grid = row_grid(source.path, partition_rows, source.encoding)
    if grid is None:
        raise DataError(
            f"'{source.name}' cannot be cut into partitions at line breaks (it holds a quote character, "
            f"which may enclose a line break, or its encoding is not one byte per line break); train it with "
            f"training.backend: local"
        )
    first_rows = np.cumsum([0] + [r.line_breaks for r in grid[:-1]]).tolist()
    fraction = data.validation_split
    raw = [
        client.submit(
            partition.load,
            source,
            line_range,
            first,
            columns,
            features,
            targets,
            task,
            fraction,
            seed,
            index,
            pure=False,
        )
        for index, (line_range, first) in enumerate(zip(grid, first_rows, strict=True))
    ]
    summaries = client.gather([client.submit(partition.summarize, part, task, pure=False) for part in raw])
    m_train = sum(s.rows for s in summaries)
    m_val = sum(s.validation_rows for s in summaries)
    if m_train + m_val < MIN_ROWS:
        raise DataError(
            f"'{source.name}' has {m_train + m_val} data row(s); training needs at least {MIN_ROWS}"
        )
    if fraction > 0 and m_val == 0:
        raise DataError(f"data.validation_split {fraction} of {m_train} rows leaves no validation rows")
    classes = None
    if task == "classification":
        seen = {label for s in summaries for label in s.labels}
        classes = sorted_classes(seen)
        if len(classes) < 2:
            raise DataError(
                f"'{source.name}': target column {targets[0]!r} holds one class only; classification needs "
                f"at least two"
            )
    output, units = resolve_output(
        requested_output, task, None if classes is None else len(classes), len(targets)
    )
    _, mean, std = partition.combined(summaries)
    n = len(features)
    K = len(targets) if task == "regression" else 1
    target_mean, target_std = np.zeros(K), np.ones(K)
    if task == "regression":
        target_mean, target_std = mean[n:], std[n:]
    feature_mean, feature_std = mean[:n], std[:n]
    if not data.standardize:
        feature_mean, feature_std = np.zeros(n), np.ones(n)
        target_mean, target_std = np.zeros(K), np.ones(K)
    pre = Preprocessing(
        tuple(features), targets, task, classes, units, feature_mean, feature_std, target_mean, target_std
    )
    order = None if classes is None else {label: i for i, label in enumerate(classes)}
    parts = [client.submit(partition.prepared, part, pre, order, pure=False) for part in raw]
    del raw  # the prepared partitions replace the parsed ones on the workers
    sizes = tuple(s.rows for s in summaries)
    train = RemoteRows(client, parts, (m_train, n), sizes=sizes, seed=seed)
    outputs = (m_train, units)
    validation = None
    if m_val:
        validation = (RemoteRows(client, parts, (m_val, n), validation=True), TargetShape((m_val, units)))
    validation_file, test = held_out_files(pre, data)
    prepared = PreparedData(
        pre,
        output,
        (train, TargetShape(outputs)),
        validation if validation_file is None else validation_file,
        test,
        (),
    )
    workers = len(client.scheduler_info()["workers"])
    return prepared, Grid(len(grid), partition_rows, workers)

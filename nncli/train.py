"""The epoch loop: batches, backpropagation, the momentum step, the history. It never prints.

One epoch is one pass over the training set in the batch mode's steps. After each step the batch's J
(with its own m = |B|, as D is) is checked: if it is nan or inf, training stops and the best weights so
far are put back. The figures recorded per epoch are

- ``train_cost``: the mean of the steps' J_i over the epoch (what scikit-learn reports as ``loss_curve_``;
  in ``batch`` mode, exactly J(Θ) before the epoch's step);
- ``val_cost``: J(Θ) on the validation set after the epoch;
- ``train_metric`` / ``val_metric``: accuracy or RMSE in the same way, when a metric is given.

The best weights (kept by early stopping, restored after divergence) are chosen by the monitored J:
with a validation set, the weights after the epoch with the lowest validation J; without one, the
weights at the start of the epoch with the lowest mean training J (in ``batch`` mode exactly the
weights that J was measured at).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from nncli.errors import NncliError, lookup
from nncli.metrics import Metric
from nncli.network import Network
from nncli.optim import BATCH_MODES, epoch_batches
from nncli.step import FastStep

COMPLETED, EARLY_STOPPING, DIVERGED = "completed", "early_stopping", "diverged"


@dataclass(frozen=True)
class EpochRecord:
    epoch: int
    iteration: int
    train_cost: float
    val_cost: float | None
    train_metric: float | None
    val_metric: float | None
    seconds: float

    @property
    def monitored_cost(self) -> float:
        """The cost that early stopping and the best-weights choice watch: validation J if there is one."""
        return self.train_cost if self.val_cost is None else self.val_cost


class History(list):
    """The EpochRecords of a run, with how it ended: ``stop_reason`` is completed, early_stopping or
    diverged; ``best_epoch`` is the epoch whose weights the network holds at the end when those are the
    best so far rather than the last."""

    def __init__(self, records=(), metric_name: str | None = None) -> None:
        super().__init__(records)
        self.metric_name = metric_name
        self.stop_reason = COMPLETED
        self.best_epoch: int | None = None


def train(
    net: Network,
    X: np.ndarray,
    Y: np.ndarray,
    alpha: float = 0.1,
    lambda_: float = 0.0,
    beta: float = 0.9,
    batch: str = "mini-batch",
    batch_size: int = 32,
    epochs: int = 1,
    seed: int | None = 0,
    validation: tuple[np.ndarray, np.ndarray] | None = None,
    metric: Metric | None = None,
    patience: int | None = None,
    on_epoch: Callable[[EpochRecord], None] | None = None,
) -> History:
    """Train ``net`` in place by gradient descent with momentum and return the per-epoch History.

    Θ := Θ − α V with V := β V + (1 − β) D, D the gradient of J_i on each step's batch. Batches follow
    ``batch`` (a key of ``BATCH_MODES``), shuffled with ``default_rng(seed)``. With ``patience``,
    training stops once the monitored J has not improved for that many epochs, and the best weights
    are kept. ``on_epoch`` is called with each EpochRecord as it is made.
    """
    mode = lookup(BATCH_MODES, batch, "batch mode")
    _check_hyperparameters(alpha, lambda_, beta, batch_size, epochs, patience)
    X, Y = net.check_inputs(X, Y)
    if validation is not None:
        validation = net.check_inputs(*validation)
    rng = np.random.default_rng(seed)
    step = FastStep(net, alpha, lambda_, beta, metric)
    history = History(metric_name=metric.name if metric else None)
    best_cost, best_params, stale = np.inf, net.copy_params(), 0
    iteration, started = 0, time.perf_counter()
    try:
        with np.errstate(all="ignore"):
            for epoch in range(1, epochs + 1):
                start_params = net.copy_params() if validation is None else None
                cost_sum, metric_sum, steps = 0.0, 0.0, 0
                for rows in epoch_batches(len(X), mode, batch_size, rng):
                    J, batch_metric = step(X, Y, rows)
                    if not np.isfinite(J):
                        history.stop_reason = DIVERGED
                        break
                    cost_sum += J
                    metric_sum += batch_metric
                    steps += 1
                    iteration += 1
                if history.stop_reason == DIVERGED:
                    break
                record = EpochRecord(
                    epoch=epoch,
                    iteration=iteration,
                    train_cost=cost_sum / steps,
                    val_cost=_cost(net, validation, lambda_),
                    train_metric=metric.finish(metric_sum, len(X), Y.shape[1]) if metric else None,
                    val_metric=_metric(net, validation, metric),
                    seconds=time.perf_counter() - started,
                )
                if not np.isfinite(record.monitored_cost):
                    history.stop_reason = DIVERGED
                    break
                history.append(record)
                if on_epoch is not None:
                    on_epoch(record)
                if record.monitored_cost < best_cost:
                    best_cost, stale = record.monitored_cost, 0
                    best_params = net.copy_params() if start_params is None else start_params
                    history.best_epoch = epoch
                else:
                    stale += 1
                if patience is not None and stale >= patience:
                    history.stop_reason = EARLY_STOPPING
                    break
    finally:
        step.close()
    if history.stop_reason == DIVERGED or patience is not None:
        net.set_params(best_params)
    else:
        history.best_epoch = None
    return history


def _cost(net: Network, data, lambda_: float) -> float | None:
    if data is None:
        return None
    X, Y = data
    _, loss = net.output.activate_and_loss(net.output_z(X), Y)
    return loss / len(X) + net.penalty(lambda_, len(X))


def _metric(net: Network, data, metric: Metric | None) -> float | None:
    if data is None or metric is None:
        return None
    X, Y = data
    return metric(net.output.activate(net.output_z(X)), Y)


def _check_hyperparameters(alpha, lambda_, beta, batch_size, epochs, patience) -> None:
    def number(value) -> bool:
        return isinstance(value, int | float) and not isinstance(value, bool) and np.isfinite(value)

    def whole(value) -> bool:
        return isinstance(value, int) and not isinstance(value, bool)

    checks = [
        (number(alpha) and alpha > 0, "alpha (α, the learning rate) should be a number > 0", alpha),
        (
            number(lambda_) and lambda_ >= 0,
            "lambda_ (λ, L2 strength) should be a number ≥ 0",
            lambda_,
        ),
        (number(beta) and 0 <= beta < 1, "beta (β, momentum) should be a number in [0, 1)", beta),
        (
            whole(batch_size) and batch_size >= 1,
            "batch_size should be a whole number ≥ 1",
            batch_size,
        ),
        (whole(epochs) and epochs >= 0, "epochs should be a whole number ≥ 0", epochs),
        (
            patience is None or (whole(patience) and patience >= 1),
            "patience should be ≥ 1",
            patience,
        ),
    ]
    for ok, message, value in checks:
        if not ok:
            raise NncliError(f"{message}, got {value!r}")

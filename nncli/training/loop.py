"""The epoch loop: batches, the steps (``nncli.engines.registry``), the history. It never prints.

One epoch is one pass over the training set in the batch mode's steps. What may stop a run — the
divergence guard (a step's J, with its own m = |B| as D has, that is nan or inf), early stopping, a
signal — and what hears of each epoch (progress, checkpoints) are callbacks (``nncli.training.callbacks``);
the loop keeps the monitored J's best and the epochs since it improved. The figures recorded per epoch are

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

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field, fields

import numpy as np

from nncli.engines import registry as engines
from nncli.engines.registry import Stepper
from nncli.errors import NncliError, lookup, shown
from nncli.model.metrics import Metric
from nncli.model.network import Network
from nncli.optim.batches import BATCH_MODES, epoch_batches
from nncli.optim.optimizers import OPTIMIZERS, check_hyperparameters, make_optimizer
from nncli.optim.schedules import checked_schedule
from nncli.training.callbacks import (
    COMPLETED,
    Callback,
    DivergenceGuard,
    EachEpoch,
    EarlyStopping,
    StopRequest,
    first_reason,
    overriding,
)


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


def astuple_record(record: EpochRecord) -> tuple:
    return tuple(getattr(record, f.name) for f in fields(EpochRecord))


def record_from_row(row: np.ndarray) -> EpochRecord:
    """An EpochRecord from its checkpoint row (nan stands for a figure that was not recorded)."""
    values = [None if np.isnan(v) else float(v) for v in row]
    values[0], values[1] = int(values[0]), int(values[1])
    return EpochRecord(*values)


class History(list):
    """The EpochRecords of a run, with how it ended: ``stop_reason`` is completed, early_stopping,
    diverged or interrupted; ``best_epoch`` is the epoch whose weights the network holds at the end when
    those are the best so far rather than the last."""

    def __init__(self, records=(), metric_name: str | None = None) -> None:
        super().__init__(records)
        self.metric_name = metric_name
        self.stop_reason = COMPLETED
        self.best_epoch: int | None = None
        self.engine: str | None = None  # the step's engine, numpy or compiled (nncli.engines)


@dataclass
class TrainingState:
    """Everything a run needs to continue exactly where it stopped, apart from θ itself.

    ``epoch`` epochs are complete and ``step`` steps of the next one are done; ``epoch_rng_state`` is the
    shuffling generator's state when that epoch began (its order is drawn again on resume).
    """

    epoch: int = 0
    step: int = 0
    iteration: int = 0
    epoch_rng_state: dict | None = None
    cost_sum: float = 0.0
    metric_sum: float = 0.0
    seconds: float = 0.0
    best_cost: float = float("inf")
    stale: int = 0
    best_epoch: int | None = None
    engine: str | None = None  # numpy or compiled, chosen when the run starts and kept on resume
    records: list[EpochRecord] = field(default_factory=list)


class Trainer:
    """Gradient descent on ``net``, epoch by epoch, able to stop and continue bit for bit.

    Each step's D is the gradient of J_i on the step's batch; ``optimizer`` (a key of ``OPTIMIZERS``:
    momentum, nesterov or adam, with β, β₂ and ε) moves Θ by it, with the learning rate α_e that
    ``schedule`` gives each epoch (``nncli.optim.schedules``; None is constant) and D clipped to the norm
    ``clip_norm`` when it is given. Batches follow ``batch`` (a key of ``BATCH_MODES``), shuffled with
    ``default_rng(seed)``. With ``patience``, training stops once the monitored J has not improved for that
    many epochs, and the best weights are kept.
    """

    def __init__(
        self,
        net: Network,
        X: np.ndarray,
        Y: np.ndarray,
        alpha: float = 0.1,
        lambda_: float = 0.0,
        beta: float = 0.9,
        batch: str = "mini-batch",
        batch_size: int = 32,
        seed: int | None = 0,
        validation: tuple[np.ndarray, np.ndarray] | None = None,
        metric: Metric | None = None,
        patience: int | None = None,
        engine: str = "auto",
        optimizer: str = "momentum",
        beta2: float = 0.999,
        epsilon: float = 1e-8,
        schedule: dict | None = None,
        clip_norm: float | None = None,
        path: str | None = None,
        cores: int | None = None,
    ) -> None:
        self.mode = lookup(BATCH_MODES, batch, "batch mode")
        lookup(engines.ENGINES, engine, "engine")
        lookup(OPTIMIZERS, optimizer, "optimizer")
        self.engine = engine
        _check_hyperparameters(alpha, lambda_, beta, batch_size, 0, patience)
        _check_optimizer(beta2, epsilon, clip_norm)
        self.net = net
        # rows a Dask cluster's workers hold (nncli.distributed) come as objects with a length and a shape
        self.remote = held_elsewhere(X)
        self.X, self.Y = (X, Y) if self.remote else net.check_inputs(X, Y)
        held = validation is not None and held_elsewhere(validation[0])
        self.validation = validation if validation is None or held else net.check_inputs(*validation)
        self.alpha, self.lambda_, self.beta = alpha, lambda_, beta
        self.batch_size, self.metric, self.patience = batch_size, metric, patience
        self.rng = np.random.default_rng(seed)
        self.state = TrainingState(epoch_rng_state=self.rng.bit_generator.state)
        self.optimizer = make_optimizer(optimizer, net.theta.size, net.dtype, beta, beta2, epsilon)
        try:
            self.schedule = checked_schedule(schedule, alpha, len(self.X))
        except ValueError as error:
            raise NncliError(str(error)) from None
        self.clip_norm = clip_norm
        # a step path of nncli.engines.registry to force, and the cores to use (tests, benchmarks); None:
        # chosen, and the cores this process may use
        self.path, self.cores = path, cores
        # what decides, around every run, to stop early and to end on the best weights
        self.callbacks: list[Callback] = [DivergenceGuard()]
        if patience is not None:
            self.callbacks.append(EarlyStopping(patience))
        self.best_theta = net.copy_params()
        self.epoch_start_theta = net.copy_params()
        self.stop_reason = COMPLETED
        self.theta_at_stop: np.ndarray | None = None

    # ------------------------------------------------------------------ running

    def run(
        self,
        epochs: int,
        on_epoch: Callable[[EpochRecord], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
        on_note: Callable[[str], None] | None = None,
    ) -> History:
        """Train until ``epochs`` epochs are complete (counting those already done), early stopping,
        divergence, or ``should_stop()`` answering True between two steps; return the History.
        ``on_note`` hears sentences for the user (that kernels are being compiled)."""
        _check_hyperparameters(self.alpha, self.lambda_, self.beta, self.batch_size, epochs, self.patience)
        net, state = self.net, self.state
        if state.engine is None and self.remote:
            state.engine = "dask"
        if state.engine is None:
            steps = -(-len(self.X) // max(1, self.mode.size(len(self.X), self.batch_size)))
            state.engine = engines.resolve(
                self.engine, net.multiply_adds, len(self.X), steps, epochs, net.image_layers
            )
        self.schedule.epochs = epochs
        step = Stepper(
            net,
            self.optimizer,
            self.lambda_,
            self.metric,
            state.engine,
            self.clip_norm,
            self.cores,
            self.path,
            on_note,
        )
        self.stepper = step  # for a look afterwards at the paths its steps took (``Stepper.paths``)
        self.stop_reason, self.theta_at_stop = COMPLETED, None
        callbacks = [
            *self.callbacks,
            *([EachEpoch(on_epoch)] if on_epoch is not None else []),
            *([StopRequest(should_stop)] if should_stop is not None else []),
        ]
        started = time.perf_counter() - state.seconds
        try:
            with np.errstate(all="ignore"):
                self.stop_reason = first_reason(c.on_start(state) for c in callbacks) or COMPLETED
                while state.epoch < epochs and self.stop_reason == COMPLETED:
                    self.stop_reason = self._run_epoch(step, callbacks, started) or COMPLETED
        finally:
            step.close()
            state.seconds = time.perf_counter() - started
        if self._keeps_best():
            self.theta_at_stop = net.copy_params()
            net.set_params(self.best_theta)
        return self.history()

    def _keeps_best(self) -> bool:
        return any(c.keeps_best(self.stop_reason) for c in self.callbacks)

    def _run_epoch(self, step: Stepper, callbacks: list[Callback], started: float) -> str | None:
        """One epoch (or the rest of one); returns the reason to stop a callback gave, or None."""
        net, state, X, Y = self.net, self.state, self.X, self.Y
        self.rng.bit_generator.state = state.epoch_rng_state  # the epoch's order, drawn again on resume
        if state.step == 0 and self.validation is None:
            self.epoch_start_theta[...] = net.theta
        if self.remote:  # each partition's batch of each step, drawn on its worker
            batches = X.epoch_batches(self.mode, self.batch_size, state.epoch)
        else:
            batches = epoch_batches(len(X), self.mode, self.batch_size, self.rng)
        take_step = step.take
        alpha = self.schedule.alpha(state.epoch)
        before, after = overriding(callbacks, "before_step"), overriding(callbacks, "after_step")
        for done, rows in enumerate(batches):
            if done < state.step:
                continue
            for check in before:
                reason = check()
                if reason is not None:
                    return reason
            J, batch_metric = take_step(X, Y, rows, alpha)
            for check in after:
                reason = check(J)
                if reason is not None:
                    return reason
            state.cost_sum += J
            state.metric_sum += batch_metric
            state.step += 1
            state.iteration += 1
        record = self._record(started)
        reason = first_reason(c.epoch_ending(record) for c in callbacks)
        if reason is not None:
            return reason
        state.epoch += 1
        state.step, state.cost_sum, state.metric_sum = 0, 0.0, 0.0
        state.epoch_rng_state = self.rng.bit_generator.state
        state.records.append(record)
        self.schedule.observe(record.monitored_cost)
        if record.monitored_cost < state.best_cost:
            state.best_cost, state.stale, state.best_epoch = record.monitored_cost, 0, record.epoch
            self.best_theta[...] = net.theta if self.validation is not None else self.epoch_start_theta
        else:
            state.stale += 1
        return first_reason(c.epoch_ended(record, state) for c in callbacks)

    def _record(self, started: float) -> EpochRecord:
        """The figures of the epoch whose steps are done (``EpochRecord``)."""
        state, X, Y, metric = self.state, self.X, self.Y, self.metric
        val_cost = val_metric = None
        if self.validation is not None:
            val_cost, val_metric = evaluate(self.net, *self.validation, self.lambda_, metric)
        return EpochRecord(
            epoch=state.epoch + 1,
            iteration=state.iteration,
            train_cost=state.cost_sum / state.step,
            val_cost=val_cost,
            train_metric=metric.finish(state.metric_sum, len(X), Y.shape[1]) if metric else None,
            val_metric=val_metric,
            seconds=time.perf_counter() - started,
        )

    def history(self) -> History:
        history = History(self.state.records, metric_name=self.metric.name if self.metric else None)
        history.stop_reason = self.stop_reason
        history.best_epoch = self.state.best_epoch if self._keeps_best() else None
        history.engine = self.state.engine
        return history

    # ------------------------------------------------------------------ checkpoints

    def checkpoint(self) -> tuple[dict[str, np.ndarray], dict]:
        """(arrays, JSON-able record) from which ``restore`` continues this run exactly."""
        theta = self.theta_at_stop if self.theta_at_stop is not None else self.net.theta
        arrays = {
            "theta": theta.copy(),
            "best_theta": self.best_theta.copy(),
            "epoch_start_theta": self.epoch_start_theta.copy(),
            **{f"optimizer_{name}": array.copy() for name, array in self.optimizer.state.items()},
        }
        arrays["history"] = np.array(
            [[np.nan if v is None else v for v in astuple_record(r)] for r in self.state.records],
            dtype=np.float64,
        ).reshape(-1, len(fields(EpochRecord)))
        record = {f.name: getattr(self.state, f.name) for f in fields(TrainingState) if f.name != "records"}
        if not math.isfinite(record["best_cost"]):
            record["best_cost"] = None  # JSON has no infinity
        record["optimizer"] = {"name": self.optimizer.name, **self.optimizer.counters()}
        record["schedule"] = {"type": self.schedule.name, **self.schedule.state()}
        return arrays, record

    def restore(self, arrays: dict[str, np.ndarray], record: dict) -> None:
        """Continue from a ``checkpoint``: θ, the momentum, the generator, the history and the best so far.

        The record is checked as strictly as a config: a wrong type or value raises a ValueError naming
        the field, and nothing of this trainer changes."""
        if self.remote:
            steps_per_epoch = self.X.steps_per_epoch(self.mode, self.batch_size)
        else:
            steps_per_epoch = -(-len(self.X) // max(1, self.mode.size(len(self.X), self.batch_size)))
        state = _checked_state(record, steps_per_epoch)
        for name, target in self._state_arrays():
            array = arrays[name]
            if array.shape != target.shape:
                raise ValueError(
                    f"the checkpoint's {name} has {array.size} values; the network has {target.size}"
                )
            if not np.isfinite(array).all():
                raise ValueError(f"the checkpoint's {name} holds nan or inf")
        history = arrays["history"]
        if history.ndim != 2 or history.shape != (state.epoch, len(fields(EpochRecord))):
            raise ValueError(
                f"its history has shape {history.shape}, not one row for each of {state.epoch} epochs"
            )
        state.records = [record_from_row(row) for row in history]
        optimizer, schedule = record.get("optimizer"), record.get("schedule")
        if not isinstance(optimizer, dict) or optimizer.get("name") != self.optimizer.name:
            raise ValueError(
                f"its optimizer record should name {self.optimizer.name!r}, got {shown(optimizer)}"
            )
        if not isinstance(schedule, dict) or schedule.get("type") != self.schedule.name:
            raise ValueError(f"its schedule record should name {self.schedule.name!r}, got {shown(schedule)}")
        self.optimizer.restore_counters(optimizer)
        self.schedule.restore(schedule)
        for name, target in self._state_arrays():
            target[...] = arrays[name]
        self.state = state

    def _state_arrays(self):
        return (
            ("theta", self.net.theta),
            ("best_theta", self.best_theta),
            ("epoch_start_theta", self.epoch_start_theta),
            *((f"optimizer_{name}", array) for name, array in self.optimizer.state.items()),
        )


def _checked_state(record: dict, steps_per_epoch: int) -> TrainingState:
    """A TrainingState from a checkpoint's trainer record, every field's type and range checked."""

    def whole(value) -> bool:
        return isinstance(value, int) and not isinstance(value, bool) and value >= 0

    def number(value) -> bool:
        return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)

    checks = {
        "epoch": (whole, "a whole number ≥ 0"),
        "step": (lambda v: whole(v) and v < steps_per_epoch, f"a whole number below {steps_per_epoch}"),
        "iteration": (whole, "a whole number ≥ 0"),
        "epoch_rng_state": (_is_pcg64_state, "a PCG64 generator state"),
        "cost_sum": (number, "a finite number"),
        "metric_sum": (number, "a finite number"),
        "seconds": (lambda v: number(v) and v >= 0, "a finite number ≥ 0"),
        "best_cost": (lambda v: v is None or number(v), "null or a finite number"),
        "stale": (whole, "a whole number ≥ 0"),
        "best_epoch": (lambda v: v is None or (whole(v) and v >= 1), "null or a whole number ≥ 1"),
        "engine": (
            lambda v: v is None or (isinstance(v, str) and v in engines.RUN_ENGINES),
            "null, numpy, compiled or dask",
        ),
    }
    if not isinstance(record, dict):
        raise ValueError("its trainer record is not a mapping")
    for name, (check, expected) in checks.items():
        if name not in record or not check(record[name]):
            got = shown(record.get(name))
            raise ValueError(f"its trainer record's {name!r} should be {expected}, got {got}")
    state = TrainingState(**{name: record[name] for name in checks})
    if state.best_cost is None:
        state.best_cost = float("inf")
    return state


def _is_pcg64_state(value) -> bool:
    try:
        np.random.PCG64().state = value  # the generator's own check of every field
    except (TypeError, ValueError, KeyError, OverflowError):
        return False
    return isinstance(value, dict) and value.get("bit_generator") == "PCG64"


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
    engine: str = "auto",
    optimizer: str = "momentum",
    beta2: float = 0.999,
    epsilon: float = 1e-8,
    schedule: dict | None = None,
    clip_norm: float | None = None,
) -> History:
    """Train ``net`` in place by gradient descent with momentum and return the per-epoch History.

    Θ := Θ − α V with V := β V + (1 − β) D, D the gradient of J_i on each step's batch. Batches follow
    ``batch`` (a key of ``BATCH_MODES``), shuffled with ``default_rng(seed)``. With ``patience``,
    training stops once the monitored J has not improved for that many epochs, and the best weights
    are kept. ``on_epoch`` is called with each EpochRecord as it is made. ``engine`` is ``auto``,
    ``numpy`` or ``compiled`` (``nncli.engines``); the History's ``engine`` says which one trained.
    """
    trainer = Trainer(
        net, X, Y, alpha, lambda_, beta, batch, batch_size, seed, validation, metric, patience, engine,
        optimizer, beta2, epsilon, schedule, clip_norm,
    )  # fmt: skip
    return trainer.run(epochs, on_epoch)


# Rows per block of the evaluation: small enough that a block's activations stay in the processor's cache.
EVALUATION_ROWS = 4096


def evaluate(
    net: Network, X: np.ndarray, Y: np.ndarray, lambda_: float, metric: Metric | None = None
) -> tuple[float, float | None]:
    """(J(Θ) on all of X and Y with their m, the metric or None), computed in blocks of rows so that
    memory does not grow with m (or, for rows a Dask cluster holds, by its workers): J = (1/m) Σ_i
    loss^(i) + λ/(2m) Σ Θ²."""
    if held_elsewhere(X):
        loss, _, metric_sum, m = X.sums(net, metric, with_gradient=False)
        figure = metric.finish(metric_sum, m, Y.shape[1]) if metric is not None else None
        return loss / m + net.penalty(lambda_, m), figure
    loss = metric_sum = 0.0
    for start in range(0, len(X), EVALUATION_ROWS):
        rows = slice(start, start + EVALUATION_ROWS)
        a_out, block_loss = net.output.activate_and_loss(net.output_z(X[rows]), Y[rows])
        loss += block_loss
        if metric is not None:
            metric_sum += metric.batch_sum(a_out, Y[rows])
    J = loss / len(X) + net.penalty(lambda_, len(X))
    return J, (metric.finish(metric_sum, len(X), Y.shape[1]) if metric is not None else None)


def _check_optimizer(beta2, epsilon, clip_norm) -> None:
    def number(value) -> bool:
        return isinstance(value, int | float) and not isinstance(value, bool) and np.isfinite(value)

    checks = [
        *check_hyperparameters(beta2, epsilon),
        (
            clip_norm is None or (number(clip_norm) and clip_norm > 0),
            "clip_norm should be None or > 0",
            clip_norm,
        ),
    ]
    for ok, message, value in checks:
        if not ok:
            raise NncliError(f"{message}, got {shown(value)}")


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


def held_elsewhere(X) -> bool:
    """Whether X is rows held by the workers of a Dask cluster rather than an array here."""
    return hasattr(X, "sums") and not isinstance(X, np.ndarray)

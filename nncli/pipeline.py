"""What the commands do, as library functions: train from a config, load a model and predict with it,
check a config's gradients. ``cli.py`` parses arguments, calls one of these and writes what they return.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nncli import __version__
from nncli.config import Config
from nncli.data import (
    CsvSource,
    PreparedData,
    Preprocessing,
    chunk_rows,
    class_labels,
    numeric_matrix,
    prepare,
    read_chunks,
    read_header,
    write_csv,
)
from nncli.errors import ModelFileError, NncliError
from nncli.files import atomic_write_text
from nncli.gradcheck import GradcheckReport, gradcheck
from nncli.metrics import ACCURACY, Metric, rmse
from nncli.model_file import load_checkpoint, load_model, save_checkpoint, save_model
from nncli.network import Network
from nncli.train import DIVERGED, INTERRUPTED, EpochRecord, History, Trainer
from nncli.train import evaluate as evaluate_split

MODEL_FILE, HISTORY_FILE, METRICS_FILE = "model.npz", "history.csv", "metrics.json"
CHECKPOINT_FILE = "checkpoint.npz"


@dataclass(frozen=True)
class Model:
    """A trained network with the preprocessing that feeds it and the metadata stored beside it."""

    network: Network
    preprocessing: Preprocessing
    meta: dict


@dataclass(frozen=True)
class TrainingRun:
    history: History
    metrics: dict
    directory: Path


def metric_for(pre: Preprocessing) -> Metric:
    """Accuracy for classification; RMSE in the target's own units for regression."""
    return ACCURACY if pre.task == "classification" else rmse(pre.target_std)


def build_network(config: Config, prepared: PreparedData, dtype: str | None = None) -> Network:
    n_in = len(prepared.preprocessing.features)
    return Network(
        [n_in, *config.model.hidden, prepared.preprocessing.output_units],
        activation=config.model.activation,
        output=prepared.output,
        initializer=config.model.initializer,
        seed=config.training.seed,
        dtype=dtype or config.model.dtype,
        init_scale=config.model.init_scale,
        relu_bias=config.model.relu_bias,
    )


def check_output_dir(directory: Path, overwrite: bool, resume: bool) -> None:
    """Refuse to train over an earlier run unless told to (and refuse --resume with nothing to resume)."""
    if directory.exists() and not directory.is_dir():
        raise NncliError(f"output.dir '{directory}' is a file, not a folder; choose another output.dir")
    if overwrite and resume:
        raise NncliError("--overwrite and --resume contradict each other; pass one of them")
    if resume and not (directory / CHECKPOINT_FILE).exists():
        raise NncliError(f"there is no checkpoint in '{directory}' to resume from; train without --resume")
    if not (overwrite or resume) and (
        (directory / MODEL_FILE).exists() or (directory / CHECKPOINT_FILE).exists()
    ):
        raise NncliError(
            f"'{directory}' already holds a trained model; pass --resume to continue it "
            f"or --overwrite to replace it"
        )


# The hash of the arrays in a run's fingerprint. hashlib's sha256 runs on the processor's SHA instructions
# where it has them (1.4 GB/s here, against 0.5 GB/s for blake2b: 0.25 s instead of 0.6 s on W2's arrays).
ARRAYS_HASH = "sha256"
# Checkpoints written before the fingerprint named its hash used this one.
EARLIER_ARRAYS_HASH = "blake2b-16"


def arrays_digest(prepared: PreparedData, hash_name: str = ARRAYS_HASH) -> str:
    """A hash of the training and validation arrays, by ``ARRAYS_HASH`` or ``EARLIER_ARRAYS_HASH``."""
    digest = hashlib.blake2b(digest_size=16) if hash_name == EARLIER_ARRAYS_HASH else hashlib.new(hash_name)
    for array in (*prepared.train, *(prepared.validation or ())):
        digest.update(np.ascontiguousarray(array).data)
    return digest.hexdigest()


def fingerprint(config: Config, prepared: PreparedData) -> dict:
    """What decides the weights a run ends with, apart from the number of epochs: the config's data,
    model and training keys, and a hash of the training and validation arrays."""
    settings = config.to_dict()
    settings["training"].pop("epochs")
    settings["training"].pop("engine")  # the engine a run started with is in its checkpoint
    settings["data"].pop("test")
    return {
        "data": settings["data"],
        "model": settings["model"],
        "training": settings["training"],
        "arrays": arrays_digest(prepared),
        "arrays_hash": ARRAYS_HASH,
    }


def _in_hash_of(before: dict, now: dict, prepared: PreparedData) -> dict:
    """``now``, with its arrays hashed as ``before`` hashed them (a checkpoint from before the fingerprint
    named its hash has no ``arrays_hash``)."""
    hash_name = before.get("arrays_hash", EARLIER_ARRAYS_HASH)
    if hash_name == now["arrays_hash"]:
        return now
    if hash_name != EARLIER_ARRAYS_HASH:
        raise TypeError(hash_name)  # not a hash nncli writes: the checkpoint is damaged
    return {**now, "arrays": arrays_digest(prepared, hash_name), "arrays_hash": hash_name}


def _changes(before: dict, now: dict) -> list[str]:
    changed = []
    for section in ("data", "model", "training"):
        for key in sorted(set(before[section]) | set(now[section])):
            if before[section].get(key) != now[section].get(key):
                changed.append(
                    f"{section}.{key} changed from {before[section].get(key)!r} to {now[section].get(key)!r}"
                )
    if not changed and before["arrays"] != now["arrays"]:
        changed.append(f"the contents of the data file '{now['data']['path']}' changed")
    return changed


def train_from_config(
    config: Config,
    overwrite: bool = False,
    resume: bool = False,
    on_epoch: Callable[[EpochRecord], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> TrainingRun:
    """Load the data, train (or continue a checkpointed run), and write model.npz, history.csv,
    metrics.json and checkpoint.npz into output.dir.

    Everything the user gave is checked before the output folder is touched. The checkpoint (with the
    model and history) is rewritten every ``output.checkpoint_every`` epochs, each file atomically.
    """
    directory = Path(config.output.dir)
    check_output_dir(directory, overwrite, resume)
    started = time.perf_counter()
    prepared = prepare(config.data, config.model.output, config.training.seed)
    load_seconds = time.perf_counter() - started
    net = build_network(config, prepared)
    metric = metric_for(prepared.preprocessing)
    t = config.training
    trainer = Trainer(
        net,
        *prepared.train,
        alpha=t.alpha,
        lambda_=t.lambda_,
        beta=t.beta,
        batch=t.batch,
        batch_size=t.batch_size,
        seed=t.seed,
        validation=prepared.validation,
        metric=metric,
        patience=t.early_stopping.patience if t.early_stopping else None,
        engine=t.engine,
    )
    run_fingerprint = fingerprint(config, prepared)
    if resume:
        _resume(trainer, directory, run_fingerprint, t.epochs, prepared)
    elif overwrite:
        (directory / CHECKPOINT_FILE).unlink(missing_ok=True)
    run = _RunFiles(config, prepared, net, trainer, run_fingerprint, directory, load_seconds, metric)
    every = config.output.checkpoint_every

    def epoch_done(record: EpochRecord) -> None:
        if on_epoch is not None:
            on_epoch(record)
        if every is not None and record.epoch % every == 0:
            run.write(trainer.history(), checkpoint=True, metrics=False)

    history = trainer.run(t.epochs, epoch_done, should_stop)
    metrics = run.write(history, checkpoint=history.stop_reason != DIVERGED, metrics=True)
    return TrainingRun(history, metrics, directory)


def _resume(
    trainer: Trainer, directory: Path, run_fingerprint: dict, epochs: int, prepared: PreparedData
) -> None:
    arrays, meta = load_checkpoint(directory / CHECKPOINT_FILE)
    try:
        before = meta["fingerprint"]
        changed = _changes(before, _in_hash_of(before, run_fingerprint, prepared))
    except (KeyError, TypeError, AttributeError):
        raise ModelFileError(
            f"'{directory / CHECKPOINT_FILE}' is damaged: its fingerprint is unreadable"
        ) from None
    if changed:
        raise NncliError(
            f"cannot resume the run in '{directory}': {'; '.join(changed)}; "
            f"train into another output.dir, or pass --overwrite to start again"
        )
    try:
        trainer.restore(arrays, meta["trainer"])
    except (KeyError, TypeError, ValueError) as error:
        raise ModelFileError(f"'{directory / CHECKPOINT_FILE}' is damaged: {error}") from None
    started_with = trainer.state.engine
    if trainer.engine not in ("auto", started_with):
        raise NncliError(
            f"cannot resume the run in '{directory}' with training.engine {trainer.engine!r}: it was "
            f"trained with {started_with!r}, and keeps its engine so that it resumes bit for bit; "
            f"set training.engine to auto or {started_with!r}, or pass --overwrite to start again"
        )
    done = trainer.state.epoch
    if done >= epochs and _ended(directory, done):
        raise NncliError(
            f"the run in '{directory}' already has {done} epochs; raise training.epochs "
            f"(or pass --epochs) above {done} to train longer"
        )


def _ended(directory: Path, epochs: int) -> bool:
    """Whether the run in ``directory`` wrote its end, ``epochs`` epochs in, and was not interrupted: a
    run killed between its last checkpoint and its metrics has not, and resuming it writes them."""
    try:
        summary = json.loads((directory / METRICS_FILE).read_text())
        return summary["epochs"] == epochs and summary["stop_reason"] != INTERRUPTED
    except (OSError, ValueError, TypeError, KeyError):
        return False


@dataclass
class _RunFiles:
    """Writes a run's files: the model, the history, the metrics and the checkpoint, each atomically."""

    config: Config
    prepared: PreparedData
    net: Network
    trainer: Trainer
    fingerprint: dict
    directory: Path
    load_seconds: float
    metric: Metric

    def __post_init__(self) -> None:
        self.history_csv = HistoryCsv(self.metric.name)

    def write(self, history: History, checkpoint: bool, metrics: bool) -> dict | None:
        net, directory = self.net, self.directory
        directory.mkdir(parents=True, exist_ok=True)
        if checkpoint:
            arrays, record = self.trainer.checkpoint()
            save_checkpoint(
                directory / CHECKPOINT_FILE,
                arrays,
                {"nncli_version": __version__, "fingerprint": self.fingerprint, "trainer": record},
            )
        meta = {
            "nncli_version": __version__,
            "layer_sizes": net.layer_sizes,
            "activation": net.activation,
            "output": net.output_name,
            "dtype": str(net.dtype),
            **self.prepared.preprocessing.to_meta(),
            "config": self.config.to_dict(),
        }
        save_model(directory / MODEL_FILE, net.weights, net.biases, meta)
        atomic_write_text(directory / HISTORY_FILE, self.history_csv.text(history))
        if not metrics:
            return None
        lambda_ = self.config.training.lambda_
        splits = (
            ("train", self.prepared.train),
            ("validation", self.prepared.validation),
            ("test", self.prepared.test),
        )
        summary = {
            "stop_reason": history.stop_reason,
            "epochs": len(history),
            "best_epoch": history.best_epoch,
            "load_seconds": self.load_seconds,
            "seconds": self.trainer.state.seconds,
            "layer_sizes": net.layer_sizes,
            "parameters": int(net.theta.size),
            "engine": history.engine,
            "metric": self.metric.name,
            **{name: evaluate(net, split, lambda_, self.metric) for name, split in splits},
        }
        atomic_write_text(directory / METRICS_FILE, json.dumps(summary, indent=2) + "\n")
        return summary


def evaluate(net: Network, split, lambda_: float, metric: Metric) -> dict | None:
    """J(Θ) over the whole split (its own m) and the metric, or None for a split that does not exist."""
    if split is None:
        return None
    X, Y = split
    cost, figure = evaluate_split(net, X, Y, lambda_, metric)
    return {"rows": len(X), "cost": cost, metric.name: figure}


class HistoryCsv:
    """history.csv: epoch, iteration, train_cost, val_cost, train_<metric>, val_<metric>, seconds.

    Rows already formatted are kept, so rewriting the file after each epoch costs one join, not a new
    formatting of the whole history."""

    def __init__(self, metric_name: str | None) -> None:
        name = metric_name or "metric"
        self.lines = [f"epoch,iteration,train_cost,val_cost,train_{name},val_{name},seconds\n"]

    def text(self, history: History) -> str:
        del self.lines[len(history) + 1 :]
        for r in history[len(self.lines) - 1 :]:
            row = [
                r.epoch,
                r.iteration,
                r.train_cost,
                r.val_cost,
                r.train_metric,
                r.val_metric,
                round(r.seconds, 6),
            ]
            self.lines.append(",".join("" if value is None else repr(value) for value in row) + "\n")
        return "".join(self.lines)


def load_trained_model(path: Path) -> Model:
    weights, biases, meta = load_model(path)
    try:
        network = Network.from_weights(weights, biases, meta["activation"], meta["output"])
        preprocessing = Preprocessing.from_meta(meta)
    except (NncliError, KeyError, TypeError, ValueError) as error:
        raise ModelFileError(f"'{path}' is damaged: {error}") from None
    sizes = network.layer_sizes
    if (
        sizes != meta["layer_sizes"]
        or len(preprocessing.features) != sizes[0]
        or preprocessing.mean.shape != (sizes[0],)
        or preprocessing.std.shape != (sizes[0],)
        or preprocessing.output_units != sizes[-1]
        or (preprocessing.task == "classification" and not preprocessing.classes)
    ):
        raise ModelFileError(f"'{path}' is damaged: its arrays and its meta record disagree")
    return Model(network, preprocessing, meta)


def prediction_columns(model: Model, frame, source: CsvSource, offset: int, proba: bool):
    """For one chunk of rows: the ``prediction`` column (labels or values), ``p_<class>`` columns with
    ``proba``, and (when the chunk holds the target column) the score's sum over the chunk."""
    pre = model.preprocessing
    A = model.network.forward(pre.inputs(frame, source, offset))
    labels = pre.decode(A)
    columns = {"prediction": labels}
    if proba:
        for label, p in zip(pre.classes, pre.probabilities(A).T, strict=True):
            columns[f"p_{label}"] = p.tolist()
    score_sum = None
    if pre.target in frame.columns:
        if pre.task == "classification":
            truth = class_labels(frame, pre.target, source, offset)
            score_sum = float(sum(a == b for a, b in zip(labels, truth, strict=True)))
        else:
            truth = numeric_matrix(frame, [pre.target], source, offset)[:, 0]
            score_sum = float(np.sum((np.asarray(labels) - truth) ** 2))
    return columns, score_sum


def predict(
    model: Model, source: CsvSource, handle, proba: bool = False
) -> tuple[int, tuple[str, float] | None]:
    """Stream predictions for the rows of ``source`` as CSV text into ``handle``, chunk by chunk, so
    memory does not grow with the number of rows. Returns (rows, (accuracy or rmse, value) or None)."""
    pre = model.preprocessing
    if proba and pre.task != "classification":
        raise NncliError("--proba applies to classification models; this model predicts a number")
    if source.path is not None:
        read_header(source)
    rows, score_total, scored = 0, 0.0, True
    for offset, chunk in read_chunks(source, rows=chunk_rows(len(pre.features) + 1)):
        columns, score_sum = prediction_columns(model, chunk, source, offset, proba)
        write_csv(columns, handle, header=offset == 0)
        rows += len(chunk)
        scored = scored and score_sum is not None
        score_total += score_sum or 0.0
    if rows == 0:
        names = ["prediction"] + ([f"p_{label}" for label in pre.classes] if proba else [])
        handle.write(",".join(names) + "\n")
        return 0, None
    if not scored:
        return rows, None
    if pre.task == "classification":
        return rows, ("accuracy", score_total / rows)
    return rows, ("rmse", float(np.sqrt(score_total / rows)))


def gradcheck_config(
    config: Config, samples: int, epsilon: float, max_params: int
) -> tuple[Network, GradcheckReport, int]:
    """Check backpropagation for the config's network on a seeded sample of its training rows, in float64."""
    prepared = prepare(config.data, config.model.output, config.training.seed)
    net = build_network(config, prepared, dtype="float64")
    X, Y = prepared.train
    rows = np.random.default_rng(config.training.seed).permutation(len(X))[:samples]
    report = gradcheck(
        net, X[rows], Y[rows], config.training.lambda_, epsilon, max_params, config.training.seed
    )
    return net, report, len(rows)

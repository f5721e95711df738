"""What the commands do, as library functions: train from a config, load a model and predict with it,
check a config's gradients. ``nncli.cli`` parses arguments, calls one of these and writes what they return.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nncli import __version__
from nncli.config import Config
from nncli.cores import available_memory
from nncli.errors import DataError, ModelFileError, NncliError, shown
from nncli.io.datasets import (
    TRAIN_COST,
    CsvSource,
    PreparedData,
    Preprocessing,
    chunk_rows,
    prepare,
    read_chunks,
    read_header,
    write_csv,
)
from nncli.io.files import atomic_write_text
from nncli.io.model_file import load_checkpoint, load_model, save_checkpoint, save_model
from nncli.io.run_folder import RunFolder
from nncli.model.activations import ACTIVATIONS
from nncli.model.gradcheck import DEFAULT_EPSILON, GradcheckReport, gradcheck
from nncli.model.layers import build_layers
from nncli.model.metrics import ACCURACY, LABEL_ACCURACY, Metric, rmse
from nncli.model.network import Network
from nncli.reports.evaluation import ConfusionTally, ErrorTally
from nncli.training.callbacks import DIVERGED, INTERRUPTED
from nncli.training.loop import EVALUATION_ROWS, EpochRecord, History, Trainer, held_elsewhere
from nncli.training.loop import evaluate as evaluate_split

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
    epochs: int  # the epochs the run was to reach (a resumed run keeps those it was started with)


def metric_for(pre: Preprocessing) -> Metric:
    """Accuracy for classification, label accuracy for several 0/1 labels; RMSE in the targets' own units
    for regression."""
    if pre.task == "classification":
        return ACCURACY
    return LABEL_ACCURACY if pre.task == "multilabel" else rmse(pre.target_std)


def input_shape(config: Config, prepared: PreparedData) -> tuple[int, ...]:
    """The shape the network reads one row as: data.input_shape, whose size must be the feature count, or
    the features as a vector."""
    n_in = len(prepared.preprocessing.features)
    shape = config.data.input_shape
    if shape is None:
        return (n_in,)
    if math.prod(shape) != n_in:
        raise NncliError(
            f"data.input_shape {list(shape)} reads {math.prod(shape)} values a row, but the data has {n_in} "
            f"feature columns; fix data.input_shape, or list the image's columns in data.features"
        )
    return shape


def layer_specs(config: Config) -> list[dict]:
    """The hidden layers' specifications: model.layers, or model.hidden's dense layers."""
    if config.model.layers is not None:
        return [dict(spec) for spec in config.model.layers]
    return [{"type": "dense", "units": units} for units in config.model.hidden]


def build_network(config: Config, prepared: PreparedData, dtype: str | None = None) -> Network:
    return Network.from_layers(
        input_shape=input_shape(config, prepared),
        layers=layer_specs(config),
        n_out=prepared.preprocessing.output_units,
        activation=config.model.activation,
        output=prepared.output,
        initializer=config.model.initializer,
        seed=config.training.seed,
        dtype=dtype or config.model.dtype,
        init_scale=config.model.init_scale,
        relu_bias=config.model.relu_bias,
    )


# Copies of Θ a run keeps (θ, the momentum, the best θ, θ at the epoch's start, the gradient, the fast
# path's buffers), and of a batch's activations per layer (z, a, δ and the fast path's transposes).
PARAMETER_COPIES, ACTIVATION_COPIES = 6, 4


def check_memory(config: Config, prepared: PreparedData, available: int | None = None) -> None:
    """Refuse a network whose parameters and buffers cannot fit in the memory this machine has free,
    naming its largest layer, before anything is allocated. On Dask, the client's buffers are those of
    one evaluation chunk: the training rows are the workers'."""
    available = available_memory() if available is None else available
    if available is None:
        return
    layers = build_layers(
        input_shape(config, prepared),
        layer_specs(config),
        prepared.preprocessing.output_units,
        ACTIVATIONS[config.model.activation],
    )  # shapes only: no parameter is allocated
    sizes = [layers[0].sizes[0], *(layer.sizes[1] for layer in layers)]
    itemsize = np.dtype(config.model.dtype).itemsize
    m = len(prepared.train[0])
    rows = m if config.training.batch == "batch" else min(m, config.training.batch_size)
    if held_elsewhere(prepared.train[0]):
        rows = 0  # a Dask run's rows live on its workers; the client only evaluates the held-out files
    rows = max(rows, min(m, EVALUATION_ROWS))
    weights = [sum(math.prod(shape) for shape in layer.param_shapes) for layer in layers]
    per_row = ACTIVATION_COPIES * sum(sizes) + sum(layer.workspace for layer in layers)
    need = (PARAMETER_COPIES * sum(weights) + rows * per_row) * itemsize
    if need <= available:
        return
    largest = max(range(len(weights)), key=weights.__getitem__)
    key = "model.layers" if config.model.layers is not None else "model.hidden"
    raise NncliError(
        f"the network {'-'.join(map(str, sizes))} needs about {_bytes(need)} of memory for its parameters "
        f"and buffers, more than the {_bytes(available)} free here; its layer {largest + 1} "
        f"({sizes[largest]} → {sizes[largest + 1]} values, {weights[largest]:,} parameters) is the largest: "
        f"make {key} smaller"
    )


def _bytes(count: float) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if count < 1024 or unit == "TiB":
            return f"{count:.0f} {unit}" if unit == "bytes" else f"{count:.1f} {unit}"
        count /= 1024
    return f"{count} bytes"


def divergence_advice(config: Config, rows: int) -> str:
    """What to change after J became nan or inf: λ when each step's decay of Θ, α·λ/|B| with |B| the
    batch's m, overshoots (a factor 1 − α·λ/|B| below 0 flips Θ's sign every step and grows it); else α."""
    t = config.training
    batch_rows = {"batch": rows, "mini-batch": min(t.batch_size, rows), "stochastic": 1}[t.batch]
    decay = t.alpha * t.lambda_ / max(batch_rows, 1)
    if decay >= 1:
        return (
            f"try a smaller training.lambda (now {t.lambda_:g}): each step scales Θ by 1 − α·λ/m = "
            f"{1 - decay:.3g}, which overshoots"
        )
    return f"try a smaller training.alpha (now {t.alpha:g})"


def check_output_dir(directory: Path, overwrite: bool, resume: bool) -> None:
    """Refuse to train over an earlier run unless told to (and refuse --resume with nothing to resume)."""
    if directory.exists() and not directory.is_dir():
        raise NncliError(f"output.dir '{directory}' is a file, not a folder; choose another output.dir")
    if overwrite and resume:
        raise NncliError("--overwrite and --resume contradict each other; pass one of them")
    if resume and not (directory / CHECKPOINT_FILE).exists():
        raise NncliError(f"there is no checkpoint in '{directory}' to resume from; train without --resume")
    if not (overwrite or resume) and _holds_a_run(directory):
        raise NncliError(
            f"'{directory}' already holds a trained model; pass --resume to continue it "
            f"or --overwrite to replace it"
        )


def _holds_a_run(directory: Path) -> bool:
    return (directory / MODEL_FILE).exists() or (directory / CHECKPOINT_FILE).exists()


# The hash of the arrays in a run's fingerprint (hashlib's sha256 runs on the processor's SHA instructions
# where it has them).
ARRAYS_HASH = "sha256"


def arrays_digest(prepared: PreparedData) -> str:
    """A hash of the training and validation arrays."""
    digest = hashlib.new(ARRAYS_HASH)
    for array in (*prepared.train, *(prepared.validation or ())):
        if hasattr(array, "digest"):  # rows a Dask cluster holds: each partition's own hash, in order
            for part in array.digest():
                digest.update(part)
        elif isinstance(array, np.ndarray):
            digest.update(np.ascontiguousarray(array).data)
    return digest.hexdigest()


def fingerprint(config: Config, prepared: PreparedData) -> dict:
    """What decides the weights a run ends with, apart from the number of epochs: the config's data,
    model and training keys, the preprocessing the data gave (feature names, classes, standardization
    statistics: arrays standardized from data scaled by 100, or relabelled classes, are the same arrays)
    and a hash of the training and validation arrays."""
    settings = config.to_dict()
    settings["training"].pop("epochs")
    settings["training"].pop("engine")  # the engine a run started with is in its checkpoint
    settings["data"].pop("test")
    return {
        "data": settings["data"],
        "model": settings["model"],
        "training": settings["training"],
        "preprocessing": json.loads(json.dumps(prepared.preprocessing.to_meta())),
        "arrays": arrays_digest(prepared),
        "arrays_hash": ARRAYS_HASH,
    }


PREPROCESSING_CHANGES = {
    "feature_names": "its feature columns",
    "target_name": "its target column",
    "task": "its task",
    "classes": "its classes",
    "output_units": "its output units",
    "mean": "its features' means",
    "std": "its features' standard deviations",
    "target_names": "its target columns",
    "target_mean": "its target's mean",
    "target_std": "its target's standard deviation",
}


def _changes(before: dict, now: dict) -> list[str]:
    changed = []
    for section in ("data", "model", "training"):
        for key in sorted(set(before[section]) | set(now[section])):
            if before[section].get(key) != now[section].get(key):
                changed.append(
                    f"{section}.{key} changed from {before[section].get(key)!r} to {now[section].get(key)!r}"
                )
    if changed:
        return changed
    differ = [
        what
        for key, what in PREPROCESSING_CHANGES.items()
        if before["preprocessing"].get(key) != now["preprocessing"].get(key)
    ]
    if differ or (before["arrays"], before["arrays_hash"]) != (now["arrays"], now["arrays_hash"]):
        detail = f" ({', '.join(differ)} differ)" if differ else ""
        changed.append(f"the contents of the data file '{now['data']['path']}' changed{detail}")
    return changed


RUN_FILES = (CHECKPOINT_FILE, MODEL_FILE, HISTORY_FILE, METRICS_FILE)


def train_from_config(
    config: Config,
    overwrite: bool = False,
    resume: bool = False,
    on_epoch: Callable[[EpochRecord], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    on_note: Callable[[str], None] | None = None,
    on_start: Callable[[int, int], None] | None = None,
) -> TrainingRun:
    """Load the data, train (or continue a checkpointed run), and write model.npz, history.csv,
    metrics.json and checkpoint.npz into output.dir.

    Everything the user gave is checked before the output folder is touched; the folder is then locked
    for the run (``nncli.io.run_folder``). The checkpoint (with the model and history) is rewritten every
    ``output.checkpoint_every`` epochs, each file atomically. ``on_note`` receives sentences worth telling
    the user (a target that looks numeric, the epoch count a resumed run keeps); ``on_start`` receives the
    epochs done and the epochs to reach as training starts.
    """
    note = on_note or (lambda text: None)
    directory = Path(config.output.dir)
    check_output_dir(directory, overwrite, resume)
    if config.training.backend == "dask":
        from nncli.distributed.cluster import connected

        with connected(config.training.dask) as client:
            args = (overwrite, resume, on_epoch, should_stop, note, on_start)
            return _load_and_train(config, *args, client=client)
    return _load_and_train(config, overwrite, resume, on_epoch, should_stop, note, on_start)


def _load_and_train(
    config, overwrite, resume, on_epoch, should_stop, note, on_start, client=None
) -> TrainingRun:
    """Read the data (here, or on the workers of ``client``'s cluster), then train in the locked folder."""
    directory = Path(config.output.dir)
    started = time.perf_counter()
    grid = None
    if client is None:
        prepared = prepare(config.data, config.model.output, config.training.seed)
    else:
        from nncli.distributed.remote import prepare_remote

        t = config.training
        prepared, grid = prepare_remote(
            client, config.data, config.model.output, t.seed, t.dask.partition_rows
        )
    for text in prepared.notes:
        note(text)
    load_seconds = time.perf_counter() - started
    check_memory(config, prepared)
    replacing = overwrite and _holds_a_run(directory)
    with RunFolder(directory, RUN_FILES, replacing) as folder:
        check_output_dir(directory, overwrite, resume)  # another run may have ended there meanwhile
        run = _train(
            config, prepared, folder, resume, load_seconds, on_epoch, should_stop, note, on_start, grid
        )
    return run


def _train(
    config, prepared, folder, resume, load_seconds, on_epoch, should_stop, note, on_start, grid=None
) -> TrainingRun:
    directory = folder.directory
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
        optimizer=t.optimizer,
        beta2=t.beta2,
        epsilon=t.epsilon,
        schedule=t.schedule,
        clip_norm=t.clip_norm,
    )
    run_fingerprint = fingerprint(config, prepared)
    epochs = t.epochs
    if resume:
        epochs = _resume(trainer, directory, run_fingerprint, config, note)
    run = _RunFiles(
        config, prepared, net, trainer, run_fingerprint, folder, load_seconds, metric, epochs, grid
    )
    every = config.output.checkpoint_every
    if on_start is not None:
        on_start(trainer.state.epoch, epochs)

    def epoch_done(record: EpochRecord) -> None:
        if on_epoch is not None:
            on_epoch(record)
        if every is not None and record.epoch % every == 0:
            run.write(trainer.history(), checkpoint=True, metrics=False)

    history = trainer.run(epochs, epoch_done, should_stop, note)
    metrics = run.write(history, checkpoint=history.stop_reason != DIVERGED, metrics=True)
    return TrainingRun(history, metrics, directory, epochs)


def _resume(trainer: Trainer, directory: Path, run_fingerprint: dict, config: Config, note) -> int:
    """Restore the checkpointed run in ``directory`` into ``trainer``; returns the epochs it trains to:
    those it was started with, unless the command line gives new ones or the config file's changed."""
    arrays, meta = load_checkpoint(directory / CHECKPOINT_FILE)
    try:
        changed = _changes(meta["fingerprint"], run_fingerprint)
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
        kept = meta["epochs"]
        if not isinstance(kept, int) or isinstance(kept, bool) or kept < 1:
            raise ValueError(f"its epochs should be a whole number ≥ 1, got {shown(kept)}")
    except KeyError as error:
        raise ModelFileError(f"'{directory / CHECKPOINT_FILE}' is damaged: it lacks {error}") from None
    except (TypeError, ValueError) as error:
        raise ModelFileError(f"'{directory / CHECKPOINT_FILE}' is damaged: {error}") from None
    started_with = trainer.state.engine
    if trainer.engine not in ("auto", started_with):
        raise NncliError(
            f"cannot resume the run in '{directory}' with training.engine {trainer.engine!r}: it was "
            f"trained with {started_with!r}, and keeps its engine so that it resumes bit for bit; "
            f"set training.engine to auto or {started_with!r}, or pass --overwrite to start again"
        )
    epochs = config.training.epochs
    if "training.epochs" not in config.from_command_line and config.epochs_in_file == meta.get(
        "epochs_in_file"
    ):
        if epochs != kept:
            note(
                f"nncli: the resumed run keeps the {kept} epochs it was started with; "
                f"pass --epochs to change them"
            )
        epochs = kept
    done = trainer.state.epoch
    if done >= epochs and _ended(directory, done):
        raise NncliError(
            f"the run in '{directory}' already has {done} epochs; raise training.epochs "
            f"(or pass --epochs) above {done} to train longer"
        )
    return epochs


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
    folder: RunFolder
    load_seconds: float
    metric: Metric
    epochs: int
    grid: object = None  # a dask run's partition grid (nncli.distributed.remote.Grid)

    def __post_init__(self) -> None:
        self.history_csv = HistoryCsv(self.metric.name)

    def write(self, history: History, checkpoint: bool, metrics: bool) -> dict | None:
        """Write the run's files (into the replacement folder while replacing an earlier run, whose files
        the complete set then replaces); returns the metrics written, if asked for."""
        net, directory = self.net, self.folder.target
        written = [MODEL_FILE, HISTORY_FILE]
        if checkpoint:
            arrays, record = self.trainer.checkpoint()
            save_checkpoint(
                directory / CHECKPOINT_FILE,
                arrays,
                {
                    "nncli_version": __version__,
                    "fingerprint": self.fingerprint,
                    "epochs": self.epochs,
                    "epochs_in_file": self.config.epochs_in_file,
                    "trainer": record,
                },
            )
            written.append(CHECKPOINT_FILE)
        summary = self.summary(history) if metrics else None
        meta = {
            "nncli_version": __version__,
            "layer_sizes": net.layer_sizes,
            "input_shape": list(net.input_shape),
            "layers": net.layer_specs,
            "activation": self.config.model.activation,
            "output": net.output_name,
            "dtype": str(net.dtype),
            **self.prepared.preprocessing.to_meta(),
            "config": self.config.to_dict(),
            "training": training_record(history, summary),
        }
        save_model(directory / MODEL_FILE, net.weights, net.biases, meta)
        atomic_write_text(directory / HISTORY_FILE, self.history_csv.text(history))
        if summary is None:
            self.folder.commit(written)
            return None
        atomic_write_text(directory / METRICS_FILE, json.dumps(summary, indent=2) + "\n")
        self.folder.commit([*written, METRICS_FILE])
        return summary

    def summary(self, history: History) -> dict:
        """metrics.json: how the run ended, and J and the metric over each split with the final weights."""
        net, lambda_ = self.net, self.config.training.lambda_
        splits = (
            ("train", self.prepared.train),
            ("validation", self.prepared.validation),
            ("test", self.prepared.test),
        )
        return {
            "stop_reason": history.stop_reason,
            "epochs": len(history),
            "best_epoch": history.best_epoch,
            "load_seconds": self.load_seconds,
            "seconds": self.trainer.state.seconds,
            "layer_sizes": net.layer_sizes,
            "parameters": int(net.theta.size),
            "engine": history.engine,
            "backend": self.config.training.backend,
            **(self.grid_record() if self.grid is not None else {}),
            "metric": self.metric.name,
            **{name: evaluate(net, split, lambda_, self.metric) for name, split in splits},
        }

    def grid_record(self) -> dict:
        grid = self.grid
        return {"partitions": grid.partitions, "partition_rows": grid.partition_rows, "workers": grid.workers}


SPLITS = ("train", "validation", "test")


def training_record(history: History, summary: dict | None) -> dict:
    """The model file's record of how its weights were trained: the epochs done, the engine and, once the
    run has ended, why it ended and J and the metric over each split (null in a checkpoint's model)."""
    return {
        "epochs": len(history),
        "engine": history.engine,
        "stop_reason": None if summary is None else summary["stop_reason"],
        "best_epoch": None if summary is None else summary["best_epoch"],
        "seconds": None if summary is None else summary["seconds"],
        "metric": None if summary is None else summary["metric"],
        "splits": None if summary is None else {name: _finite_figures(summary[name]) for name in SPLITS},
    }


def _finite_figures(figures: dict | None) -> dict | None:
    """A split's figures with nan and inf (a diverged J) as null, which JSON can hold."""
    if figures is None:
        return None
    return {key: value if math.isfinite(value) else None for key, value in figures.items()}


def evaluate(net: Network, split, lambda_: float, metric: Metric) -> dict | None:
    """J(Θ) over the whole split (its own m) and the metric, or None for a split that does not exist."""
    if split is None:
        return None
    X, Y = split
    cost, figure = evaluate_split(net, X, Y, lambda_, metric)
    return {"rows": len(X), "cost": cost, metric.name: figure}


class HistoryCsv:
    """history.csv: epoch, iteration, train_mean_batch_cost, val_cost, train_<metric>, val_<metric>, seconds.

    ``train_mean_batch_cost`` is the mean over the epoch's steps of each batch's J (whose L2 term is divided
    by the batch's own m); ``val_cost`` is J over the whole validation set after the epoch.

    Rows already formatted are kept, so rewriting the file after each epoch costs one join, not a new
    formatting of the whole history."""

    def __init__(self, metric_name: str | None) -> None:
        name = metric_name or "metric"
        self.lines = [f"epoch,iteration,{TRAIN_COST},val_cost,train_{name},val_{name},seconds\n"]

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


# A model's layers may keep at most this many values per row of data (their outputs and scratch buffers), so
# that a crafted layer list (a 400×400 kernel with padding: same, say) cannot make predict exhaust memory.
MAX_VALUES_PER_ROW = 1 << 26


def network_from_arrays(meta: dict, weights: list[np.ndarray], biases: list[np.ndarray]) -> Network:
    """The network a model file describes: its layers from the meta record (a stack of dense layers in
    files of format 1), its parameters from the arrays. The layers' shapes are checked against the arrays
    before any parameter is allocated, so the file's own size bounds the memory a crafted record can claim."""
    if "layers" not in meta:
        return Network.from_weights(weights, biases, meta["activation"], meta["output"])
    input_shape, n_out = tuple(meta["input_shape"]), meta["layer_sizes"][-1]
    layers = build_layers(input_shape, meta["layers"], n_out, ACTIVATIONS[meta["activation"]])  # shapes only
    needed = [shape for layer in layers for shape in layer.param_shapes]
    arrays = [array for pair in zip(weights, biases, strict=True) for array in pair]
    if needed != [array.shape for array in arrays]:
        raise NncliError(
            f"its layers need arrays of the shapes {needed}, it holds {[array.shape for array in arrays]}"
        )
    per_row = sum(layer.sizes[1] + layer.workspace for layer in layers)
    if per_row > MAX_VALUES_PER_ROW:
        raise NncliError(
            f"its layers would keep {per_row:,} values per row, more than {MAX_VALUES_PER_ROW:,}"
        )
    if not all(np.isfinite(array).all() for array in arrays):
        raise NncliError("its parameters must be finite, but they hold nan or inf")
    first = weights[0].dtype if weights else np.float64
    network = Network.from_layers(
        input_shape=input_shape,
        layers=meta["layers"],
        n_out=n_out,
        output=meta["output"],
        activation=meta["activation"],
        initializer="zeros",
        dtype=first if first in (np.float32, np.float64) else np.float64,
    )
    for param, array in zip(network.params, arrays, strict=True):
        param[...] = array
    return network


def load_trained_model(path: Path) -> Model:
    weights, biases, meta = load_model(path)
    try:
        network = network_from_arrays(meta, weights, biases)
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
        or (
            preprocessing.task != "classification"
            and preprocessing.several
            and len(preprocessing.targets) != sizes[-1]
        )
        or (preprocessing.task == "regression" and preprocessing.target_mean.shape != (sizes[-1],))
        or preprocessing.target_mean.shape != preprocessing.target_std.shape
    ):
        raise ModelFileError(f"'{path}' is damaged: its arrays and its meta record disagree")
    return Model(network, preprocessing, meta)


@dataclass
class Scores:
    """What predicting a table with its target column present adds up: the score's sum over the values
    scored (a row's class, or each of its targets), and the rows whose class the model never saw in
    training (counted wrong)."""

    rows: int = 0
    values: int = 0
    total: float = 0.0
    scored: bool = True
    unseen: int = 0
    unseen_example: object = None


def prediction_columns(
    model: Model, frame, source: CsvSource, offset: int, proba: bool, scores: Scores, keep=()
):
    """For one chunk of rows: the ``keep`` columns as they are, the ``prediction`` column (labels or values)
    and ``p_<class>`` columns with ``proba``; adds the chunk's score (when it holds the target column) to
    ``scores``."""
    pre = model.preprocessing
    A = model.network.forward(pre.inputs(frame, source, offset))
    columns = {name: frame[name].to_numpy() for name in keep}
    predicted = pre.prediction_columns(A)
    columns.update(predicted)
    if proba:
        for label, p in zip(pre.probability_names, pre.probabilities(A).T, strict=True):
            columns[f"p_{label}"] = p.tolist()
    scores.rows += len(frame)
    if pre.missing_target(frame.columns) is not None:
        scores.scored = False
    elif pre.task == "classification":
        truth = pre.true_values(frame, source, offset)
        scores.total += float(sum(a == b for a, b in zip(predicted["prediction"], truth, strict=True)))
        scores.values += len(truth)
        known = set(pre.classes)
        unseen = [label for label in truth if label not in known]
        if unseen and scores.unseen == 0:
            scores.unseen_example = unseen[0]
        scores.unseen += len(unseen)
    else:
        guesses = np.column_stack(list(predicted.values()))
        truth = pre.true_values(frame, source, offset)
        if pre.task == "multilabel":
            scores.total += float(np.count_nonzero(guesses == truth))
        else:
            scores.total += float(np.sum((guesses - truth) ** 2))
        scores.values += guesses.size
    return columns


# A --proba column is written as Python floats and text: it costs several numeric cells' memory.
PROBABILITY_CELLS = 8


def prediction_chunk_rows(model: Model, proba: bool) -> int:
    """Rows per chunk, bounded by the widest thing computed for a row: its input columns, the network's
    widest layer, or the probability columns."""
    pre = model.preprocessing
    width = max(len(pre.features) + 1, *model.network.layer_sizes)
    if proba:
        width = max(width, PROBABILITY_CELLS * len(pre.probability_names))
    return chunk_rows(width)


def predict(model: Model, source: CsvSource, handle, proba: bool = False, keep=()) -> Scores:
    """Stream predictions for the rows of ``source`` as CSV text into ``handle``, chunk by chunk, so
    memory does not grow with the number of rows nor with the model's width. ``keep`` names columns of
    the input copied in front of the predictions (an id to join them back on)."""
    pre = model.preprocessing
    if proba and pre.task == "regression":
        raise NncliError("--proba applies to classification models; this model predicts a number")
    predicted = [f"prediction_{name}" for name in pre.targets] if pre.several else ["prediction"]
    names = predicted + ([f"p_{label}" for label in pre.probability_names] if proba else [])
    keep = list(dict.fromkeys(keep))
    clash = next((name for name in keep if name in names), None)
    if clash is not None:
        raise NncliError(
            f"--keep {clash!r} would give two output columns of that name; rename it in the input"
        )
    if not source.is_stream:
        _check_kept(keep, read_header(source), source)
    read_by_model = {*pre.features, *pre.targets}
    text = [name for name in keep if name not in read_by_model]  # copied as text; the model's columns as read
    scores = Scores()
    for offset, chunk in read_chunks(source, rows=prediction_chunk_rows(model, proba), text_columns=text):
        if offset == 0:
            _check_kept(keep, list(chunk.columns), source)
        if len(chunk) == 0:
            continue
        columns = prediction_columns(model, chunk, source, offset, proba, scores, keep)
        write_csv(columns, handle, header=offset == 0)
    if scores.rows == 0:
        handle.write(",".join([*keep, *names]) + "\n")
    return scores


def _check_kept(keep: list[str], header: list[str], source: CsvSource) -> None:
    missing = next((name for name in keep if name not in header), None)
    if missing is not None:
        raise NncliError(
            f"--keep {missing!r}: '{source.name}' has no such column; its columns are {', '.join(header)}"
        )


def score(model: Model, scores: Scores) -> tuple[str, float] | None:
    """(the model's metric, its value) over the values predicted — accuracy, label accuracy, or RMSE
    over every target — or None where the targets were not given."""
    if scores.rows == 0 or not scores.scored:
        return None
    name = metric_for(model.preprocessing).name
    if name == "rmse":
        return name, float(np.sqrt(scores.total / scores.values))
    return name, scores.total / scores.values


# Points kept for the predicted-against-true plot of a regression model, so that memory stays bounded.
MAX_PLOTTED_POINTS = 100_000


@dataclass(frozen=True)
class Evaluation:
    report: dict  # ``nncli.reports.evaluation``'s figures; with several targets, one report per target
    truth: list[list]  # for regression plots, per target: the first MAX_PLOTTED_POINTS true values
    predicted: list[list]  # … and their predictions


def evaluate_table(model: Model, source: CsvSource) -> Evaluation:
    """Predict every row of ``source`` (which must hold the target columns) and tally the results chunk
    by chunk, per target: the confusion matrix and per-class figures (a label's classes are 0 and 1), or
    RMSE, MAE and R² in the target's units."""
    pre = model.preprocessing
    missing = None if source.is_stream else pre.missing_target(read_header(source))
    if missing is not None:
        raise DataError(
            f"'{source.name}' has no target column {missing!r}; evaluate compares the model's "
            f"predictions with it (to predict without it, use nncli predict)"
        )
    K = len(pre.targets)
    if pre.task == "regression":
        tallies = [ErrorTally() for _ in range(K)]
    else:
        tallies = [ConfusionTally(pre.classes if pre.task == "classification" else (0, 1)) for _ in range(K)]
    truth, predicted = [[] for _ in range(K)], [[] for _ in range(K)]
    for offset, chunk in read_chunks(source, rows=prediction_chunk_rows(model, False)):
        if len(chunk) == 0:
            continue
        missing = pre.missing_target(chunk.columns)
        if missing is not None:
            raise DataError(f"'{source.name}' has no target column {missing!r}; evaluate needs it")
        guesses = list(
            pre.prediction_columns(model.network.forward(pre.inputs(chunk, source, offset))).values()
        )
        values = pre.true_values(chunk, source, offset)
        if pre.task == "classification":
            tallies[0].add(values, guesses[0])
            continue
        if pre.task == "multilabel":
            for k, tally in enumerate(tallies):
                tally.add(values[:, k].astype(np.int64).tolist(), guesses[k])
            continue
        for k, tally in enumerate(tallies):
            tally.add(values[:, k], np.asarray(guesses[k]))
            room = MAX_PLOTTED_POINTS - len(truth[k])
            truth[k] += values[:room, k].tolist()
            predicted[k] += guesses[k][:room]
    reports = [tally.report() for tally in tallies]
    if reports[0]["rows"] == 0:
        raise DataError(f"'{source.name}' has no data rows, so there is nothing to evaluate")
    if K == 1:
        return Evaluation(reports[0], truth, predicted)
    report = {
        "task": pre.task,
        "rows": reports[0]["rows"],
        "targets": dict(zip(pre.targets, reports, strict=True)),
    }
    return Evaluation(report, truth, predicted)


def gradcheck_config(
    config: Config, samples: int, epsilon: float | None, max_params: int
) -> tuple[Network, GradcheckReport, int]:
    """Check backpropagation for the config's network on a seeded sample of its training rows, in float64,
    with nonzero random biases. ε defaults to ``DEFAULT_EPSILON`` divided by the sample's largest |x| where
    it is above 1: a probe moves z^(2) by about ε·x, and standardized pixels reach 30 or more, where ε = 1e-4
    leaves the centred difference's ε² error above the tolerance."""
    prepared = prepare(config.data, config.model.output, config.training.seed)
    net = build_network(config, prepared, dtype="float64")
    X, Y = prepared.train
    rng = np.random.default_rng(config.training.seed)
    rows = rng.permutation(len(X))[:samples]
    for b in net.biases:  # nonzero, so that a blank region's z^(l) = b sits at no ReLU kink
        b[...] = rng.choice([-1.0, 1.0], size=b.shape) * rng.uniform(0.05, 0.5, size=b.shape)
    if epsilon is None:
        epsilon = DEFAULT_EPSILON / max(1.0, float(np.abs(X[rows]).max()))
    report = gradcheck(
        net, X[rows], Y[rows], config.training.lambda_, epsilon, max_params, config.training.seed
    )
    return net, report, len(rows)

"""What the commands do, as library functions: train from a config, load a model and predict with it,
check a config's gradients. ``cli.py`` parses arguments, calls one of these and writes what they return.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nncli import __version__
from nncli.config import Config
from nncli.data import CsvSource, PreparedData, Preprocessing, class_labels, csv_text, numeric_matrix, prepare
from nncli.errors import ModelFileError, NncliError
from nncli.files import atomic_write_text
from nncli.gradcheck import GradcheckReport, gradcheck
from nncli.metrics import ACCURACY, Metric, rmse
from nncli.model_file import load_model, save_model
from nncli.network import Network
from nncli.train import EpochRecord, History, train

MODEL_FILE, HISTORY_FILE, METRICS_FILE = "model.npz", "history.csv", "metrics.json"


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


def check_output_dir(directory: Path, overwrite: bool) -> None:
    """Refuse to train over an earlier run unless told to."""
    if (directory / MODEL_FILE).exists() and not overwrite:
        raise NncliError(f"'{directory}' already holds a trained model; pass --overwrite to replace it")
    if directory.exists() and not directory.is_dir():
        raise NncliError(f"output.dir '{directory}' is a file, not a folder; choose another output.dir")


def train_from_config(
    config: Config, overwrite: bool = False, on_epoch: Callable[[EpochRecord], None] | None = None
) -> TrainingRun:
    """Load the data, train, and write model.npz, history.csv and metrics.json into output.dir.

    Everything the user gave is checked before the output folder is touched.
    """
    directory = Path(config.output.dir)
    check_output_dir(directory, overwrite)
    started = time.perf_counter()
    prepared = prepare(config.data, config.model.output, config.training.seed)
    load_seconds = time.perf_counter() - started
    net = build_network(config, prepared)
    metric = metric_for(prepared.preprocessing)
    t = config.training
    history = train(
        net,
        *prepared.train,
        alpha=t.alpha,
        lambda_=t.lambda_,
        beta=t.beta,
        batch=t.batch,
        batch_size=t.batch_size,
        epochs=t.epochs,
        seed=t.seed,
        validation=prepared.validation,
        metric=metric,
        patience=t.early_stopping.patience if t.early_stopping else None,
        on_epoch=on_epoch,
    )
    metrics = {
        "stop_reason": history.stop_reason,
        "epochs": len(history),
        "best_epoch": history.best_epoch,
        "load_seconds": load_seconds,
        "seconds": history[-1].seconds if history else 0.0,
        "layer_sizes": net.layer_sizes,
        "parameters": int(sum(p.size for p in net.params)),
        "metric": metric.name,
        **{
            name: evaluate(net, split, t.lambda_, metric)
            for name, split in (
                ("train", prepared.train),
                ("validation", prepared.validation),
                ("test", prepared.test),
            )
        },
    }
    directory.mkdir(parents=True, exist_ok=True)
    meta = {
        "nncli_version": __version__,
        "layer_sizes": net.layer_sizes,
        "activation": net.activation,
        "output": net.output_name,
        "dtype": str(net.dtype),
        **prepared.preprocessing.to_meta(),
        "config": config.to_dict(),
    }
    save_model(directory / MODEL_FILE, net.weights, net.biases, meta)
    atomic_write_text(directory / HISTORY_FILE, csv_text(history_columns(history)))
    atomic_write_text(directory / METRICS_FILE, json.dumps(metrics, indent=2) + "\n")
    return TrainingRun(history, metrics, directory)


def evaluate(net: Network, split, lambda_: float, metric: Metric) -> dict | None:
    """J(Θ) over the whole split (its own m) and the metric, or None for a split that does not exist."""
    if split is None:
        return None
    X, Y = split
    return {"rows": len(X), "cost": net.cost(X, Y, lambda_), metric.name: metric(net.forward(X), Y)}


def history_columns(history: History) -> dict[str, list]:
    name = history.metric_name or "metric"
    return {
        "epoch": [r.epoch for r in history],
        "iteration": [r.iteration for r in history],
        "train_cost": [r.train_cost for r in history],
        "val_cost": [r.val_cost for r in history],
        f"train_{name}": [r.train_metric for r in history],
        f"val_{name}": [r.val_metric for r in history],
        "seconds": [round(r.seconds, 6) for r in history],
    }


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


@dataclass(frozen=True)
class Predictions:
    columns: dict[str, list]
    score: tuple[str, float] | None


def predict(model: Model, frame, source: CsvSource, proba: bool = False) -> Predictions:
    """The ``prediction`` column (labels or values), ``p_<class>`` columns with ``proba``, and the
    accuracy or RMSE when the table also holds the target column."""
    pre = model.preprocessing
    if proba and pre.task != "classification":
        raise NncliError("--proba applies to classification models; this model predicts a number")
    A = model.network.forward(pre.inputs(frame, source))
    labels = pre.decode(A)
    columns = {"prediction": labels}
    if proba:
        for label, p in zip(pre.classes, pre.probabilities(A).T, strict=True):
            columns[f"p_{label}"] = p.tolist()
    score = None
    if pre.target in frame.columns:
        if pre.task == "classification":
            truth = class_labels(frame, pre.target, source)
            score = ("accuracy", float(np.mean([a == b for a, b in zip(labels, truth, strict=True)])))
        else:
            truth = numeric_matrix(frame, [pre.target], source)[:, 0]
            score = ("rmse", float(np.sqrt(np.mean((np.asarray(labels) - truth) ** 2))))
    return Predictions(columns, score)


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

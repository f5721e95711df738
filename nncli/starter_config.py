"""A first config for a CSV file nncli has never seen (``nncli init``): what the columns hold decides the
task, the output and which columns can be features; the size of the table decides the network, the
batches and the epochs. Every choice is written as a comment beside its key, so that the config reads as
an explanation of itself."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from nncli.config import yaml_scalar
from nncli.errors import DataError
from nncli.io.datasets import OTHER_DELIMITERS, CsvSource, check_file, read_chunks, read_header

# A numeric target with at most this many distinct whole numbers (and fewer than a tenth of the rows) is
# taken for class labels; anything else numeric is a number to predict.
MOST_CLASSES = 20
STEPS = 6000  # steps a first run aims at, within 30 to 500 epochs
DISTINCT_KEPT = 1000  # distinct values remembered per column; beyond this, a column is "many-valued"


@dataclass
class ColumnSurvey:
    """What one column holds, gathered chunk by chunk."""

    name: str
    numeric: bool = True
    whole: bool = True
    empty: int = 0
    distinct: set = field(default_factory=set)

    def add(self, column: pd.Series) -> None:
        self.empty += int(column.isna().sum())
        values = column.dropna()
        if not pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
            self.numeric = False
        elif self.whole and len(values):
            self.whole = bool((values.to_numpy() % 1 == 0).all())
        if len(self.distinct) <= DISTINCT_KEPT:
            self.distinct.update(values.unique()[: DISTINCT_KEPT + 1].tolist())


@dataclass
class TableSurvey:
    rows: int
    columns: dict[str, ColumnSurvey]
    delimiter: str


def sniff_delimiter(path: Path) -> str:
    """The separator the header line uses most among , ; tab and |."""
    check_file(CsvSource(path), "data file", stream_allowed=False)
    with open(path, encoding="utf-8", errors="replace", newline="") as handle:
        first = handle.readline()
    return max(OTHER_DELIMITERS[::-1], key=first.count)


def survey(path: Path) -> TableSurvey:
    """Read the whole file once, chunk by chunk, and summarize each column."""
    delimiter = sniff_delimiter(path)
    source = CsvSource(path, delimiter)
    names = read_header(source)
    columns = {name: ColumnSurvey(name) for name in names}
    rows = 0
    for _, chunk in read_chunks(source):
        for name in names:
            columns[name].add(chunk[name])
        rows += len(chunk)
    return TableSurvey(rows, columns, delimiter)


@dataclass
class Choices:
    """The config's values, each with the reason given beside it."""

    task: str
    reasons: dict[str, str]
    features: list[str]
    left_out: dict[str, str]
    hidden: int
    batch_size: int
    epochs: int
    validation_split: float
    patience: int | None
    steps_per_epoch: int


def choose(table: TableSurvey, targets: list[str]) -> Choices:
    for name in targets:
        column = table.columns[name]
        if column.empty:
            raise DataError(
                f"target column {name!r} has {column.empty} empty cell(s); every row needs a target, so fill "
                f"or drop them first"
            )
        if len(column.distinct) < 2:
            raise DataError(f"target column {name!r} holds one value only; there is nothing to learn")
    target, column = targets[0], table.columns[targets[0]]
    distinct = len(column.distinct)
    reasons = {}
    if len(targets) > 1:
        text = next((name for name in targets if not table.columns[name].numeric), None)
        if text is not None:
            raise DataError(
                f"target column {text!r} holds text; several targets must each hold numbers (0/1 labels, "
                f"or values to predict), so give one text target alone"
            )
        labels = all(table.columns[name].distinct <= {0, 1} for name in targets)
        task = "classification" if labels else "regression"
        reasons["task"] = (
            f"{len(targets)} columns of 0 and 1: a label each, one sigmoid unit per label"
            if labels
            else f"{len(targets)} numeric columns: a linear unit each"
        )
    elif not column.numeric:
        task = "classification"
        reasons["task"] = f"{target!r} holds text: {min(distinct, DISTINCT_KEPT)} classes"
    elif column.whole and distinct <= MOST_CLASSES and distinct <= max(2, table.rows // 10):
        task = "classification"
        reasons["task"] = f"{target!r} holds {distinct} distinct whole numbers: class labels"
    else:
        task = "regression"
        reasons["task"] = (
            f"{target!r} holds numbers with {'many' if distinct > DISTINCT_KEPT else distinct} values"
        )
    features, left_out = [], {}
    for name, survey_of in table.columns.items():
        if name in targets:
            continue
        if not survey_of.numeric:
            left_out[name] = "holds text"
        elif survey_of.empty:
            left_out[name] = f"has {survey_of.empty} empty cell(s)"
        elif len(survey_of.distinct) == table.rows and survey_of.whole and table.rows > 20:
            left_out[name] = "a different whole number in every row: an id, most likely"
        else:
            features.append(name)
    if not features:
        raise DataError(
            "no column besides the target holds numbers in every row, so there are no features; nncli reads "
            "numeric features only"
        )
    outputs = len(targets) if len(targets) > 1 else (1 if task == "regression" or distinct == 2 else distinct)
    hidden = min(128, max(8, 2 ** round(math.log2(max(1.0, 2 * math.sqrt(len(features) * outputs))))))
    rows = table.rows
    batch_size = 32 if rows >= 320 else max(1, rows // 10) or 1
    validation_split = 0.2 if rows >= 50 else 0.0
    steps_per_epoch = max(1, math.ceil(rows * (1 - validation_split) / batch_size))
    epochs = min(500, max(30, math.ceil(STEPS / steps_per_epoch)))
    return Choices(
        task=task,
        reasons=reasons,
        features=features,
        left_out=left_out,
        hidden=hidden,
        batch_size=batch_size,
        epochs=epochs,
        validation_split=validation_split,
        patience=20 if validation_split else None,
        steps_per_epoch=steps_per_epoch,
    )


def starter_config(data: Path, target: str | None, config_folder: Path) -> str:
    """The text of a commented config for ``data`` whose paths hold from ``config_folder``; ``target`` is
    a column name, several separated by commas, or None for the last column."""
    table = survey(data)
    names = list(table.columns)
    targets = [name.strip() for name in target.split(",") if name.strip()] if target else [names[-1]]
    for name in targets:
        if name not in table.columns:
            raise DataError(f"'{data}' has no column {name!r} (--target); its columns are {', '.join(names)}")
    if table.rows < 2:
        raise DataError(f"'{data}' has {table.rows} data row(s); training needs at least 2")
    c = choose(table, targets)
    path = os.path.relpath(Path(data).resolve(), config_folder.resolve())
    if path.startswith(".."):  # outside the config's folder: absolute, which survives moving the config
        path = str(Path(data).resolve())
    lines = [
        f"# A first config for {Path(data).name}, written by nncli init from its {table.rows} rows and "
        f"{len(names)} columns.",
        "# Train with: nncli train THIS_FILE    Every key and its default: nncli config show THIS_FILE",
        "data:",
        _entry(f"path: {yaml_scalar(path)}"),
        _entry(
            f"target: {yaml_scalar(targets[0])}"
            if len(targets) == 1
            else f"target: [{', '.join(yaml_scalar(name) for name in targets)}]"
        ),
        _entry(f"task: {c.task}", c.reasons["task"]),
    ]
    if c.left_out:
        lines.append(_entry("features:", "the numeric columns; left out:"))
        lines += [f"  #   {name}: {why}" for name, why in c.left_out.items()]
        lines += [f"    - {yaml_scalar(name)}" for name in c.features]
    if table.delimiter != ",":
        lines.append(_entry(f"delimiter: {yaml_scalar(table.delimiter)}", "the header is split by it"))
    held_out = "a fifth of the rows, to stop early on" if c.validation_split else "too few rows to hold out"
    lines += [
        _entry(f"validation_split: {c.validation_split}", held_out),
        "model:",
        _entry(f"hidden: [{c.hidden}]", "one hidden layer, about 2·√(inputs × outputs) units"),
        _entry("activation: relu", "with he initialization; biases start at 0.01"),
        _entry("initializer: he"),
        _entry("output: auto", "2 classes: one sigmoid unit; more: softmax; regression: linear"),
        "training:",
        _entry("optimizer: adam", "adapts each parameter's step; forgiving of the first α"),
        _entry("alpha: 0.001", "Adam's usual α; if J falls slowly, try 0.003"),
        _entry("lambda: 0.001", "L2 λ/(2m)·ΣW²: raise it if validation J rises as training J falls"),
        _entry("batch: mini-batch"),
        _entry(f"batch_size: {c.batch_size}", "rows per step"),
        _entry(f"epochs: {c.epochs}", f"{c.epochs * c.steps_per_epoch:,} steps at most"),
        _entry("seed: 0"),
    ]
    if c.patience:
        lines.append(
            _entry(f"early_stopping: {{patience: {c.patience}}}", "keep the best validation J's weights")
        )
    lines += ["output:", _entry(f"dir: {yaml_scalar('runs/' + Path(data).stem)}"), ""]
    return "\n".join(lines)


def _entry(key_value: str, comment: str = "") -> str:
    """One indented ``key: value`` line, its comment in a column of its own."""
    line = f"  {key_value}"
    return f"{line:<31} # {comment}" if comment else line

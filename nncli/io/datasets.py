"""CSV files into the arrays the engine takes, and back: the only user of pandas.

- ``read_csv`` / ``read_chunks``: a table with a header row, whole or in chunks of rows (so that large files
  are read in bounded memory); every failure becomes one DataError naming the file and line.
- ``Preprocessing``: which columns are features and target, the classes (sorted), and the training split's
  standardization; it turns a table into X (m, n) and Y (m, K) and output activations back into labels.
- ``prepare``: the train / validation / test arrays a config describes.
"""

from __future__ import annotations

import collections
import contextlib
import csv
import io
import os
import re
import stat
import sys
import warnings
import zipfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from nncli.cores import available_cores
from nncli.errors import DataError, shown
from nncli.io.line_ranges import line_ranges, open_range
from nncli.model.metrics import predicted_classes

MIN_ROWS = 2
# A whole-number target with more classes than this share of the rows is most likely a number to predict.
MOST_ROWS = 0.5


@dataclass(frozen=True)
class CsvSource:
    """Where a table comes from: a file, standard input ('-', path None), or a pipe or device named by a
    path (``/dev/stdin``, a FIFO, ``<(command)``), which is read once, as a stream."""

    path: Path | None
    delimiter: str = ","
    encoding: str = "utf-8"

    @property
    def name(self) -> str:
        return "standard input" if self.path is None else str(self.path)

    @property
    def is_stream(self) -> bool:
        """Whether the table can be read only once, front to back (so its header is not read apart)."""
        if self.path is None:
            return True
        try:
            return not stat.S_ISREG(os.stat(self.path).st_mode) and not self.path.is_dir()
        except OSError:
            return False


# The longest line nncli reads from a stream, and the largest field the csv module accepts: a bound on the
# memory an endless line (``< /dev/zero``) can take.
MAX_LINE_BYTES = 16 << 20
csv.field_size_limit(MAX_LINE_BYTES)


class _BoundedLines(io.RawIOBase):
    """A binary stream that fails, with a DataError, once a line grows beyond ``MAX_LINE_BYTES``."""

    def __init__(self, raw, source: CsvSource, owns: bool) -> None:
        super().__init__()
        self.raw, self.source, self.owns, self.line = raw, source, owns, 0

    def close(self) -> None:
        if self.owns and not self.closed:
            self.raw.close()
        super().close()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        data = self.raw.read(len(buffer))
        if not data:
            return 0
        end = data.rfind(b"\n")
        self.line = len(data) - end - 1 if end >= 0 else self.line + len(data)
        if self.line > MAX_LINE_BYTES:
            raise DataError(
                f"'{self.source.name}' has a line longer than {MAX_LINE_BYTES >> 20} MiB; "
                f"is it a CSV file with one row per line?"
            )
        buffer[: len(data)] = data
        return len(data)


def _stream(source: CsvSource):
    """The binary handle a stream source is read from (standard input, or the named pipe or device)."""
    if source.path is not None:
        return io.BufferedReader(_BoundedLines(open(source.path, "rb"), source, owns=True))
    if sys.stdin is None:
        raise DataError("standard input is closed; pass the data as a file, or redirect it to standard input")
    return io.BufferedReader(_BoundedLines(sys.stdin.buffer, source, owns=False))


CHUNK_CELLS = 8_000_000  # cells read at a time: about 64 MB as float64, whatever the table's width


def chunk_rows(columns: int) -> int:
    """Rows per chunk for a table of ``columns`` columns."""
    return max(1, CHUNK_CELLS // max(columns, 1))


def _encoding(source: CsvSource) -> str:
    """UTF-8 files may start with a byte-order mark; 'utf-8-sig' reads them with or without one."""
    return "utf-8-sig" if source.encoding.lower().replace("_", "-") in ("utf-8", "utf8") else source.encoding


@contextlib.contextmanager
def _explained(source: CsvSource, what: str):
    """Turn pandas' and the codecs' failures while reading ``source`` into one DataError each."""
    try:
        yield
    except DataError:
        raise
    except pd.errors.EmptyDataError:
        raise DataError(f"{what} '{source.name}' is empty; it needs a header row and data rows") from None
    except pd.errors.ParserError as error:
        raise DataError(_describe_parser_error(source, error)) from None
    except pd.errors.ParserWarning:
        raise DataError(_describe_long_row(source)) from None
    except UnicodeDecodeError as error:
        fix = "set data.encoding to the file's encoding, such as latin-1"
        raise DataError(
            f"{what} '{source.name}' is not valid {source.encoding} text (byte {error.start})"
            + (f"; {fix}" if "data" in what else "")
        ) from None
    except LookupError:
        raise DataError(f"data.encoding {source.encoding!r} is not a text encoding Python knows") from None
    except (ValueError, OverflowError, csv.Error) as error:
        raise DataError(f"'{source.name}' is not a readable CSV file ({error})") from None


def check_file(source: CsvSource, what: str, stream_allowed: bool = True) -> None:
    if source.path is None:
        return
    if source.path.is_dir():
        raise DataError(f"{what} '{source.name}' is a folder, not a file")
    if not source.path.exists():
        raise DataError(f"{what} '{source.name}' does not exist")
    if source.is_stream and not stream_allowed:
        raise DataError(
            f"{what} '{source.name}' is a pipe or a device, not a regular file; nncli reads training data "
            f"more than once, so save it to a file first"
        )


# Separators a one-column header may really be split by.
OTHER_DELIMITERS = (";", "\t", "|", ",")


def read_header(source: CsvSource, what: str = "data file") -> list[str]:
    """The column names of a CSV file, checked: present, named, none repeated, lines ended as CSV's are."""
    check_file(source, what, stream_allowed=False)
    with open(source.path, "rb") as raw:
        start = raw.read(1 << 16)
    if b"\r" in start and b"\n" not in start and len(start.split(b"\r")) > 2:
        raise DataError(
            f"{what} '{source.name}' ends its lines with a carriage return alone (old Mac style); convert "
            f"them to line feeds, for instance with: tr '\\r' '\\n' < old.csv > new.csv"
        )
    with _explained(source, what), open(source.path, newline="", encoding=_encoding(source)) as handle:
        header = next(csv.reader(handle, delimiter=source.delimiter), None)
    if not header or not any(name.strip() for name in header):
        raise DataError(f"{what} '{source.name}' is empty; it needs a header row and data rows")
    names = [name.strip() for name in header]
    if "" in names:
        raise DataError(
            f"{what} '{source.name}' has no name for its column {names.index('') + 1} in the header; "
            f"every column needs a name"
        )
    repeated = next((name for name, count in collections.Counter(names).items() if count > 1), None)
    if repeated is not None:
        raise DataError(
            f"{what} '{source.name}' names the column {shown(repeated)} twice; column names must differ"
        )
    if len(names) == 1:
        other = next((d for d in OTHER_DELIMITERS if d != source.delimiter and d in names[0]), None)
        if other is not None:
            raise DataError(
                f"{what} '{source.name}' has a single column named {shown(names[0])}; if its fields are "
                f"separated by {other!r}, set data.delimiter: {other!r}"
            )
    return names


def read_chunks(source: CsvSource, what: str = "data file", rows: int | None = None, text_columns=()):
    """(index of the chunk's first data row, chunk) for each chunk of ``rows`` rows of ``source``
    (by default, the whole table); ``text_columns`` are kept as the text of their cells (an id's leading
    zeros stay), empty where a cell is empty or NA."""
    check_file(source, what)
    rows = rows or chunk_rows(0)
    with _explained(source, what), _long_rows_refused():
        if not source.is_stream:
            yield from _parsed_chunks(source, source.path, rows, text_columns=text_columns)
            return
        with _stream(source) as handle:
            yield from _parsed_chunks(source, handle, rows, text_columns=text_columns)


@contextlib.contextmanager
def _long_rows_refused():
    """A first row longer than the header would silently become an index: make pandas' warning an error.
    The filter is process-wide: threads that parse ranges of a file run under their caller's."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", pd.errors.ParserWarning)
        yield


def _parsed_chunks(source: CsvSource, handle, rows: int, names: list[str] | None = None, text_columns=()):
    """Chunks of ``handle``'s table; with ``names``, the handle holds data lines only (no header)."""
    reader = pd.read_csv(
        handle,
        converters={name: str for name in text_columns} or None,
        sep=source.delimiter,
        encoding=_encoding(source),
        chunksize=rows,
        index_col=False,
        low_memory=False,  # the chunk bounds memory already; this parses it in one go, faster
        header="infer" if names is None else None,
        names=names,
    )
    offset = 0
    with reader:
        for chunk in reader:
            chunk.columns = [str(c).strip() for c in chunk.columns]
            yield offset, chunk
            offset += len(chunk)


def read_csv(source: CsvSource, what: str = "data file") -> pd.DataFrame:
    """The whole table in ``source``: for small files (a validation or test split, a history)."""
    if not source.is_stream:
        read_header(source, what)
    chunks = [chunk for _, chunk in read_chunks(source, what)]
    return pd.concat(chunks, ignore_index=True) if len(chunks) > 1 else chunks[0]


def count_lines(path: Path) -> int:
    """How many line breaks the file holds, plus one: at least its number of data rows."""
    count = 1
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            count += block.count(b"\n")
    return count


def _describe_parser_error(source: CsvSource, error: Exception) -> str:
    found = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", str(error))
    if found:
        expected, line, saw = found.groups()
        return (
            f"'{source.name}' line {line} has {saw} fields but the header has {expected}; "
            f"every row needs one value per column"
        )
    detail = str(error).strip().splitlines()[-1] if str(error).strip() else type(error).__name__
    return f"'{source.name}' is not a readable CSV file ({detail})"


def _describe_long_row(source: CsvSource) -> str:
    """Name the first row with more fields than the header (found again with the csv module)."""
    if not source.is_stream:
        with open(source.path, newline="", encoding=_encoding(source), errors="replace") as handle:
            reader = csv.reader(handle, delimiter=source.delimiter)
            header = next(reader, [])
            for record in reader:
                if len(record) > len(header):
                    return (
                        f"'{source.name}' line {reader.line_num} has {len(record)} fields but the header "
                        f"has {len(header)}; every row needs one value per column"
                    )
    return f"'{source.name}' has a row with more fields than the header; every row needs one value per column"


def _locate(source: CsvSource, row: int) -> tuple[str, int | None, int | None]:
    """(where, fields in that record, fields in the header) for data row ``row`` (0-based), by
    re-reading the file with the csv module; only called to explain an error."""
    if source.is_stream:
        return f"row {row + 1}", None, None
    with open(source.path, newline="", encoding=source.encoding, errors="replace") as handle:
        reader = csv.reader(handle, delimiter=source.delimiter)
        header = next(reader, [])
        records = (record for record in reader if record and any(cell.strip() for cell in record))
        for index, record in enumerate(records):
            if index == row:
                return f"line {reader.line_num}", len(record), len(header)
    return f"row {row + 1}", None, None


FEATURE, TARGET = "a feature column must be numeric", "a regression target must be numeric"


def numeric_matrix(
    frame: pd.DataFrame,
    names,
    source: CsvSource,
    offset: int = 0,
    out: np.ndarray | None = None,
    role: str = FEATURE,
) -> np.ndarray:
    """The named columns as a float64 (m, n) matrix (written into ``out`` when given); a DataError names
    the first cell that is not a finite number, is empty, or is missing from a short row, and says the
    columns' ``role``. ``offset`` is the index of the frame's first row in the file."""
    try:
        values = _as_floats(frame, names, copy=out is None)
        if out is not None:
            out[...] = values
            values = out
        if np.isfinite(values).all():
            return values
    except (ValueError, TypeError, OverflowError):
        pass
    for name in names:
        column = frame[name]
        values = _floats_or_nan(column)
        bad = np.flatnonzero(~np.isfinite(values))
        if len(bad):
            raise DataError(_describe_cell(source, column, int(bad[0]), offset, role))
    raise DataError(f"'{source.name}': the columns {list(names)} could not be read as numbers")


def _floats_or_nan(column: pd.Series) -> np.ndarray:
    """Each cell as a float, nan where it is not a number; inf where it is beyond a float's range."""
    try:
        return pd.to_numeric(column, errors="coerce").to_numpy(dtype=np.float64)
    except (OverflowError, ValueError, TypeError):  # a whole number beyond a float's range, say
        values = np.empty(len(column))
        for i, cell in enumerate(column.tolist()):
            try:
                values[i] = float(str(cell))
            except ValueError:
                values[i] = np.nan
        return values


def _as_floats(frame: pd.DataFrame, names, copy: bool = True) -> np.ndarray:
    """frame[names] as float64 (m, n), sharing no memory with the frame unless ``copy`` is false.

    pandas takes longer to select most of a wide table's columns (a Python step per column) than to
    convert them all: with every column numeric, the whole frame is converted and the named columns are
    taken from that."""
    names = list(names)
    numeric = all(pd.api.types.is_numeric_dtype(dtype) for dtype in frame.dtypes)
    positions = frame.columns.get_indexer(names) if numeric and frame.columns.is_unique else None
    if len(names) < 2 or positions is None or positions.min() < 0:  # pandas' own way, and its errors
        return frame[names].to_numpy(dtype=np.float64, copy=copy)
    values = frame.to_numpy(dtype=np.float64, copy=copy)
    first = positions[0]
    if np.array_equal(positions, np.arange(first, first + len(positions))):  # a run of columns: a view
        return values[:, first : first + len(positions)]
    return values[:, positions]


def _describe_cell(
    source: CsvSource, column: pd.Series, row: int, offset: int = 0, role: str = FEATURE
) -> str:
    raw = column.iloc[row]
    where, fields, header = _locate(source, offset + row)
    prefix = f"'{source.name}' {where}"
    if fields is not None and header is not None and fields < header:
        return (
            f"{prefix} has {fields} fields but the header has {header}; every row needs one value per column"
        )
    if pd.isna(raw):
        return f"{prefix}: column '{column.name}' is empty; fill it in or drop the row"
    return f"{prefix}: column '{column.name}' holds {shown(str(raw))}, which is not a finite number; {role}"


def _canonical_label(value):
    """A class label as it is kept in the model: a Python int for whole numbers, else a string without
    the spaces around it (so that "a, b" style files give the labels a and b)."""
    if isinstance(value, bool | np.bool_):
        return str(bool(value))
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return int(value)
    return str(value).strip()


def class_codes(
    frame: pd.DataFrame, target: str, source: CsvSource, offset: int = 0
) -> tuple[np.ndarray, list]:
    """(codes, labels): the target column's class labels in order of first appearance, and for each row
    the index of its label. Each distinct cell is made a label once (whole numbers become ints, text is
    stripped), so that texts differing only in surrounding spaces are one class."""
    column = frame[target]
    missing = np.flatnonzero(column.isna().to_numpy())
    if len(missing):
        raise DataError(_describe_cell(source, column, int(missing[0]), offset))
    if pd.api.types.is_float_dtype(column) and not np.all(np.mod(column.to_numpy(), 1) == 0):
        raise DataError(
            f"'{source.name}': target column '{target}' holds fractional numbers; "
            f"set data.task: regression to predict a number"
        )
    cell_codes, cells = pd.factorize(column, sort=False)
    index: dict = {}
    label_of_cell = [index.setdefault(_canonical_label(cell), len(index)) for cell in cells.tolist()]
    return np.asarray(label_of_cell, dtype=np.intp)[cell_codes], list(index)


def class_labels(frame: pd.DataFrame, target: str, source: CsvSource, offset: int = 0) -> list:
    """Each row's class label (see ``class_codes``)."""
    codes, labels = class_codes(frame, target, source, offset)
    return [labels[code] for code in codes.tolist()]


def sorted_classes(labels) -> tuple:
    """The class labels in the order the model's units take them: numbers first, then texts."""
    return tuple(sorted(labels, key=lambda label: (isinstance(label, str), label)))


@dataclass(frozen=True)
class Preprocessing:
    """How a table becomes (X, Y) and outputs become labels.

    x ↦ (x − mean) / std per feature (std 0 is taken as 1); for regression, each target
    y_k ↦ (y_k − target_mean_k) / target_std_k. ``task`` is classification (one column of class labels,
    ``classes`` sorted), multilabel (several 0/1 columns, one sigmoid unit each) or regression (one or
    several numeric columns, one linear unit each); ``output_units`` is K (1 for one sigmoid unit over two
    classes).
    """

    features: tuple[str, ...]
    targets: tuple[str, ...]
    task: str
    classes: tuple | None
    output_units: int
    mean: np.ndarray
    std: np.ndarray
    target_mean: np.ndarray  # (K,) for regression; 0 and 1 otherwise
    target_std: np.ndarray

    @property
    def target(self) -> str:
        """The target column's name, or the names of several joined by commas (for messages)."""
        return ", ".join(self.targets)

    @property
    def several(self) -> bool:
        return len(self.targets) > 1

    def missing_target(self, columns) -> str | None:
        """The first target column not among ``columns``, if any."""
        return next((name for name in self.targets if name not in columns), None)

    def inputs(self, frame: pd.DataFrame, source: CsvSource, offset: int = 0) -> np.ndarray:
        """X (m, n): the feature columns by name, standardized."""
        missing = [name for name in self.features if name not in frame.columns]
        if missing:
            raise DataError(
                f"'{source.name}' has no feature column {missing[0]!r}; the model needs columns "
                f"{', '.join(self.features)}"
            )
        X = numeric_matrix(frame, self.features, source, offset)
        X -= self.mean
        X /= self.std
        return X

    def target_matrix(self, frame: pd.DataFrame, source: CsvSource, offset: int = 0) -> np.ndarray:
        """Y (m, K): one-hot rows (or a 0/1 column for one sigmoid unit), the 0/1 label columns, or the
        standardized targets."""
        missing = self.missing_target(frame.columns)
        if missing is not None:
            raise DataError(f"'{source.name}' has no target column {missing!r}")
        if self.task == "regression":
            y = numeric_matrix(frame, self.targets, source, offset, role=TARGET)
            return (y - self.target_mean) / self.target_std
        if self.task == "multilabel":
            return label_matrix(frame, self.targets, source, offset)
        codes, labels = class_codes(frame, self.targets[0], source, offset)
        index = {label: i for i, label in enumerate(self.classes)}
        unknown = next((label for label in labels if label not in index), None)
        if unknown is not None:
            raise DataError(
                f"'{source.name}': target {unknown!r} is not one of the model's classes "
                f"{', '.join(map(str, self.classes))}"
            )
        return self.encode(np.array([index[label] for label in labels], dtype=np.intp)[codes])

    def true_values(self, frame: pd.DataFrame, source: CsvSource, offset: int = 0):
        """The targets as the predictions give them: the class labels (a list), the 0/1 labels, or the
        numbers in their own units, (m, K)."""
        if self.task == "classification":
            return class_labels(frame, self.targets[0], source, offset)
        if self.task == "multilabel":
            return label_matrix(frame, self.targets, source, offset)
        return numeric_matrix(frame, self.targets, source, offset, role=TARGET)

    def encode(self, codes: np.ndarray) -> np.ndarray:
        """Y from class indices: a 0/1 column for one sigmoid unit, else one-hot rows."""
        if self.output_units == 1:
            return codes.reshape(-1, 1).astype(np.float64)
        return np.eye(len(self.classes))[codes]

    def decode(self, A: np.ndarray) -> list:
        """One target's predictions in its own label space (or units), from output activations A (m, K)."""
        if self.task == "regression":
            return (A[:, 0] * self.target_std[0] + self.target_mean[0]).tolist()
        return [self.classes[i] for i in predicted_classes(A)]

    def prediction_columns(self, A: np.ndarray) -> dict[str, list]:
        """The predictions as output columns: ``prediction``, or ``prediction_<target>`` for each of
        several targets (a label's 0 or 1, a number in its own units)."""
        if not self.several:
            return {"prediction": self.decode(A)}
        if self.task == "multilabel":
            values = (A >= 0.5).astype(np.int64)
        else:
            values = A * self.target_std + self.target_mean
        return {f"prediction_{name}": values[:, k].tolist() for k, name in enumerate(self.targets)}

    @property
    def probability_names(self) -> list:
        """What ``--proba``'s columns are the probabilities of: the classes, or each label."""
        return list(self.targets) if self.task == "multilabel" else list(self.classes)

    def probabilities(self, A: np.ndarray) -> np.ndarray:
        """(m, len(probability_names)): P(class) per row, for one sigmoid unit [1 − a, a]; P(label = 1)."""
        if self.output_units == 1 and self.task == "classification":
            return np.column_stack([1.0 - A[:, 0], A[:, 0]])
        return A

    def to_meta(self) -> dict:
        """The model file's record: one target as in format 2 (a name, a mean and a standard deviation);
        several as lists (``target_names``), which only format 3 holds."""
        meta = {
            "feature_names": list(self.features),
            "task": self.task,
            "classes": None if self.classes is None else list(self.classes),
            "output_units": self.output_units,
            "mean": self.mean.tolist(),
            "std": self.std.tolist(),
        }
        if self.several:
            return {**meta, "target_names": list(self.targets), "target_mean": self.target_mean.tolist(),
                    "target_std": self.target_std.tolist()}  # fmt: skip
        return {**meta, "target_name": self.targets[0], "target_mean": float(self.target_mean[0]),
                "target_std": float(self.target_std[0])}  # fmt: skip

    @classmethod
    def from_meta(cls, meta: dict) -> Preprocessing:
        classes = meta["classes"]
        names = meta["target_names"] if "target_names" in meta else [meta["target_name"]]
        return cls(
            features=tuple(str(name) for name in meta["feature_names"]),
            targets=tuple(str(name) for name in names),
            task=str(meta["task"]),
            classes=None if classes is None else tuple(classes),
            output_units=int(meta["output_units"]),
            mean=np.asarray(meta["mean"], dtype=np.float64),
            std=np.asarray(meta["std"], dtype=np.float64),
            target_mean=np.atleast_1d(np.asarray(meta["target_mean"], dtype=np.float64)),
            target_std=np.atleast_1d(np.asarray(meta["target_std"], dtype=np.float64)),
        )


LABEL = "each of several targets with data.task classification must hold 0 or 1"


def label_matrix(frame: pd.DataFrame, names, source: CsvSource, offset: int = 0) -> np.ndarray:
    """Several 0/1 label columns as a float (m, K) matrix; a DataError names the first other value."""
    Y = numeric_matrix(frame, names, source, offset, role=LABEL)
    wrong = np.flatnonzero(((Y != 0) & (Y != 1)).any(axis=1))
    if len(wrong):
        row = int(wrong[0])
        k = int(np.flatnonzero((Y[row] != 0) & (Y[row] != 1))[0])
        where, _, _ = _locate(source, offset + row)
        raise DataError(
            f"'{source.name}' {where}: target column {names[k]!r} holds {Y[row, k]:g}; {LABEL} (one sigmoid "
            f"unit per label); for numbers to predict, set data.task: regression"
        )
    return Y


@dataclass(frozen=True)
class PreparedData:
    preprocessing: Preprocessing
    output: str
    train: tuple[np.ndarray, np.ndarray]
    validation: tuple[np.ndarray, np.ndarray] | None
    test: tuple[np.ndarray, np.ndarray] | None
    notes: tuple[str, ...] = ()  # what the user should hear about the data, as sentences


def resolve_output(requested: str, task: str, n_classes: int | None, n_targets: int = 1) -> tuple[str, int]:
    """The output unit name and K: auto picks one sigmoid for 2 classes, softmax for more, linear for
    regression (one unit per target), one sigmoid unit per label for several 0/1 targets; an explicit
    sigmoid or softmax gets one unit per class."""
    if task == "regression":
        if requested not in ("auto", "linear"):
            raise DataError(
                f"model.output {requested!r} cannot predict a number; use linear (or auto) for regression"
            )
        return "linear", n_targets
    if task == "multilabel":
        if requested not in ("auto", "sigmoid"):
            raise DataError(
                f"model.output {requested!r} makes the labels compete for one probability; several 0/1 "
                f"targets need one sigmoid unit each: use sigmoid (or auto)"
            )
        return "sigmoid", n_targets
    if requested == "auto":
        return ("sigmoid", 1) if n_classes == 2 else ("softmax", n_classes)
    if requested == "sigmoid" and n_classes == 2:
        return "sigmoid", 1
    return requested, n_classes


def prepare(data, requested_output: str, seed: int) -> PreparedData:
    """Read and check the config's CSVs (``data`` is a DataConfig) and turn them into arrays.

    The training file is read in chunks straight into one float64 matrix, so that memory holds the
    data about once, never a whole table of text; a validation split is copied out of it and the
    training rows are moved up in place.
    """
    source = CsvSource(data.path, data.delimiter, data.encoding)
    columns, targets, features, task = training_columns(data, source)

    X_all, values, labels = _read_training_rows(source, columns, features, targets, task)
    m = len(X_all)
    if m < MIN_ROWS:
        raise DataError(f"'{source.name}' has {m} data row(s); training needs at least {MIN_ROWS}")
    classes = None
    if task == "classification":
        classes = sorted_classes(labels)
        if len(classes) < 2:
            raise DataError(
                f"'{source.name}': target column {targets[0]!r} holds one class only ({classes[0]!r}); "
                "classification needs at least two"
            )
        order = {label: i for i, label in enumerate(classes)}
        values = np.array([order[label] for label in labels], dtype=np.intp)[values]
    output, units = resolve_output(
        requested_output, task, None if classes is None else len(classes), len(targets)
    )
    notes = []
    if classes and len(classes) > m * MOST_ROWS and all(isinstance(label, int) for label in classes):
        notes.append(
            f"nncli: warning: target column {targets[0]!r} of '{source.name}' has {len(classes)} classes in "
            f"{m} rows; if it is a number to predict, set data.task: regression"
        )

    rng = np.random.default_rng(seed)
    train_rows, val_rows = split_rows(m, values if classes else None, data.validation_split, rng)
    if data.validation_split > 0 and len(val_rows) == 0:
        raise DataError(
            f"data.validation_split {data.validation_split} of {m} rows leaves no validation rows"
        )
    if len(val_rows):
        X_val = X_all[val_rows]
        X_train = _keep_rows(X_all, train_rows)
        del X_all
        t_train, t_val = values[train_rows], values[val_rows]
    else:
        X_train, X_val, t_train, t_val = X_all, None, values, None

    mean, std = (
        _column_mean_std(X_train, names=features, source=source)
        if data.standardize
        else (np.zeros(len(features)), np.ones(len(features)))
    )
    K = len(targets) if task == "regression" else 1
    target_mean, target_std = np.zeros(K), np.ones(K)
    if task == "regression" and data.standardize:
        for k, name in enumerate(targets):
            target_mean[k], target_std[k] = _scaled_mean_std(t_train[:, k], name, source)
    pre = Preprocessing(tuple(features), targets, task, classes, units, mean, std, target_mean, target_std)

    def arrays(X, t):
        X -= mean
        X /= std
        if classes:
            return X, pre.encode(t)
        return X, (t - target_mean) / target_std

    train = arrays(X_train, t_train)
    validation = arrays(X_val, t_val) if X_val is not None else None
    validation_file, test = held_out_files(pre, data)
    return PreparedData(
        pre, output, train, validation if validation_file is None else validation_file, test, tuple(notes)
    )


def training_columns(data, source: CsvSource) -> tuple[list[str], tuple[str, ...], list[str], str]:
    """(the header's columns, the targets, the features, the task — multilabel for several targets of a
    classification) of the training file, each checked against the header."""
    columns = read_header(source)
    targets = target_names(data.target, columns)
    for name in targets:
        if name not in columns:
            raise DataError(
                f"'{source.name}' has no column {name!r} (data.target); its columns are {', '.join(columns)}"
            )
    chosen = set(targets)
    features = list(data.features) if data.features is not None else [c for c in columns if c not in chosen]
    present = set(columns)
    for name in features:
        if name not in present:
            raise DataError(
                f"'{source.name}' has no column {name!r} (data.features); "
                f"its columns are {', '.join(columns)}"
            )
    both = next((name for name in features if name in chosen), None)
    if both is not None:
        raise DataError(f"column {both!r} is a target, so it cannot also be in data.features")
    if not features:
        raise DataError(f"'{source.name}' has no feature columns besides the target {', '.join(targets)!r}")
    task = data.task
    if len(targets) > 1 and task == "classification":
        task = "multilabel"
    return columns, targets, features, task


def target_names(target, columns: list[str]) -> tuple[str, ...]:
    """data.target as a tuple of names: the one given, the several given, or the last column."""
    if target is None:
        return (columns[-1],)
    return (target,) if isinstance(target, str) else tuple(target)


def _read_training_rows(source: CsvSource, columns: list[str], features: list[str], targets, task: str):
    """(X (m, n) float64, values, labels): for classification, values are indices into ``labels`` (in
    order of first appearance); otherwise the targets' numbers, (m, K), and no labels.

    A large file is read one range of lines per core at once (``nncli.io.line_ranges``); if a range finds
    anything wrong, the file is read again as one stream, whose error names the line."""
    ranges = line_ranges(source.path, available_cores(), source.encoding)
    # At least the number of data rows: the ranges have counted the line breaks after the header already.
    bound = sum(r.line_breaks for r in ranges) + 1 if ranges else count_lines(source.path)
    X = np.empty((bound, len(features)))  # its pages are only touched as rows arrive
    shape = bound if task == "classification" else (bound, len(targets))  # class indices, or numbers
    values = np.empty(shape, dtype=np.intp if task == "classification" else np.float64)
    if len(ranges) > 1:
        with contextlib.suppress(DataError, _RangesDisagree):
            return _read_ranges(source, ranges, columns, features, targets, task, X, values)
    with contextlib.closing(read_chunks(source, rows=chunk_rows(len(features) + len(targets)))) as chunks:
        filled = _fill(chunks, 0, source, features, targets, task, X, values)
    return X[: filled.rows], values[: filled.rows], filled.labels


def read_range(source: CsvSource, line_range, first_row: int, columns, features, targets, task: str):
    """(X, values, labels) of one range of lines of a training file, as ``_read_training_rows`` gives them
    for a whole file (a worker's partition, ``nncli.distributed``); ``first_row`` is the index of the
    range's first data row in the file, so that an error names the file's own line."""
    bound = line_range.line_breaks + 1
    X = np.empty((bound, len(features)))
    shape = bound if task == "classification" else (bound, len(targets))
    values = np.empty(shape, dtype=np.intp if task == "classification" else np.float64)
    rows = chunk_rows(len(features) + len(targets))
    with (
        _long_rows_refused(),
        _explained(source, "data file"),
        open_range(source.path, line_range) as handle,
        contextlib.closing(_parsed_chunks(source, handle, rows, names=columns)) as chunks,
    ):
        shifted = ((first_row + offset, chunk) for offset, chunk in chunks)
        filled = _fill(shifted, 0, source, features, targets, task, X, values)
    return X[: filled.rows], values[: filled.rows], filled.labels


class _RangesDisagree(Exception):
    """Ranges read at once gave rows that do not follow on (blank lines), or texts pandas typed apart."""


def _read_ranges(source, ranges, columns, features, targets, task, X, values):
    first_rows = np.cumsum([0] + [r.line_breaks for r in ranges[:-1]])
    rows = max(1, chunk_rows(len(features) + 1) // len(ranges))  # as many cells in flight as one stream

    def read(part: int):
        with (
            _explained(source, "data file"),
            open_range(source.path, ranges[part]) as handle,
            contextlib.closing(_parsed_chunks(source, handle, rows, names=columns)) as chunks,
        ):
            return _fill(chunks, int(first_rows[part]), source, features, targets, task, X, values)

    with _long_rows_refused(), ThreadPoolExecutor(len(ranges), thread_name_prefix="nncli-csv") as pool:
        parts = list(pool.map(read, range(len(ranges))))
    if any(part.rows != r.line_breaks for part, r in zip(parts[:-1], ranges[:-1], strict=True)):
        raise _RangesDisagree
    if any(part.bool_features for part in parts):
        raise _RangesDisagree  # "True" is 1.0 in a range pandas types as booleans, and text beside a number
    if len(set().union(*(part.label_kinds for part in parts))) > 1:
        raise _RangesDisagree  # e.g. "1" read as a number in one range and as text beside "a" in one stream
    index: dict = {}
    for first, part in zip(first_rows, parts, strict=True):
        if part.labels:  # this range's label codes, in its own order of first appearance, to the file's
            overall = np.array([index.setdefault(label, len(index)) for label in part.labels], dtype=np.intp)
            values[first : first + part.rows] = overall[values[first : first + part.rows]]
    m = int(first_rows[-1]) + parts[-1].rows
    return X[:m], values[:m], list(index)


@dataclass(frozen=True)
class _Filled:
    rows: int
    labels: list  # the class labels met, in order of first appearance (the written targets index them)
    label_kinds: set  # how pandas typed the target column's chunks: text, bool or number
    bool_features: bool  # whether pandas typed a feature column of some chunk as booleans


def _fill(chunks, first_row: int, source, features, targets, task, X, values) -> _Filled:
    """Write the chunks' rows into X and values from ``first_row`` on."""
    index: dict = {}
    kinds = set()
    bool_features = False
    row = first_row
    for offset, chunk in chunks:
        rows = slice(row, row + len(chunk))
        bool_features = bool_features or bool((chunk.dtypes[features] == np.dtype(bool)).any())
        numeric_matrix(chunk, features, source, offset, out=X[rows])
        if task == "classification":
            codes, labels = class_codes(chunk, targets[0], source, offset)
            overall = np.array([index.setdefault(label, len(index)) for label in labels], dtype=np.intp)
            values[rows] = overall[codes]
            kinds.add(_kind(chunk[targets[0]]))
        elif task == "multilabel":
            values[rows] = label_matrix(chunk, targets, source, offset)
        else:
            values[rows] = numeric_matrix(chunk, targets, source, offset, role=TARGET)
        row += len(chunk)
    return _Filled(row - first_row, list(index), kinds, bool_features)


def _kind(column: pd.Series) -> str:
    if pd.api.types.is_bool_dtype(column):
        return "bool"
    return "number" if pd.api.types.is_numeric_dtype(column) else "text"


def _column_mean_std(
    X: np.ndarray, block: int = 512, names=None, source: CsvSource | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Per-column mean and standard deviation; the deviations from the mean are made ``block`` rows at a
    time in one small buffer that stays in the processor's cache. A constant column gets std 1, so
    standardizing it gives zeros rather than nan. A column whose sums overflow (values beyond about
    1e154) is done again by ``_scaled_mean_std``."""
    mean = X.mean(axis=0)
    squares = np.zeros(X.shape[1])
    buffer = np.empty((min(block, len(X)), X.shape[1]))
    for start in range(0, len(X), block):
        rows = X[start : start + block]
        deviation = np.subtract(rows, mean, out=buffer[: len(rows)])
        squares += np.einsum("ij,ij->j", deviation, deviation)
    std = np.sqrt(squares / max(len(X), 1))
    for j in np.flatnonzero(~(np.isfinite(mean) & np.isfinite(std))):
        name = names[j] if names is not None else f"{j + 1}"
        mean[j], std[j] = _scaled_mean_std(X[:, j], name, source)
    std[std == 0.0] = 1.0
    return mean, std


def _scaled_mean_std(values: np.ndarray, name: str, source: CsvSource | None) -> tuple[float, float]:
    """(mean, std or 1 if it is 0) of one column of finite values, computed on values / max|value| so that
    no sum overflows; a DataError naming the column when its values span more than a float can hold (then
    x − mean itself overflows)."""
    scale = float(np.max(np.abs(values))) if len(values) else 0.0
    if scale == 0.0:
        return 0.0, 1.0
    scaled = values / scale
    mean = float(scaled.mean())
    std = float(np.sqrt(np.mean((scaled - mean) ** 2)))
    if not np.isfinite(float(np.max(values)) - float(np.min(values))):
        where = f"'{source.name}'" if source is not None else "the data"
        raise DataError(
            f"{where}: column {shown(name)} spans from {np.min(values):.3g} to {np.max(values):.3g}, more "
            f"than a float can hold as one difference; rescale it (divide it by a power of ten)"
        )
    return mean * scale, (std * scale) or 1.0


def held_out_files(pre: Preprocessing, data) -> tuple:
    """(the validation file's (X, Y) or None, the test file's or None), read whole with ``pre``."""
    validation = test = None
    if data.validation is not None:
        validation = _load_split(pre, data.validation, data, "validation file (data.validation)")
    if data.test is not None:
        test = _load_split(pre, data.test, data, "test file (data.test)")
    return validation, test


def _load_split(pre: Preprocessing, path: Path, data, what: str) -> tuple[np.ndarray, np.ndarray]:
    source = CsvSource(path, data.delimiter, data.encoding)
    frame = read_csv(source, what)
    frame.columns = [str(c) for c in frame.columns]
    if len(frame) == 0:
        raise DataError(f"{what} '{source.name}' has no data rows")
    return pre.inputs(frame, source), pre.target_matrix(frame, source)


def _keep_rows(X: np.ndarray, rows: np.ndarray, block: int = 1024) -> np.ndarray:
    """X[rows] for ascending ``rows``, made in X's own memory: row rows[k] moves up to row k, ``block``
    rows at a time (each block's copy stays in the processor's cache), and the first len(rows) rows of X
    are returned. No block overwrites a row that a later block reads, since rows[k] ≥ k. Unlike X[rows],
    it makes no second matrix the size of the training split."""
    for start in range(0, len(rows), block):
        part = rows[start : start + block]
        X[start : start + len(part)] = X[part]
    return X[: len(rows)]


def split_rows(m: int, codes: np.ndarray | None, fraction: float, rng: np.random.Generator):
    """(train rows, validation rows): ``fraction`` of each class held out (of all rows for regression),
    chosen by the seeded generator; every class keeps at least one training row."""
    if fraction <= 0:
        return np.arange(m), np.arange(0)
    groups = [np.arange(m)] if codes is None else [np.flatnonzero(codes == c) for c in range(codes.max() + 1)]
    held = []
    for rows in groups:
        count = min(round(fraction * len(rows)), len(rows) - 1)
        held.append(rng.permutation(rows)[:count])
    val = np.sort(np.concatenate(held))
    train = np.setdiff1d(np.arange(m), val)
    return train, val


def write_csv(frame_columns: dict, handle, header: bool = True) -> None:
    """Write named columns as CSV (with a header row unless ``header`` is false) to a text handle."""
    pd.DataFrame(frame_columns).to_csv(handle, index=False, header=header, lineterminator="\n")


# history.csv's column of the mean over an epoch's steps of each batch's J (``train_cost`` before 0.2).
TRAIN_COST, OLD_TRAIN_COST = "train_mean_batch_cost", "train_cost"


def read_history(path: Path) -> pd.DataFrame:
    source = CsvSource(path)
    if path.is_file() and zipfile.is_zipfile(path):
        raise DataError(
            f"'{path}' is a model or checkpoint file, not a history; pass the run folder or its history.csv"
        )
    frame = read_csv(source, "history file")
    frame = frame.rename(columns={OLD_TRAIN_COST: TRAIN_COST})
    if not {"iteration", TRAIN_COST} <= set(frame.columns):
        raise DataError(
            f"'{path}' is not an nncli history file: it needs the columns iteration and {TRAIN_COST}"
        )
    return frame

"""The YAML config: loaded with a safe loader, validated completely before anything runs, then frozen.

Each section is a frozen dataclass whose fields are the YAML keys; a field's metadata holds its check and
its one-line meaning, so the defaults, the validation and the documentation come from one place.
Relative paths resolve against the config file's folder.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from nncli.engines.registry import ENGINES
from nncli.errors import ConfigError, NncliError, shown
from nncli.model.activations import ACTIVATIONS
from nncli.model.initializers import INITIALIZERS, RELU_BIAS
from nncli.model.layers import NeedsImages, build_layers, input_shape_of
from nncli.model.losses import OUTPUTS
from nncli.model.network import DTYPES
from nncli.optim.batches import BATCH_MODES
from nncli.optim.optimizers import OPTIMIZERS
from nncli.optim.schedules import schedule_problem

TASKS = ("classification", "regression")
REQUIRED = object()

Check = Callable[[Any, str, Path], Any]


def option(default: Any, check: Check, doc: str, key: str | None = None):
    """A config field: its default, the function that validates and converts it, and its meaning."""
    return field(default=default, metadata={"check": check, "doc": doc, "key": key})


# ------------------------------------------------------------------ value checks


def _fail(path: str, expected: str, value: Any) -> ConfigError:
    return ConfigError(f"{path} should be {expected}, got {shown(value)}")


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value == value


def number(low: float | None = None, high: float | None = None, low_open=False, high_open=False) -> Check:
    """A real number in the interval given (open or closed at each end)."""
    left = "(" if low_open or low is None else "["
    right = ")" if high_open or high is None else "]"
    span = f"in {left}{'-∞' if low is None else low}, {'∞' if high is None else high}{right}"

    def check(value, path, base):
        ok = _is_number(value) and abs(value) != float("inf")
        ok = ok and (low is None or (value > low if low_open else value >= low))
        ok = ok and (high is None or (value < high if high_open else value <= high))
        if not ok:
            raise _fail(path, f"a finite number {span}", value)
        return float(value)

    return check


def whole(low: int) -> Check:
    def check(value, path, base):
        if not (isinstance(value, int) and not isinstance(value, bool) and value >= low):
            raise _fail(path, f"a whole number ≥ {low}", value)
        return value

    return check


def choice(allowed) -> Check:
    names = list(allowed)

    def check(value, path, base):
        if value not in names:
            raise _fail(path, "one of " + ", ".join(names), value)
        return value

    return check


def optional(inner: Check) -> Check:
    def check(value, path, base):
        return None if value is None else inner(value, path, base)

    return check


def boolean(value, path, base):
    if not isinstance(value, bool):
        raise _fail(path, "true or false", value)
    return value


def text(value, path, base):
    if not isinstance(value, str) or not value:
        raise _fail(path, "a non-empty string", value)
    return value


def column(value, path, base):
    """A column name; YAML may read a numeric header such as 3 as a number, so numbers are allowed."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise _fail(path, "a column name", value)
    return str(value)


def columns(value, path, base):
    if not isinstance(value, list) or not value:
        raise _fail(path, "a non-empty list of column names", value)
    names = [column(v, f"{path}[{i}]", base) for i, v in enumerate(value)]
    if len(set(names)) != len(names):
        raise _fail(path, "a list of distinct column names", value)
    return tuple(names)


def column_or_columns(value, path, base):
    """One column name, or a list of distinct ones (one name alone in a list is that name)."""
    if isinstance(value, list):
        names = columns(value, path, base)
        return names[0] if len(names) == 1 else names
    return column(value, path, base)


def file_path(value, path, base):
    if not isinstance(value, str) or not value:
        raise _fail(path, "a file path", value)
    return (base / Path(value).expanduser()).resolve()


def layer_sizes(value, path, base):
    if not isinstance(value, list) or not all(
        isinstance(s, int) and not isinstance(s, bool) and s >= 1 for s in value
    ):
        raise _fail(path, "a list of whole numbers ≥ 1 (one per hidden layer; [] for none)", value)
    return tuple(value)


def image_shape(value, path, base):
    """An image's shape [C, H, W] or [H, W] (one channel), as (C, H, W)."""
    if not (isinstance(value, list) and len(value) in (2, 3)):
        raise _fail(path, "an image's shape [C, H, W], or [H, W] for one channel", value)
    try:
        return input_shape_of(value)
    except NncliError:
        raise _fail(path, "an image's shape [C, H, W] or [H, W] of whole numbers ≥ 1", value) from None


def layer_list(value, path, base):
    """A non-empty list of layer specifications (mappings); each is checked against the shapes it reads
    once the whole config is read (``check_layers``)."""
    if not isinstance(value, list) or not value or not all(isinstance(spec, dict) for spec in value):
        raise _fail(path, "a list of layer mappings such as [{type: conv, filters: 8, kernel: 3}]", value)
    return tuple(dict(spec) for spec in value)


def delimiter(value, path, base):
    if not isinstance(value, str) or len(value) != 1 or value in '\r\n"':
        raise _fail(path, "one character such as ',' ';' or '\\t'", value)
    return value


def schedule(value, path, base):
    """null, or a mapping {type: name, its keys…} (``nncli.optim.schedules``)."""
    problem = schedule_problem(value, path)
    if problem is not None:
        raise ConfigError(problem)
    return None if value is None else dict(value)


@dataclass(frozen=True)
class EarlyStopping:
    patience: int


def early_stopping(value, path, base):
    """null, or a mapping {patience: N}."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise _fail(path, "null or a mapping such as {patience: 10}", value)
    _reject_unknown(value, {"patience"}, path)
    return EarlyStopping(whole(1)(value.get("patience", 10), f"{path}.patience", base))


@dataclass(frozen=True)
class DaskSettings:
    """training.dask: where the workers are and how the data is cut (``nncli.distributed``)."""

    scheduler: str | None = None  # null: a LocalCluster on this machine; or an address, tcp://host:8786
    workers: int | None = None  # LocalCluster only; null = one per core
    threads_per_worker: int = 1
    partition_rows: int = 65536  # rows per partition: a fixed grid, whatever the number of workers
    processes: bool = True  # LocalCluster only: workers as processes (true) or threads of this one


DASK_KEYS = {
    "scheduler": optional(text),
    "workers": optional(whole(1)),
    "threads_per_worker": whole(1),
    "partition_rows": whole(1),
    "processes": boolean,
}


def dask_settings(value, path, base):
    """A mapping of ``DaskSettings``' keys, each optional."""
    if value is None:
        return DaskSettings()
    if not isinstance(value, dict):
        raise _fail(path, "a mapping such as {scheduler: null, partition_rows: 65536}", value)
    _reject_unknown(value, set(DASK_KEYS), path)
    return DaskSettings(
        **{key: check(value[key], f"{path}.{key}", base) for key, check in DASK_KEYS.items() if key in value}
    )


BACKENDS = ("local", "dask")


# ------------------------------------------------------------------ sections


@dataclass(frozen=True)
class DataConfig:
    path: Path = option(REQUIRED, file_path, "CSV file with a header row (required)")
    target: str | tuple[str, ...] | None = option(
        None,
        optional(column_or_columns),
        "target column, or a list of them (several 0/1 labels, or numbers with task: regression); default: "
        "the last column",
    )
    features: tuple[str, ...] | None = option(
        None, optional(columns), "feature columns; default: all columns but the target"
    )
    task: str = option("classification", choice(TASKS), "classification or regression")
    validation_split: float = option(
        0.0,
        number(0, 1, high_open=True),
        "fraction of the training rows held out for validation (stratified, seeded); 0 = none",
    )
    validation: Path | None = option(None, optional(file_path), "a separate validation CSV instead")
    test: Path | None = option(None, optional(file_path), "a test CSV, evaluated once after training")
    standardize: bool = option(
        True, boolean, "standardize features (and a regression target) with the training split's mean/std"
    )
    input_shape: tuple[int, int, int] | None = option(
        None,
        optional(image_shape),
        "each row's features, in file order, read as an image [C, H, W] or [H, W] (channels first, "
        "row-major); null = a vector",
    )
    delimiter: str = option(",", delimiter, "the CSV field separator")
    encoding: str = option("utf-8", text, "the CSV files' text encoding")


@dataclass(frozen=True)
class ModelConfig:
    hidden: tuple[int, ...] = option(
        (8,), layer_sizes, "hidden layer sizes; input and output sizes come from the data"
    )
    layers: tuple[dict, ...] | None = option(
        None,
        optional(layer_list),
        "the hidden layers as a list instead of model.hidden: "
        "{type: conv|maxpool|avgpool|flatten|dense, …} (see Layers)",
    )
    activation: str = option(
        "sigmoid",
        choice(ACTIVATIONS),
        "hidden units' g (a layer may name its own): " + ", ".join(ACTIVATIONS),
    )
    output: str = option(
        "auto",
        choice(["auto", *OUTPUTS]),
        "output units and loss: auto (2 classes: one sigmoid; more: softmax; regression: linear), "
        + ", ".join(OUTPUTS),
    )
    initializer: str = option(
        "xavier", choice(INITIALIZERS), "weights' initializer: " + ", ".join(INITIALIZERS)
    )
    init_scale: float | None = option(
        None, optional(number(0, low_open=True)), "ε for uniform, σ for normal; null = the lecture's default"
    )
    relu_bias: float = option(RELU_BIAS, number(), "initial bias in front of relu and leaky_relu units")
    dtype: str = option("float64", choice(DTYPES), "float64 or float32")


@dataclass(frozen=True)
class TrainingConfig:
    alpha: float = option(0.1, number(0, low_open=True), "α, the learning rate")
    lambda_: float = option(0.0, number(0), "λ, the L2 regularization strength", key="lambda")
    optimizer: str = option(
        "momentum", choice(OPTIMIZERS), "how D moves Θ: " + ", ".join(OPTIMIZERS) + " (see nncli.optim)"
    )
    beta: float = option(
        0.9,
        number(0, 1, high_open=True),
        "β: momentum's and Nesterov's β (0 = plain gradient descent), Adam's β₁",
    )
    beta2: float = option(0.999, number(0, 1, high_open=True), "β₂, Adam's second-moment decay")
    epsilon: float = option(1e-8, number(0, low_open=True), "ε, added to Adam's √v̂")
    schedule: dict | None = option(
        None, schedule, "null (constant α), or {type: step|exponential|cosine|invscaling|plateau, …}"
    )
    clip_norm: float | None = option(
        None,
        optional(number(0, low_open=True)),
        "clip D to this global L2 norm before each update; null = never",
    )
    batch: str = option("mini-batch", choice(BATCH_MODES), ", ".join(BATCH_MODES))
    batch_size: int = option(32, whole(1), "examples per step in mini-batch mode")
    epochs: int = option(100, whole(1), "passes over the training split")
    seed: int = option(0, whole(0), "seed of the weights, the split and the shuffling")
    early_stopping: EarlyStopping | None = option(
        None, early_stopping, "null, or {patience: N}: stop when validation J has not improved for N epochs"
    )
    engine: str = option(
        "auto", choice(ENGINES), "auto, numpy or compiled: NumPy calls, or the step compiled by numba"
    )
    backend: str = option(
        "local",
        choice(BACKENDS),
        "local, or dask: data-parallel training on a Dask cluster (needs nncli[dask])",
    )
    dask: DaskSettings = option(
        DaskSettings(),
        dask_settings,
        "{scheduler, workers, threads_per_worker, partition_rows, processes}: the cluster and the data grid",
    )


@dataclass(frozen=True)
class OutputConfig:
    dir: Path = option(
        None,
        optional(file_path),
        "folder for model.npz, history.csv, metrics.json; default: runs/<config name>",
    )
    checkpoint_every: int | None = option(
        10, optional(whole(1)), "write checkpoint.npz (and the model) every N epochs; null = only at the end"
    )


@dataclass(frozen=True)
class Config:
    data: DataConfig
    model: ModelConfig
    training: TrainingConfig
    output: OutputConfig
    source: Path | None = None
    from_command_line: frozenset[str] = frozenset()  # key paths that --set and the flags gave
    epochs_in_file: Any = None  # training.epochs as the file gives it, before --set and --epochs

    def to_dict(self) -> dict:
        """The resolved config as plain YAML/JSON values (paths as strings), keyed as in the file; a config
        itself: model.hidden is left out where model.layers gives the layers."""
        document = {
            section.name: {
                _key(f): _plain(getattr(getattr(self, section.name), f.name))
                for f in dataclasses.fields(section.type_class)
            }
            for section in SECTIONS
        }
        if self.model.layers is not None:
            del document["model"]["hidden"]
        return document


@dataclass(frozen=True)
class _Section:
    name: str
    type_class: type


SECTIONS = (
    _Section("data", DataConfig),
    _Section("model", ModelConfig),
    _Section("training", TrainingConfig),
    _Section("output", OutputConfig),
)


def _key(f: dataclasses.Field) -> str:
    return f.metadata["key"] or f.name


def _plain(value):
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, tuple):
        return list(value)
    if dataclasses.is_dataclass(value):
        return dataclasses.asdict(value)
    return value


def reference() -> list[tuple[str, Any, str]]:
    """(key path, default, meaning) for every config key, in file order; the README's table comes from it."""
    rows = []
    for section in SECTIONS:
        for f in dataclasses.fields(section.type_class):
            default = None if f.default is REQUIRED else _plain(f.default)
            rows.append((f"{section.name}.{_key(f)}", default, f.metadata["doc"]))
    return rows


# ------------------------------------------------------------------ loading

# Bounds on a config, checked before it is built: a real config is a few hundred bytes of a few dozen values.
MAX_CONFIG_BYTES = 1 << 20
MAX_DEPTH = 32  # nested mappings and lists
MAX_VALUES = 100_000  # scalars, mappings and lists, counting each alias as what it stands for

_YAML_12_FLOAT = re.compile(
    r"^[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?$|^[-+]?\.(?:inf|Inf|INF)$|^\.(?:nan|NaN|NAN)$"
)


class _Loader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):
    """PyYAML's safe loader (libyaml's parser where it is built in), with two changes:

    - floats as YAML 1.2 and JSON write them: ``1e-3`` is a number, not the text YAML 1.1 makes of it;
    - a mapping that names a key twice is refused, naming the key and both lines (YAML says keys are
      unique; PyYAML would keep the last silently)."""

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            seen: dict = {}
            for key_node, _ in node.value:
                if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node)
                line = key_node.start_mark.line + 1
                if key in seen:
                    raise ConfigError(
                        f"{self._where} names the key {shown(key)} twice, on lines {seen[key]} and {line}; "
                        f"keep one of them"
                    )
                seen[key] = line
        return super().construct_mapping(node, deep)


_Loader.add_implicit_resolver("tag:yaml.org,2002:float", _YAML_12_FLOAT, list("-+.0123456789"))


def _read_config_stdin() -> str:
    """The config piped into standard input, read no further than ``MAX_CONFIG_BYTES``."""
    if sys.stdin is None:
        raise ConfigError("the config is to come from standard input (-), but standard input is closed")
    return _decoded(sys.stdin.buffer.read(MAX_CONFIG_BYTES + 1), "the config on standard input")


def _decoded(data: bytes, what: str) -> str:
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError(
            f"{what} is larger than {MAX_CONFIG_BYTES // 1024} KiB; a config lists a few dozen settings, so "
            f"check that this is the file you meant"
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ConfigError(f"{what} cannot be read as UTF-8 text (byte {error.start})") from None


def _read_config_text(path: Path) -> str:
    """The config file's text, read no further than ``MAX_CONFIG_BYTES`` (it may be a device or a pipe)."""
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_CONFIG_BYTES + 1)
    except FileNotFoundError:
        raise ConfigError(f"config file '{path}' does not exist") from None
    except IsADirectoryError:
        raise ConfigError(f"config file '{path}' is a folder; pass the YAML file itself") from None
    except OSError as error:
        raise ConfigError(f"config file '{path}' cannot be read ({error.strerror or error})") from None
    return _decoded(data, f"config file '{path}'")


def as_yaml(document: dict) -> str:
    """A resolved config (``Config.to_dict``) as YAML text, keys in the order of the file."""
    return yaml.safe_dump(document, sort_keys=False, allow_unicode=True)


def yaml_scalar(text: str) -> str:
    """``text`` as a YAML scalar: plain where YAML reads it back as the same string, else double-quoted."""
    try:
        plain = yaml.safe_load(text) == text and text.strip() == text and not set(text) & set(":#'\"")
    except yaml.YAMLError:
        plain = False
    return text if plain else json.dumps(text, ensure_ascii=False)


def parse_yaml(text: str, where: str) -> Any:
    """The YAML value in ``text`` (named ``where`` in messages), once its events show it is within
    ``MAX_DEPTH`` and ``MAX_VALUES``: so a small file cannot expand, through aliases, into more values than
    memory holds, nor nest deeper than the parser's recursion."""
    try:
        _check_shape(text, where)
        loader = _Loader(text)
        loader._where = where
        try:
            return loader.get_single_data()
        finally:
            loader.dispose()
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        line = f" line {mark.line + 1}" if mark is not None else ""
        problem = getattr(error, "problem", None) or "a syntax error"
        raise ConfigError(f"{where}{line} is not valid YAML ({problem}); fix the syntax there") from None


def _check_shape(text: str, where: str) -> None:
    """Walk the YAML events of ``text`` (no values are built) counting depth and values, aliases expanded."""
    sizes: dict[str, int] = {}  # anchor -> values its node stands for
    open_nodes: list[list] = []  # [values so far, anchor] per mapping or list not yet ended
    total = 0
    for event in yaml.parse(text, Loader=_Loader):
        if isinstance(event, yaml.AliasEvent):
            if event.anchor not in sizes:
                raise ConfigError(
                    f"{where} line {event.start_mark.line + 1}: the alias *{shown(event.anchor)} refers to "
                    f"no complete value (an undefined anchor, or one that contains this alias)"
                )
            count = sizes[event.anchor]
        elif isinstance(event, yaml.ScalarEvent):
            count = 1
            if event.anchor is not None:
                sizes[event.anchor] = 1
        elif isinstance(event, yaml.SequenceStartEvent | yaml.MappingStartEvent):
            open_nodes.append([1, event.anchor])
            if len(open_nodes) > MAX_DEPTH:
                raise ConfigError(
                    f"{where} line {event.start_mark.line + 1} nests mappings and lists more than "
                    f"{MAX_DEPTH} deep; a config needs three levels"
                )
            total += 1
            continue
        elif isinstance(event, yaml.SequenceEndEvent | yaml.MappingEndEvent):
            count, anchor = open_nodes.pop()
            if anchor is not None:
                sizes[anchor] = count
            if open_nodes:
                open_nodes[-1][0] += count
            continue
        else:
            continue
        total += count
        if open_nodes:
            open_nodes[-1][0] += count
        if total > MAX_VALUES:
            raise ConfigError(
                f"{where} holds more than {MAX_VALUES:,} values by line {event.start_mark.line + 1}, "
                f"counting each alias as the values it stands for; a config needs a few dozen"
            )


def load_config(path: str | Path, overrides: list[str] = (), values: dict[str, Any] | None = None) -> Config:
    """Read, override and validate a config file.

    ``overrides`` are ``--set KEY=VALUE`` strings (VALUE read as YAML); ``values`` maps key paths to
    values already parsed (``--epochs``, ``--seed``, ``--out``). Both win over the file. A path of ``-``
    reads the config from standard input; its relative paths then start from the current folder, and
    output.dir defaults to runs/stdin.
    """
    if str(path) == "-":
        return config_from_text(_read_config_stdin(), Path("stdin"), Path.cwd(), overrides, values)
    path = Path(path)
    if path.suffix.lower() in (".csv", ".tsv"):
        raise ConfigError(
            f"'{path}' is a CSV file; nncli expects a YAML config whose data.path names it "
            f"(data: {{path: {path.name}}}, then model:, training:, output:)"
        )
    return config_from_text(_read_config_text(path), path, path.parent.resolve(), overrides, values)


def config_from_text(
    text: str, path: Path, base: Path, overrides: list[str] = (), values: dict[str, Any] | None = None
) -> Config:
    """``load_config`` for a config's text, named ``path`` in messages, its relative paths from ``base``."""
    document = parse_yaml(text, str(path))
    if document is None:
        document = {}
    if not isinstance(document, dict):
        raise ConfigError(
            f"{path} should hold a YAML mapping (data:, model:, training:, output:), "
            f"got a {type(document).__name__}"
        )
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set expects KEY=VALUE such as training.alpha=0.05, got {shown(item)}")
        _assign(document, key.strip(), parse_yaml(raw, f"--set {shown(item)}"), "--set ")
    training = document.get("training")
    epochs_in_file = training.get("epochs") if isinstance(training, dict) else None
    given = {item.partition("=")[0].strip() for item in overrides}
    for key, value in (values or {}).items():
        _assign(document, key, value, "")
        given.add(key)
    config = validate(document, base, source=path)
    return dataclasses.replace(config, from_command_line=frozenset(given), epochs_in_file=epochs_in_file)


def validate(document: dict, base: Path, source: Path | None = None) -> Config:
    """A frozen Config from a parsed YAML mapping; relative paths resolve against ``base``."""
    _reject_unknown(document, {s.name for s in SECTIONS}, "")
    sections = {}
    for section in SECTIONS:
        given = document.get(section.name) or {}
        if not isinstance(given, dict):
            raise ConfigError(f"{section.name} should be a mapping of keys, got {shown(given)}")
        fields = {_key(f): f for f in dataclasses.fields(section.type_class)}
        _reject_unknown(given, set(fields), section.name)
        values = {}
        for key, f in fields.items():
            path = f"{section.name}.{key}"
            if key not in given:
                if f.default is REQUIRED:
                    raise ConfigError(f"{path} is required: {f.metadata['doc']}")
                values[f.name] = f.default
            else:
                values[f.name] = f.metadata["check"](given[key], path, base)
        sections[section.name] = section.type_class(**values)
    data = sections["data"]
    if data.validation is not None and data.validation_split > 0:
        raise ConfigError("data.validation and data.validation_split are both set; keep one of them")
    model = sections["model"]
    if model.layers is not None and "hidden" in (document.get("model") or {}):
        raise ConfigError("model.hidden and model.layers are both set; keep one of them")
    check_layers(model, data.input_shape)
    training = sections["training"]
    if training.backend == "dask" and training.batch == "stochastic":
        raise ConfigError(
            "training.batch stochastic cannot run on the dask backend: a step of one example would cost a "
            "round trip to every worker; use batch or mini-batch there"
        )
    output = sections["output"]
    if output.dir is None:
        stem = source.stem if source is not None else "run"
        sections["output"] = dataclasses.replace(output, dir=Path("runs") / stem)
    return Config(**sections, source=source)


def check_layers(model: ModelConfig, input_shape: tuple[int, int, int] | None) -> None:
    """Refuse model.layers that cannot work on inputs of ``input_shape`` (unknown until the data is read
    when null: a vector), naming the layer by its position and type and the shapes."""
    if model.layers is None:
        return
    try:
        build_layers(input_shape or (1,), list(model.layers), 1, ACTIVATIONS[model.activation])
    except NeedsImages as error:
        if input_shape is None:
            raise ConfigError(
                f"model.layers: {error.where} reads images, so data.input_shape should give their shape "
                f"[C, H, W] or [H, W]"
            ) from None
        raise ConfigError(f"model.layers: {error}") from None
    except NncliError as error:
        raise ConfigError(f"model.layers: {error}") from None


def _assign(document: dict, dotted: str, value: Any, origin: str) -> None:
    parts = dotted.split(".")
    node = document
    for depth, part in enumerate(parts[:-1]):
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            raise ConfigError(f"{origin}{dotted}: {'.'.join(parts[: depth + 1])} is not a section")
        node = child
    node[parts[-1]] = value


def _all_key_paths() -> list[str]:
    return [path for path, _, _ in reference()]


def _reject_unknown(given: dict, allowed: set[str], section: str) -> None:
    for key in given:
        if key in allowed:
            continue
        where = shown(f"{section}.{key}" if section else str(key))
        hint = ""
        close = difflib.get_close_matches(str(key), sorted(allowed), n=1, cutoff=0.6)
        elsewhere = [p for p in _all_key_paths() if p.endswith(f".{key}") and not p.startswith(f"{section}.")]
        if close:
            hint = f"; did you mean {section + '.' if section else ''}{close[0]}?"
        elif elsewhere:
            hint = f"; it belongs in {elsewhere[0]}"
        else:
            hint = "; allowed here: " + ", ".join(sorted(allowed))
        raise ConfigError(f"unknown config key {where}{hint}")

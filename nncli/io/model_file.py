"""The model file and the checkpoint: NumPy .npz archives that never need pickle to load.

Arrays ``W1``, ``b1``, ``W2``, ``b2``, … hold the parameters of each layer that has them, in order: a dense
layer's W (s_{l+1}, s_l) and b (s_{l+1},), a convolution's kernels (F, C, kh, kw) (PyTorch's layout) and b
(F,). ``meta`` is a 0-d string array holding JSON: the format and its version, the layer sizes, the
input's shape and the layer specifications (``Network.from_layers``), the default activation, output,
dtype, the columns, classes and standardization, the resolved config, the nncli version and how training
went (``training``: epochs, engine, stop reason, best epoch, seconds, J and the metric per split; files
written before it was kept lack it).
``numpy.load(path, allow_pickle=False)`` reads it; so does any other npz reader.

A checkpoint holds the training state as float arrays (θ, the optimizer's state by name, the best θ, the
history) and its JSON ``meta`` (format, the run's fingerprint, the trainer's counters and generator state).
"""

from __future__ import annotations

import codecs
import io
import json
import math
import re
import zipfile
from pathlib import Path

import numpy as np

from nncli.errors import ModelFileError, shown
from nncli.io.files import atomic_write
from nncli.model.activations import ACTIVATIONS
from nncli.model.losses import OUTPUTS

FORMAT = "nncli-model"
CHECKPOINT_FORMAT = "nncli-checkpoint"
FORMAT_VERSION = 2  # 2: the layers and the input's shape in meta; kernels (F, C, kh, kw)
SEVERAL_TARGETS_VERSION = 3  # 3: as 2, with several targets (target_names and per-target lists)
READABLE_VERSIONS = (1, 2, 3)  # 1: a stack of dense layers of one activation
CHECKPOINT_FORMAT_VERSION = 2  # 2: the fingerprint covers the preprocessing; the epochs a run reaches

# Bounds read from the archive's directory and the arrays' headers before anything is decompressed.
MAX_META_BYTES = 1 << 20
MAX_MEMBERS = 1024
MAX_RATIO = 100  # uncompressed bytes per compressed byte, beyond a first MiB (nncli itself stores)


def _whole(low: int):
    return lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= low


def _finite(v) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def _names(v) -> bool:
    return isinstance(v, list) and all(isinstance(name, str) for name in v) and len(set(v)) == len(v)


def _numbers(v) -> bool:
    return isinstance(v, list) and all(_finite(x) for x in v)


def _classes(v) -> bool:
    labels = isinstance(v, list) and all(
        isinstance(x, str) or (isinstance(x, int) and not isinstance(x, bool)) for x in v
    )
    return v is None or (labels and len(set(map(repr, v))) == len(v))


def _config(v) -> bool:
    """The resolved config the model was trained with; predict reads its CSV format from it."""
    if not isinstance(v, dict):
        return False
    data = v.get("data", {})
    if not isinstance(data, dict):
        return False
    delimiter, encoding = data.get("delimiter", ","), data.get("encoding", "utf-8")
    if not (isinstance(delimiter, str) and len(delimiter) == 1 and delimiter not in '\r\n"'):
        return False
    if not isinstance(encoding, str):
        return False
    try:
        codecs.lookup(encoding)
    except LookupError:
        return False
    return True


# Every key of a model's meta record, with the check its value must pass and what it should be.
MODEL_META = {
    "layer_sizes": (lambda v: isinstance(v, list) and len(v) >= 2 and all(map(_whole(1), v)), "sizes ≥ 1"),
    "activation": (lambda v: isinstance(v, str) and v in ACTIVATIONS, "an activation's name"),
    "input_shape": (
        lambda v: isinstance(v, list) and len(v) in (1, 3) and all(map(_whole(1), v)),
        "[n] or [C, H, W], whole numbers ≥ 1",
    ),
    "layers": (
        lambda v: isinstance(v, list) and len(v) <= MAX_MEMBERS and all(isinstance(s, dict) for s in v),
        "a list of layer specifications",
    ),
    "output": (lambda v: isinstance(v, str) and v in OUTPUTS, "an output's name"),
    "feature_names": (_names, "distinct column names"),
    "target_name": (lambda v: isinstance(v, str), "a column name"),
    "task": (
        lambda v: isinstance(v, str) and v in ("classification", "regression"),
        "classification or regression",
    ),
    "classes": (_classes, "null or distinct labels"),
    "output_units": (_whole(1), "a whole number ≥ 1"),
    "mean": (_numbers, "finite numbers"),
    "std": (lambda v: _numbers(v) and all(x > 0 for x in v), "finite numbers > 0"),
    "target_mean": (_finite, "a finite number"),
    "target_std": (lambda v: _finite(v) and v > 0, "a finite number > 0"),
    "config": (_config, "the resolved config, with a one-character data.delimiter and a known data.encoding"),
}


FORMAT_2_KEYS = ("input_shape", "layers")
# What format 3 (several targets) holds instead of format 2's one target.
SEVERAL_TARGETS_META = {
    "target_names": (lambda v: _names(v) and len(v) >= 2, "two or more distinct column names"),
    "task": (
        lambda v: isinstance(v, str) and v in ("multilabel", "regression"),
        "multilabel or regression",
    ),
    "target_mean": (_numbers, "finite numbers"),
    "target_std": (lambda v: _numbers(v) and all(x > 0 for x in v), "finite numbers > 0"),
}


def _optional(check):
    return lambda v: v is None or check(v)


def _split_figures(v) -> bool:
    """One split's figures: rows, J and the metric, each a number or null (a J that diverged)."""
    return isinstance(v, dict) and all(isinstance(k, str) and (x is None or _finite(x)) for k, x in v.items())


_TRAINING_FIELDS = {
    "epochs": _whole(0),
    "engine": _optional(lambda v: isinstance(v, str)),
    "stop_reason": _optional(lambda v: isinstance(v, str)),
    "best_epoch": _optional(_whole(1)),
    "seconds": _optional(_finite),
    "metric": _optional(lambda v: isinstance(v, str)),
    "splits": _optional(
        lambda v: (
            isinstance(v, dict)
            and set(v) <= {"train", "validation", "test"}
            and all(x is None or _split_figures(x) for x in v.values())
        )
    ),
}


def _training(v) -> bool:
    """How the weights were trained (files written before nncli kept it lack the key)."""
    return (
        isinstance(v, dict)
        and set(v) == set(_TRAINING_FIELDS)
        and all(check(v[key]) for key, check in _TRAINING_FIELDS.items())
    )


# Keys a model's meta record may lack, with their checks where they are present.
OPTIONAL_META = {
    "training": (_training, "a record of the epochs, the engine, the stop and the final figures")
}


def save_model(path: Path, weights: list[np.ndarray], biases: list[np.ndarray], meta: dict) -> None:
    """Write the model archive atomically; ``meta`` gains the format fields."""
    arrays = {}
    for number, (W, b) in enumerate(zip(weights, biases, strict=True), start=1):
        arrays[f"W{number}"] = W
        arrays[f"b{number}"] = b
    version = SEVERAL_TARGETS_VERSION if "target_names" in meta else FORMAT_VERSION
    _write_archive(path, arrays, {"format": FORMAT, "format_version": version, **meta})


def model_path(path: Path) -> Path:
    """The model file ``path`` names: itself, or the model.npz inside a run folder."""
    path = Path(path)
    if path.is_dir():
        inside = path / "model.npz"
        if inside.is_file():
            return inside
        raise ModelFileError(f"'{path}' is a folder with no model.npz in it; pass the model file nncli wrote")
    if not path.exists():
        raise ModelFileError(f"model file '{path}' does not exist")
    if not path.is_file():
        raise ModelFileError(f"model file '{path}' is not a regular file; pass the model.npz nncli wrote")
    return path


def load_model(path: Path) -> tuple[list[np.ndarray], list[np.ndarray], dict]:
    """(weights, biases, meta) from an nncli model file (or a run folder holding one); a ModelFileError
    for anything else."""
    path = model_path(path)
    arrays, meta = _read_archive(
        path, FORMAT, READABLE_VERSIONS, "model", "the model.npz that 'nncli train' writes", _MODEL_ARRAY
    )
    checks = dict(MODEL_META)
    if meta["format_version"] == SEVERAL_TARGETS_VERSION:
        del checks["target_name"]
        checks.update(SEVERAL_TARGETS_META)
    for key, (check, expected) in checks.items():
        if key in FORMAT_2_KEYS and meta["format_version"] == 1:
            continue
        if key not in meta or not check(meta[key]):
            raise ModelFileError(
                f"'{path}' is damaged: its meta record's {key!r} should be {expected}, "
                f"got {shown(meta.get(key))}"
            )
    for key, (check, expected) in OPTIONAL_META.items():
        if key in meta and not check(meta[key]):
            raise ModelFileError(
                f"'{path}' is damaged: its meta record's {key!r} should be {expected}, "
                f"got {shown(meta.get(key))}"
            )
    layers = len(meta["layer_sizes"]) - 1
    if "layers" in meta:  # format 2: layers without parameters (pooling, flatten) hold no arrays
        layers = sum(1 for name in arrays if name.startswith("W"))
    expected = {f"{kind}{n}" for n in range(1, layers + 1) for kind in "Wb"}
    if set(arrays) != expected:
        raise ModelFileError(
            f"'{path}' is damaged: it should hold the arrays {sorted(expected)}, it holds {sorted(arrays)}"
        )
    weights = [arrays[f"W{n}"] for n in range(1, layers + 1)]
    biases = [arrays[f"b{n}"] for n in range(1, layers + 1)]
    return weights, biases, meta


def data_format(meta: dict) -> tuple[str, str]:
    """(delimiter, encoding) of the CSV files the model was trained on, from a checked meta record."""
    data = meta["config"].get("data", {})
    return data.get("delimiter", ","), data.get("encoding", "utf-8")


def save_checkpoint(path: Path, arrays: dict[str, np.ndarray], meta: dict) -> None:
    """Write a checkpoint archive (named arrays and a JSON record) atomically."""
    _write_archive(
        path, arrays, {"format": CHECKPOINT_FORMAT, "format_version": CHECKPOINT_FORMAT_VERSION, **meta}
    )


def load_checkpoint(path: Path) -> tuple[dict[str, np.ndarray], dict]:
    """(arrays, meta) from an nncli checkpoint; a ModelFileError for anything else."""
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"there is no checkpoint '{path}' to resume from; train without --resume")
    return _read_archive(
        path,
        CHECKPOINT_FORMAT,
        (CHECKPOINT_FORMAT_VERSION,),
        "checkpoint",
        "the checkpoint.npz that 'nncli train' writes",
        _CHECKPOINT_ARRAY,
    )


_MODEL_ARRAY = re.compile(r"[Wb][1-9][0-9]{0,3}")
_CHECKPOINT_ARRAY = re.compile(r"[a-z_]{1,40}")


def _write_archive(path: Path, arrays: dict[str, np.ndarray], meta: dict) -> None:
    buffer = io.BytesIO()
    np.savez(buffer, meta=np.array(json.dumps(meta, allow_nan=False)), **arrays)
    atomic_write(path, lambda handle: handle.write(buffer.getvalue()))


def _read_archive(
    path: Path, expected_format: str, versions: tuple[int, ...], kind: str, hint: str, array_name: re.Pattern
) -> tuple[dict[str, np.ndarray], dict]:
    """The float arrays and the meta record of an archive nncli wrote, never unpickling anything.

    Member names, sizes, dtypes and shapes are checked from the zip directory and the .npy headers
    before any member is read in full, so a crafted archive cannot make nncli decompress more than
    ``MAX_RATIO`` times its own size, nor read a meta record larger than ``MAX_META_BYTES``."""
    not_ours = f"'{path}' is not an nncli {kind} file (expected {hint})"
    damaged = f"'{path}' is damaged and cannot be read as an nncli {kind} file"
    if not zipfile.is_zipfile(path):
        raise ModelFileError(not_ours)
    try:
        with zipfile.ZipFile(path) as archive:
            members = _checked_members(archive, path, not_ours, array_name)
            arrays = {name: _read_member(archive, info) for name, info in members.items()}
    except ModelFileError:
        raise
    except Exception:  # a damaged archive can fail in the zip, zlib or npy layers: all mean the same here
        raise ModelFileError(damaged) from None
    meta_array = arrays.pop("meta")
    try:
        meta = json.loads(str(meta_array))
    except (ValueError, RecursionError):
        raise ModelFileError(f"'{path}' is damaged: its meta record is not valid JSON") from None
    if not isinstance(meta, dict) or meta.get("format") != expected_format:
        raise ModelFileError(not_ours)
    version = meta.get("format_version")
    if isinstance(version, bool) or version not in versions:
        readable = " and ".join(map(str, versions))
        raise ModelFileError(
            f"'{path}' is {kind} format version {shown(version)}; this nncli reads version {readable} only, "
            f"so retrain (or train with --overwrite), or use the nncli that wrote it"
        )
    return arrays, meta


def _checked_members(archive: zipfile.ZipFile, path: Path, not_ours: str, array_name: re.Pattern) -> dict:
    """The archive's members by array name, each checked against the bounds before it is read."""
    infos = archive.infolist()
    if len(infos) > MAX_MEMBERS:
        raise ModelFileError(f"'{path}' is damaged: it holds {len(infos)} members, more than {MAX_MEMBERS}")
    members = {}
    for info in infos:
        name = info.filename.removesuffix(".npy")
        if not info.filename.endswith(".npy") or not (name == "meta" or array_name.fullmatch(name)):
            raise ModelFileError(f"'{path}' is damaged: it holds an unexpected member {shown(info.filename)}")
        if name in members:
            raise ModelFileError(f"'{path}' is damaged: it holds the member {name!r} twice")
        if info.file_size > (1 << 20) + MAX_RATIO * info.compress_size:
            raise ModelFileError(
                f"'{path}' is damaged: its member {name!r} would expand to {info.file_size:,} bytes "
                f"from {info.compress_size:,}"
            )
        if name == "meta" and info.file_size > MAX_META_BYTES:
            raise ModelFileError(
                f"'{path}' is damaged: its meta record is {info.file_size:,} bytes, "
                f"more than {MAX_META_BYTES:,}"
            )
        members[name] = info
    if "meta" not in members:
        raise ModelFileError(not_ours)
    for name, info in members.items():
        shape, dtype = _header(archive, info)
        expected = "a text record" if name == "meta" else "floating-point"
        ok = (dtype.kind == "U" and shape == ()) if name == "meta" else dtype in (np.float32, np.float64)
        if not ok:
            raise ModelFileError(f"'{path}' is damaged: array {name} should be {expected}, got {dtype}")
        if len(shape) > 4 or math.prod(shape) * dtype.itemsize > info.file_size:
            raise ModelFileError(
                f"'{path}' is damaged: array {name}'s shape {shape} does not fit its {info.file_size:,} bytes"
            )
    return members


def _header(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> tuple[tuple[int, ...], np.dtype]:
    """(shape, dtype) from a member's .npy header, refusing object arrays (they could run code)."""
    with archive.open(info) as handle:
        major, _ = np.lib.format.read_magic(handle)
        read = np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
        shape, _, dtype = read(handle, max_header_size=10_000)
    if dtype.hasobject:
        raise ModelFileError(
            f"'{archive.filename}' holds object arrays, which nncli never loads (they could run code)"
        )
    return shape, dtype


def _read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> np.ndarray:
    with archive.open(info) as handle:
        return np.lib.format.read_array(handle, allow_pickle=False)

"""The model file and the checkpoint: NumPy .npz archives that never need pickle to load.

Arrays ``W1``, ``b1``, …, ``W{L-1}``, ``b{L-1}`` hold the engine's Θ^(l) (W (s_{l+1}, s_l), b
(s_{l+1},)); ``meta`` is a 0-d string array holding JSON: the format and its version, the layer sizes,
activation, output, dtype, the columns, classes and standardization, the resolved config and the nncli
version. ``numpy.load(path, allow_pickle=False)`` reads it; so does any other npz reader.

A checkpoint holds the training state as float arrays (θ, the momentum displacement, the best θ, the
history) and its JSON ``meta`` (format, the run's fingerprint, the trainer's counters and generator state).
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import numpy as np

from nncli.errors import ModelFileError
from nncli.files import atomic_write

FORMAT = "nncli-model"
CHECKPOINT_FORMAT = "nncli-checkpoint"
FORMAT_VERSION = 1
REQUIRED_META = {
    "format": str,
    "format_version": int,
    "layer_sizes": list,
    "activation": str,
    "output": str,
    "feature_names": list,
    "target_name": str,
    "task": str,
    "mean": list,
    "std": list,
}


def save_model(path: Path, weights: list[np.ndarray], biases: list[np.ndarray], meta: dict) -> None:
    """Write the model archive atomically; ``meta`` gains the format fields."""
    arrays = {}
    for number, (W, b) in enumerate(zip(weights, biases, strict=True), start=1):
        arrays[f"W{number}"] = W
        arrays[f"b{number}"] = b
    _write_archive(path, arrays, {"format": FORMAT, "format_version": FORMAT_VERSION, **meta})


def load_model(path: Path) -> tuple[list[np.ndarray], list[np.ndarray], dict]:
    """(weights, biases, meta) from an nncli model file; a ModelFileError for anything else."""
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"model file '{path}' does not exist")
    arrays, meta = _read_archive(path, FORMAT, "model", "the model.npz that 'nncli train' writes")
    for key, kind in REQUIRED_META.items():
        if not isinstance(meta.get(key), kind):
            raise ModelFileError(f"'{path}' is damaged: its meta record lacks a valid {key!r}")
    sizes = meta["layer_sizes"]
    if len(sizes) < 2 or not all(isinstance(s, int) and s >= 1 for s in sizes):
        raise ModelFileError(f"'{path}' is damaged: layer_sizes {sizes!r} is not a list of positive sizes")
    layers = len(sizes) - 1
    expected = {f"{kind}{n}" for n in range(1, layers + 1) for kind in "Wb"}
    if set(arrays) != expected:
        raise ModelFileError(
            f"'{path}' is damaged: it should hold the arrays {sorted(expected)}, it holds {sorted(arrays)}"
        )
    weights = [arrays[f"W{n}"] for n in range(1, layers + 1)]
    biases = [arrays[f"b{n}"] for n in range(1, layers + 1)]
    return weights, biases, meta


def save_checkpoint(path: Path, arrays: dict[str, np.ndarray], meta: dict) -> None:
    """Write a checkpoint archive (named arrays and a JSON record) atomically."""
    _write_archive(path, arrays, {"format": CHECKPOINT_FORMAT, "format_version": FORMAT_VERSION, **meta})


def load_checkpoint(path: Path) -> tuple[dict[str, np.ndarray], dict]:
    """(arrays, meta) from an nncli checkpoint; a ModelFileError for anything else."""
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"there is no checkpoint '{path}' to resume from; train without --resume")
    return _read_archive(
        path, CHECKPOINT_FORMAT, "checkpoint", "the checkpoint.npz that 'nncli train' writes"
    )


def _write_archive(path: Path, arrays: dict[str, np.ndarray], meta: dict) -> None:
    buffer = io.BytesIO()
    np.savez(buffer, meta=np.array(json.dumps(meta)), **arrays)
    atomic_write(path, lambda handle: handle.write(buffer.getvalue()))


def _read_archive(
    path: Path, expected_format: str, kind: str, hint: str
) -> tuple[dict[str, np.ndarray], dict]:
    """The float arrays and the meta record of an archive nncli wrote, never unpickling anything."""
    not_ours = f"'{path}' is not an nncli {kind} file (expected {hint})"
    if not zipfile.is_zipfile(path):
        raise ModelFileError(not_ours)
    try:
        with np.load(path, allow_pickle=False) as archive:
            if "meta" not in archive.files:
                raise ModelFileError(not_ours)
            arrays = {name: archive[name] for name in archive.files}
    except ModelFileError:
        raise
    except ValueError as error:
        if "Object arrays" in str(error):
            raise ModelFileError(
                f"'{path}' holds object arrays, which nncli never loads (they could run code)"
            ) from None
        raise ModelFileError(f"'{path}' is damaged and cannot be read as an nncli {kind} file") from None
    except Exception:  # a damaged archive can fail in the zip, zlib or npy layers: all mean the same here
        raise ModelFileError(f"'{path}' is damaged and cannot be read as an nncli {kind} file") from None
    meta_array = arrays.pop("meta")
    if meta_array.shape != () or meta_array.dtype.kind != "U":
        raise ModelFileError(not_ours)
    try:
        meta = json.loads(str(meta_array))
    except ValueError:
        raise ModelFileError(f"'{path}' is damaged: its meta record is not valid JSON") from None
    if not isinstance(meta, dict) or meta.get("format") != expected_format:
        raise ModelFileError(not_ours)
    if meta.get("format_version") != FORMAT_VERSION:
        raise ModelFileError(
            f"'{path}' is {kind} format version {meta.get('format_version')!r}; this nncli reads version "
            f"{FORMAT_VERSION}, so retrain or use the nncli that wrote it"
        )
    for name, array in arrays.items():
        if array.dtype.kind != "f":
            raise ModelFileError(
                f"'{path}' is damaged: array {name} should be floating-point, got {array.dtype}"
            )
    return arrays, meta

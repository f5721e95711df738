"""The model file: a NumPy .npz archive that never needs pickle to load.

Arrays ``W1``, ``b1``, …, ``W{L-1}``, ``b{L-1}`` hold the engine's Θ^(l) (W (s_{l+1}, s_l), b
(s_{l+1},)); ``meta`` is a 0-d string array holding JSON: the format and its version, the layer sizes,
activation, output, dtype, the columns, classes and standardization, the resolved config and the nncli
version. ``numpy.load(path, allow_pickle=False)`` reads it; so does any other npz reader.
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
    """Write the archive atomically; ``meta`` gains the format fields."""
    meta = {"format": FORMAT, "format_version": FORMAT_VERSION, **meta}
    arrays = {"meta": np.array(json.dumps(meta))}
    for number, (W, b) in enumerate(zip(weights, biases, strict=True), start=1):
        arrays[f"W{number}"] = W
        arrays[f"b{number}"] = b
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    atomic_write(path, lambda handle: handle.write(buffer.getvalue()))


def load_model(path: Path) -> tuple[list[np.ndarray], list[np.ndarray], dict]:
    """(weights, biases, meta) from an nncli model file; a ModelFileError for anything else."""
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"model file '{path}' does not exist")
    not_a_model = f"'{path}' is not an nncli model file (expected the model.npz that 'nncli train' writes)"
    if not zipfile.is_zipfile(path):
        raise ModelFileError(not_a_model)
    try:
        with np.load(path, allow_pickle=False) as archive:
            names = set(archive.files)
            if "meta" not in names:
                raise ModelFileError(not_a_model)
            arrays = {name: archive[name] for name in names}
    except ModelFileError:
        raise
    except ValueError as error:
        if "Object arrays" in str(error):
            raise ModelFileError(
                f"'{path}' holds object arrays, which nncli never loads (they could run code)"
            ) from None
        raise ModelFileError(not_a_model) from None
    except (OSError, EOFError, zipfile.BadZipFile, KeyError, AttributeError, TypeError):
        raise ModelFileError(not_a_model) from None
    meta = _read_meta(arrays["meta"], path, not_a_model)
    layers = len(meta["layer_sizes"]) - 1
    expected = {"meta"} | {f"{kind}{n}" for n in range(1, layers + 1) for kind in "Wb"}
    if names != expected:
        raise ModelFileError(
            f"'{path}' is damaged: it should hold the arrays {sorted(expected)}, it holds {sorted(names)}"
        )
    weights = [arrays[f"W{n}"] for n in range(1, layers + 1)]
    biases = [arrays[f"b{n}"] for n in range(1, layers + 1)]
    for array in weights + biases:
        if array.dtype.kind != "f":
            raise ModelFileError(
                f"'{path}' is damaged: its weights should be floating-point, got {array.dtype}"
            )
    return weights, biases, meta


def _read_meta(array: np.ndarray, path: Path, not_a_model: str) -> dict:
    if array.shape != () or array.dtype.kind != "U":
        raise ModelFileError(not_a_model)
    try:
        meta = json.loads(str(array))
    except ValueError:
        raise ModelFileError(f"'{path}' is damaged: its meta record is not valid JSON") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ModelFileError(not_a_model)
    if meta.get("format_version") != FORMAT_VERSION:
        raise ModelFileError(
            f"'{path}' is model format version {meta.get('format_version')!r}; this nncli reads version "
            f"{FORMAT_VERSION}, so retrain the model or use the nncli that wrote it"
        )
    for key, kind in REQUIRED_META.items():
        if not isinstance(meta.get(key), kind):
            raise ModelFileError(f"'{path}' is damaged: its meta record lacks a valid {key!r}")
    sizes = meta["layer_sizes"]
    if len(sizes) < 2 or not all(isinstance(s, int) and s >= 1 for s in sizes):
        raise ModelFileError(f"'{path}' is damaged: layer_sizes {sizes!r} is not a list of positive sizes")
    return meta

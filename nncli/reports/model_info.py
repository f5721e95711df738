"""What a model file holds, as one JSON-ready record: its layers with their shapes and parameter counts,
the output, the columns, classes and standardization, how its training ended and the nncli that wrote it.
``nncli info`` prints it; nothing in it needs NumPy to read."""

from __future__ import annotations

import math
from pathlib import Path

from nncli.model.losses import OUTPUTS


def layer_rows(network) -> list[dict]:
    """One row per layer: its type, the shape it reads and the one it feeds, its units' activation (the
    output's name on the last layer; none for pooling and flatten), its arrays' shapes and their size."""
    rows, number = [], 0
    for position, layer in enumerate(network.layers, start=1):
        arrays = {}
        if layer.params:
            number += 1
            arrays = {f"W{number}": list(layer.param_shapes[0]), f"b{number}": list(layer.param_shapes[1])}
        last = position == len(network.layers)
        units = network.output_name if last else (layer.activation.name if layer.activation else None)
        rows.append(
            {
                "layer": position,
                "type": layer.kind,
                "in": list(layer.in_shape),
                "out": list(layer.out_shape),
                "activation": units,
                "arrays": arrays,
                "parameters": sum(math.prod(shape) for shape in layer.param_shapes),
            }
        )
    return rows


def model_info(path: Path, model) -> dict:
    """The record ``nncli info`` prints for ``model`` (a ``nncli.pipeline.Model``) read from ``path``."""
    network, pre, meta = model.network, model.preprocessing, model.meta
    config = meta["config"]
    training = config.get("training", {}) if isinstance(config.get("training"), dict) else {}
    return {
        "file": str(path),
        "format_version": meta["format_version"],
        "nncli_version": meta.get("nncli_version"),
        "summary": network.describe(),
        "dtype": str(network.dtype),
        "parameters": int(network.theta.size),
        "input_shape": list(network.input_shape),
        "layers": layer_rows(network),
        "output": {
            "units": network.layer_sizes[-1],
            "name": network.output_name,
            "loss": OUTPUTS[network.output_name].loss,
        },
        "task": pre.task,
        "targets": list(pre.targets),
        "classes": None if pre.classes is None else list(pre.classes),
        "features": list(pre.features),
        "standardization": {
            "mean": pre.mean.tolist(),
            "std": pre.std.tolist(),
            "target_mean": pre.target_mean.tolist(),
            "target_std": pre.target_std.tolist(),
        },
        "trained_with": {key: training.get(key) for key in TRAINED_WITH if key in training},
        "training": meta.get("training"),
    }


# The config's training keys worth showing beside the weights they made.
TRAINED_WITH = ("optimizer", "alpha", "lambda", "beta", "schedule", "batch", "batch_size", "epochs", "seed")

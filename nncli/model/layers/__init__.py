"""Layer types of the engine, and ``build_layers``, which turns layer specifications into layers.

``LAYERS`` maps the ``type`` of a layer specification to the function that builds that layer from the
specification and the shape it reads: a new layer type is one module with a class implementing
``nncli.model.layers.base.Layer`` and one entry here.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from nncli.errors import NncliError, shown
from nncli.model.activations import Activation
from nncli.model.layers.base import Layer, NeedsImages, activation_of, described, known_keys
from nncli.model.layers.convolution import Convolution
from nncli.model.layers.dense import Dense
from nncli.model.layers.pooling import AvgPool, Flatten, MaxPool

__all__ = [
    "LAYERS",
    "AvgPool",
    "Convolution",
    "Dense",
    "Flatten",
    "Layer",
    "MaxPool",
    "NeedsImages",
    "activation_of",
    "build_layers",
    "input_shape_of",
    "known_keys",
]

LAYERS: dict[str, Callable[..., Layer]] = {
    "dense": Dense.from_spec,
    "conv": Convolution.from_spec,
    "maxpool": MaxPool.from_spec,
    "avgpool": AvgPool.from_spec,
    "flatten": Flatten.from_spec,
}


def input_shape_of(value) -> tuple[int, ...]:
    """An input's shape as the layers read it: n values (n,), an image [H, W] as (1, H, W), or (C, H, W)."""
    shape = (value,) if isinstance(value, int) and not isinstance(value, bool) else value
    if not (
        isinstance(shape, list | tuple)
        and len(shape) in (1, 2, 3)
        and all(isinstance(n, int) and not isinstance(n, bool) and n >= 1 for n in shape)
    ):
        raise NncliError(
            f"an input shape should be a whole number ≥ 1 or a list [C, H, W] or [H, W] of them, "
            f"got {shown(value)}"
        )
    return (1, *shape) if len(shape) == 2 else tuple(shape)


def build_layers(in_shape, specs, n_out: int, activation: Activation) -> list[Layer]:
    """The hidden layers ``specs`` describe (a list of mappings ``{type: …, …}``), reading inputs of shape
    ``in_shape`` (n values, or (C, H, W) images), and a dense output layer of n_out units; hidden layers
    use ``activation`` unless their spec names another. A list that cannot work is refused, naming the
    layer by its position and type and the shapes."""
    if not isinstance(specs, list | tuple):
        raise NncliError(f"layers should be a list of layer specifications, got {shown(specs)}")
    shape = input_shape_of(in_shape)
    layers: list[Layer] = []
    for number, spec in enumerate(specs, start=1):
        where = f"layer {number}"
        if not isinstance(spec, dict):
            raise NncliError(
                f"{where} should be a mapping such as {{type: dense, units: 16}}, got {shown(spec)}"
            )
        kind = spec.get("type", "dense")
        if not isinstance(kind, str) or kind not in LAYERS:
            raise NncliError(f"{where}'s type should be one of {', '.join(LAYERS)}, got {shown(kind)}")
        where = f"{where} ({kind})"
        layer = LAYERS[kind](spec, shape, activation, where)
        if min(layer.out_shape) < 1:
            raise NncliError(
                f"{where} leaves no pixels: its input {described(shape)} gives "
                f"{described(layer.out_shape)}; use a smaller kernel, window or stride"
            )
        layers.append(layer)
        shape = layer.out_shape
    layers.append(Dense(math.prod(shape), n_out))  # an image is flattened before it, moving no data
    return layers

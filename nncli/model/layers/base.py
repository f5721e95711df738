"""What every layer type offers the network: the ``Layer`` protocol, and the checks its specifications share.

A layer maps a^(l) to z^(l+1) and, going back, turns δ^(l+1) into the sums that make up its gradient and
into the error it passes on. The network, the optimizers and the engines' general path use nothing else
of a layer, so a new layer type — dense, convolution, pooling — slots in without touching backpropagation.

Activations always travel as rows of flat vectors: a^(l) is (m, s_l) with s_l = the product of the
layer's ``in_shape``. An image layer reads its rows as (C, H, W) images, channels first and row-major
(PyTorch's ``flatten`` order), so flattening between an image layer and a dense one moves no data.
"""

from __future__ import annotations

import math

import numpy as np

from nncli.errors import NncliError, shown
from nncli.model.activations import ACTIVATIONS, Activation


class Layer:
    """The protocol every layer type implements.

    - ``kind``: its name in ``LAYERS`` and in layer specifications;
    - ``in_shape``, ``out_shape``: the shape of one example's a^(l) and of its z^(l+1), e.g. (C, H, W);
      ``sizes`` = their products (s_l, s_{l+1});
    - ``param_shapes`` and ``regularized``: its parameter arrays' shapes in a fixed order, and whether the
      L2 term λ/(2m)·Σ Θ² covers each (never a bias); both empty for a layer without parameters;
    - ``fans``: (fan-in, fan-out) for the initializers;
    - ``activation``: g of its units; None on the output layer (whose units are the output's) and on a
      layer without units of its own (pooling, flatten), whose z^(l+1) is passed on as it is;
    - ``bind(arrays)``: the network hands the layer views into its one flat parameter vector θ; ``params``;
    - ``forward(a)``: z^(l+1) from a^(l), (m, s_l) -> (m, s_{l+1});
    - ``gradient_sums(delta, a)``: per parameter, Σ over the m examples of ∂loss/∂param (the lecture's Δ);
    - ``propagate(delta, a)``: the error passed down, ∂loss/∂a^(l) from δ^(l+1) = ∂loss/∂z^(l+1) and the
      layer's input a^(l): (m, s_{l+1}) -> (m, s_l), before the .* g′(z^(l)); for a dense layer
      (Θ^(l))ᵀ δ^(l+1);
    - ``spec()``: the layer specification that builds it again;
    - ``workspace``: the values of scratch buffers it keeps per example, for the memory check;
    - ``multiply_adds``: those of one example's forward pass (as many again for its gradient and for the
      error passed down), the measure of its work by which the engines are chosen.

    Gradients are sums over examples, not means, so that sums from separate partitions of a batch add up.
    """

    kind = ""
    activation: Activation | None = None
    param_shapes: tuple[tuple[int, ...], ...] = ()
    regularized: tuple[bool, ...] = ()
    in_shape: tuple[int, ...] = ()
    out_shape: tuple[int, ...] = ()
    workspace = 0  # values of scratch buffers per example (a convolution's unrolled windows)
    multiply_adds = 0  # a layer without products (pooling, flatten)

    @property
    def sizes(self) -> tuple[int, int]:
        """(s_l, s_{l+1}): the number of values this layer reads and the number it feeds."""
        return math.prod(self.in_shape), math.prod(self.out_shape)

    @property
    def params(self) -> list[np.ndarray]:
        return []

    def bind(self, arrays: list[np.ndarray]) -> None:
        """A layer without parameters receives no arrays."""

    def gradient_sums(self, delta: np.ndarray, a: np.ndarray) -> list[np.ndarray]:
        return []


def known_keys(spec: dict, allowed: set[str], where: str) -> None:
    """Refuse a key of ``spec`` outside ``allowed``, naming it."""
    unknown = sorted(set(spec) - allowed, key=str)
    if unknown:
        raise NncliError(
            f"{where} has an unknown key {shown(unknown[0])}; allowed: {', '.join(sorted(allowed))}"
        )


def activation_of(spec: dict, default: Activation | None, where: str) -> Activation | None:
    """The activation ``spec`` names, or ``default``."""
    name = spec.get("activation")
    if name is None:
        return default
    if not isinstance(name, str) or name not in ACTIVATIONS:
        raise NncliError(
            f"{where} should have activation, one of {', '.join(ACTIVATIONS)}, got {shown(name)}"
        )
    return ACTIVATIONS[name]


def whole_number(spec: dict, key: str, default, where: str, low: int = 1) -> int:
    """``spec[key]`` (or ``default``) as a whole number ≥ ``low``; a sentence naming the layer otherwise."""
    value = spec.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise NncliError(f"{where} should have {key}, a whole number ≥ {low}, got {shown(value)}")
    return value


def pair(spec: dict, key: str, default, where: str) -> tuple[int, int]:
    """``spec[key]`` as (height, width): a whole number ≥ 1 for both, or a list of two."""
    value = spec.get(key, default)
    values = tuple(value) if isinstance(value, list | tuple) and len(value) == 2 else (value, value)
    if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in values):
        raise NncliError(
            f"{where} should have {key}, a whole number ≥ 1 or a list [height, width] of them, "
            f"got {shown(value)}"
        )
    return values


class NeedsImages(NncliError):
    """An image layer was given flat values to read; ``where`` names the layer."""

    def __init__(self, message: str, where: str) -> None:
        super().__init__(message)
        self.where = where


def image_shape(in_shape: tuple[int, ...], where: str) -> tuple[int, int, int]:
    """``in_shape`` as (C, H, W), or a sentence saying an image layer needs an image."""
    if len(in_shape) != 3:
        raise NeedsImages(
            f"{where} reads images (C, H, W), but its input is {in_shape[0]} flat values; image layers come "
            f"before dense ones, and data.input_shape gives the images' shape",
            where,
        )
    return in_shape


def described(shape: tuple[int, ...]) -> str:
    """A shape as the config writes it: [C, H, W] or [n]."""
    return "[" + ", ".join(map(str, shape)) + "]"

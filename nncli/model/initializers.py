"""Weight initializers: a table of ``f(rng, s_in, s_out, scale, shape) -> W``, W of shape (s_out, s_in)
unless ``shape`` gives another (a kernel (F, C, kh, kw), whose fans are C·kh·kw and F·kh·kw).

From the lecture's "Parameter Initialization":

- ``zeros``: Θ = 0, kept to demonstrate the symmetry problem (every hidden unit stays identical);
- ``uniform``: Θ ~ U(−ε, ε), ε = √6 / √(s_in + s_out) unless ``scale`` gives ε;
- ``normal``: Θ ~ N(0, σ) with σ = 0.1 unless ``scale`` gives σ;
- ``xavier``: Θ ~ N(0, √(2 / (s_in + s_out)));
- ``he``: Θ ~ N(0, √(2 / s_in)).

The second argument of N is the standard deviation. Weights are drawn in float64 from the one generator
passed down, so the same seed gives bit-identical weights whatever dtype the network computes in.
Biases are not drawn: see ``initial_bias``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

RELU_BIAS = 0.01

Initializer = Callable[..., np.ndarray]


def zeros(
    rng: np.random.Generator, s_in: int, s_out: int, scale: float | None = None, shape=None
) -> np.ndarray:
    """Θ = 0."""
    return np.zeros(shape or (s_out, s_in))


def uniform(
    rng: np.random.Generator, s_in: int, s_out: int, scale: float | None = None, shape=None
) -> np.ndarray:
    """Θ ~ U(−ε, ε), ε = √6 / √(s_in + s_out) by default."""
    epsilon = np.sqrt(6.0) / np.sqrt(s_in + s_out) if scale is None else scale
    return rng.uniform(-epsilon, epsilon, size=shape or (s_out, s_in))


def normal(
    rng: np.random.Generator, s_in: int, s_out: int, scale: float | None = None, shape=None
) -> np.ndarray:
    """Θ ~ N(0, σ), σ = 0.1 by default."""
    return rng.normal(0.0, 0.1 if scale is None else scale, size=shape or (s_out, s_in))


def xavier(
    rng: np.random.Generator, s_in: int, s_out: int, scale: float | None = None, shape=None
) -> np.ndarray:
    """Θ ~ N(0, √(2 / (s_in + s_out)))."""
    return rng.normal(0.0, np.sqrt(2.0 / (s_in + s_out)), size=shape or (s_out, s_in))


def he(rng: np.random.Generator, s_in: int, s_out: int, scale: float | None = None, shape=None) -> np.ndarray:
    """Θ ~ N(0, √(2 / s_in))."""
    return rng.normal(0.0, np.sqrt(2.0 / s_in), size=shape or (s_out, s_in))


INITIALIZERS: dict[str, Initializer] = {
    "zeros": zeros,
    "uniform": uniform,
    "normal": normal,
    "xavier": xavier,
    "he": he,
}


def initial_bias(s_out: int, relu_family: bool, relu_bias: float = RELU_BIAS) -> np.ndarray:
    """b = 0, or a small positive constant in front of ReLU-family units so they start active."""
    return np.full(s_out, relu_bias if relu_family else 0.0)

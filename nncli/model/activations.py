"""Hidden-unit activations g and their derivatives g′, side by side, in a table keyed by the YAML name.

Each derivative is written from the activation's output a = g(z), as the lecture does for the sigmoid
(g′(z) = a .* (1 − a)), so backpropagation needs only the activations kept from the forward pass.
All functions take and return arrays of shape (m, s_l) and never modify their input.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

LEAKY_SLOPE = 0.01


@dataclass(frozen=True)
class Activation:
    """g(z) and g′ written from a = g(z); ``relu_family`` marks units whose biases start positive.

    The training loop's in-place forms: ``g_inplace(z, scratch)`` overwrites z with g(z), and
    ``scale_by_g_prime(delta, a, scratch)`` does delta .*= g′(z) (scratch has the shape of z).
    """

    name: str
    g: Callable[[np.ndarray], np.ndarray]
    g_prime: Callable[[np.ndarray], np.ndarray]
    g_inplace: Callable[[np.ndarray, np.ndarray], None]
    scale_by_g_prime: Callable[[np.ndarray, np.ndarray, np.ndarray], None]
    relu_family: bool = False


def sigmoid(z: np.ndarray) -> np.ndarray:
    """g(z) = 1 / (1 + e^(−z)); e^(−z) may overflow to inf for z < −709, which gives exactly 0."""
    with np.errstate(over="ignore"):
        a = np.exp(-z)
    a += 1.0
    return np.reciprocal(a, out=a)


def sigmoid_prime(a: np.ndarray) -> np.ndarray:
    """g′(z) = a .* (1 − a)."""
    return a * (1.0 - a)


def sigmoid_into(z: np.ndarray, out: np.ndarray) -> None:
    """out = g(z), z unchanged unless it is out; e^(−z) may overflow to inf (giving 0): callers silence
    that warning around their loop."""
    np.negative(z, out=out)
    np.exp(out, out=out)
    out += 1.0
    np.reciprocal(out, out=out)


def sigmoid_inplace(z: np.ndarray, scratch: np.ndarray) -> None:
    """In place (see ``sigmoid_into``)."""
    sigmoid_into(z, z)


def scale_by_sigmoid_prime(delta: np.ndarray, a: np.ndarray, scratch: np.ndarray) -> None:
    np.subtract(1.0, a, out=scratch)
    scratch *= a
    delta *= scratch


def tanh(z: np.ndarray) -> np.ndarray:
    """g(z) = tanh(z) = 1 − 2 / (e^(2z) + 1), through exp, which NumPy vectorizes and tanh it does not."""
    a = np.array(z, dtype=np.result_type(z, np.float32))
    with np.errstate(over="ignore"):
        tanh_inplace(a, a)
    return a


def tanh_prime(a: np.ndarray) -> np.ndarray:
    """g′(z) = 1 − a²."""
    return 1.0 - a * a


def tanh_inplace(z: np.ndarray, scratch: np.ndarray) -> None:
    """In place; e^(2z) may overflow to inf (giving 1): callers silence that warning around their loop."""
    z *= 2.0
    np.exp(z, out=z)
    z += 1.0
    np.divide(2.0, z, out=z)
    np.subtract(1.0, z, out=z)


def scale_by_tanh_prime(delta: np.ndarray, a: np.ndarray, scratch: np.ndarray) -> None:
    np.multiply(a, a, out=scratch)
    np.subtract(1.0, scratch, out=scratch)
    delta *= scratch


def relu(z: np.ndarray) -> np.ndarray:
    """g(z) = max(0, z)."""
    return np.maximum(z, 0.0)


def relu_prime(a: np.ndarray) -> np.ndarray:
    """g′(z) = 1 where z > 0 (equivalently a > 0), else 0."""
    return (a > 0.0).astype(a.dtype)


def relu_inplace(z: np.ndarray, scratch: np.ndarray) -> None:
    np.maximum(z, 0.0, out=z)


def scale_by_relu_prime(delta: np.ndarray, a: np.ndarray, scratch: np.ndarray) -> None:
    """a = max(0, z) ≥ 0, so sign(a) is g′(z): one float loop, cheaper than a comparison cast to float."""
    np.sign(a, out=scratch)
    delta *= scratch


def leaky_relu(z: np.ndarray) -> np.ndarray:
    """g(z) = z for z > 0, 0.01·z otherwise."""
    return np.where(z > 0.0, z, z * LEAKY_SLOPE)


def leaky_relu_prime(a: np.ndarray) -> np.ndarray:
    """g′(z) = 1 for z > 0, 0.01 otherwise (a has the sign of z)."""
    return np.where(a > 0.0, 1.0, LEAKY_SLOPE).astype(a.dtype)


def leaky_relu_inplace(z: np.ndarray, scratch: np.ndarray) -> None:
    np.multiply(z, LEAKY_SLOPE, out=scratch)
    np.maximum(z, scratch, out=z)


def scale_by_leaky_relu_prime(delta: np.ndarray, a: np.ndarray, scratch: np.ndarray) -> None:
    np.greater(a, 0.0, out=scratch)
    scratch *= 1.0 - LEAKY_SLOPE
    scratch += LEAKY_SLOPE
    delta *= scratch


ACTIVATIONS: dict[str, Activation] = {
    "sigmoid": Activation("sigmoid", sigmoid, sigmoid_prime, sigmoid_inplace, scale_by_sigmoid_prime),
    "tanh": Activation("tanh", tanh, tanh_prime, tanh_inplace, scale_by_tanh_prime),
    "relu": Activation("relu", relu, relu_prime, relu_inplace, scale_by_relu_prime, relu_family=True),
    "leaky_relu": Activation(
        "leaky_relu",
        leaky_relu,
        leaky_relu_prime,
        leaky_relu_inplace,
        scale_by_leaky_relu_prime,
        relu_family=True,
    ),
}

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
    """g(z) and g′ written from a = g(z); ``relu_family`` marks units whose biases start positive."""

    name: str
    g: Callable[[np.ndarray], np.ndarray]
    g_prime: Callable[[np.ndarray], np.ndarray]
    relu_family: bool = False


def sigmoid(z: np.ndarray) -> np.ndarray:
    """g(z) = 1 / (1 + e^(−z)), computed as (1 + tanh(z/2)) / 2 so that no |z| overflows."""
    a = np.tanh(z * 0.5)
    a *= 0.5
    a += 0.5
    return a


def sigmoid_prime(a: np.ndarray) -> np.ndarray:
    """g′(z) = a .* (1 − a)."""
    return a * (1.0 - a)


def tanh(z: np.ndarray) -> np.ndarray:
    """g(z) = tanh(z)."""
    return np.tanh(z)


def tanh_prime(a: np.ndarray) -> np.ndarray:
    """g′(z) = 1 − a²."""
    return 1.0 - a * a


def relu(z: np.ndarray) -> np.ndarray:
    """g(z) = max(0, z)."""
    return np.maximum(z, 0.0)


def relu_prime(a: np.ndarray) -> np.ndarray:
    """g′(z) = 1 where z > 0 (equivalently a > 0), else 0."""
    return (a > 0.0).astype(a.dtype)


def leaky_relu(z: np.ndarray) -> np.ndarray:
    """g(z) = z for z > 0, 0.01·z otherwise."""
    return np.where(z > 0.0, z, z * LEAKY_SLOPE)


def leaky_relu_prime(a: np.ndarray) -> np.ndarray:
    """g′(z) = 1 for z > 0, 0.01 otherwise (a has the sign of z)."""
    return np.where(a > 0.0, 1.0, LEAKY_SLOPE).astype(a.dtype)


ACTIVATIONS: dict[str, Activation] = {
    "sigmoid": Activation("sigmoid", sigmoid, sigmoid_prime),
    "tanh": Activation("tanh", tanh, tanh_prime),
    "relu": Activation("relu", relu, relu_prime, relu_family=True),
    "leaky_relu": Activation("leaky_relu", leaky_relu, leaky_relu_prime, relu_family=True),
}

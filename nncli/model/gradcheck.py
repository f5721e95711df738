"""Gradient checking: backpropagation's D against centred differences of J(Θ).

    ∂J/∂θ ≈ (J(θ + ε) − J(θ − ε)) / 2ε

taken for every parameter (or a seeded subset of them in a large network), compared by the relative
difference ‖num − bp‖ / ‖num + bp‖, overall and for each parameter array (W1, b1, …).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from nncli.model.network import Network

DEFAULT_EPSILON = 1e-4
DEFAULT_TOLERANCE = 1e-7
MIN_CHECKED_PER_ARRAY = 5


def centred_difference(J: Callable[[float], float], theta: float, epsilon: float) -> float:
    """(J(θ + ε) − J(θ − ε)) / 2ε."""
    return (J(theta + epsilon) - J(theta - epsilon)) / (2.0 * epsilon)


def relative_difference(numerical: np.ndarray, backprop: np.ndarray) -> float:
    """‖num − bp‖ / ‖num + bp‖, and 0 when both are zero."""
    denominator = np.linalg.norm(numerical + backprop)
    if denominator == 0.0:
        return 0.0 if np.linalg.norm(numerical - backprop) == 0.0 else float("inf")
    return float(np.linalg.norm(numerical - backprop) / denominator)


@dataclass(frozen=True)
class ArrayCheck:
    """The comparison for one parameter array (``W1``, ``b1``, …)."""

    name: str
    checked: int
    size: int
    relative_difference: float
    numerical: np.ndarray
    backprop: np.ndarray


@dataclass(frozen=True)
class GradcheckReport:
    """``relative_difference`` over every checked parameter, and the same for each array."""

    relative_difference: float
    arrays: list[ArrayCheck]
    epsilon: float
    lambda_: float

    @property
    def checked(self) -> int:
        return sum(a.checked for a in self.arrays)

    def passed(self, tolerance: float = DEFAULT_TOLERANCE) -> bool:
        return bool(self.relative_difference < tolerance)


def gradcheck(
    net: Network,
    X: np.ndarray,
    Y: np.ndarray,
    lambda_: float = 0.0,
    epsilon: float = DEFAULT_EPSILON,
    max_params: int | None = None,
    seed: int = 0,
) -> GradcheckReport:
    """Compare ``net.gradients`` with centred differences of ``net.cost`` on (X, Y).

    With ``max_params``, a network with more parameters than that is checked on a seeded random subset
    of about that many, spread over the arrays in proportion to their size (at least a few of each).
    The network's parameters are restored exactly afterwards.
    """
    if not (np.isfinite(epsilon) and epsilon > 0):
        raise ValueError(f"epsilon should be a number > 0, got {epsilon!r}")
    _, dW, db = net.gradients(X, Y, lambda_)
    X, Y = net.check_inputs(X, Y)
    backprop = [g for pair in zip(dW, db, strict=True) for g in pair]
    chosen = _choose_indices(net.params, max_params, np.random.default_rng(seed))
    arrays = []
    for name, param, grad, indices in zip(net.param_names(), net.params, backprop, chosen, strict=True):
        numerical = np.array([_numerical(net, X, Y, lambda_, param, i, epsilon) for i in indices])
        exact = grad.reshape(-1)[indices].astype(np.float64)
        arrays.append(
            ArrayCheck(
                name,
                len(indices),
                param.size,
                relative_difference(numerical, exact),
                numerical,
                exact,
            )
        )
    overall = relative_difference(
        np.concatenate([a.numerical for a in arrays]), np.concatenate([a.backprop for a in arrays])
    )
    return GradcheckReport(overall, arrays, epsilon, lambda_)


def _numerical(net, X, Y, lambda_, param: np.ndarray, index: int, epsilon: float) -> float:
    flat = param.reshape(-1)
    original = flat[index]

    def J(theta: float) -> float:
        flat[index] = theta
        return net.cost(X, Y, lambda_)

    try:
        return centred_difference(J, float(original), epsilon)
    finally:
        flat[index] = original


def _choose_indices(params, max_params, rng) -> list[np.ndarray]:
    total = sum(p.size for p in params)
    if max_params is None or total <= max_params:
        return [np.arange(p.size) for p in params]
    chosen = []
    for p in params:
        count = min(p.size, max(MIN_CHECKED_PER_ARRAY, round(max_params * p.size / total)))
        chosen.append(np.sort(rng.choice(p.size, size=count, replace=False)))
    return chosen


def lecture_check_problem(seed: int = 0) -> tuple[Network, np.ndarray, np.ndarray]:
    """The lecture's small check network: 3 inputs, 5 sigmoid hidden units, 3 sigmoid outputs, m = 5.

    Returns (net, X, Y) with Y one-hot over the three classes; everything is drawn from ``seed``.
    """
    rng = np.random.default_rng(seed)
    net = Network([3, 5, 3], activation="sigmoid", output="sigmoid", initializer="uniform", seed=seed)
    X = rng.normal(size=(5, 3))
    Y = np.eye(3)[np.arange(5) % 3]
    return net, X, Y

"""Gradient checking: backpropagation's D against centred differences of J(Θ).

    ∂J/∂θ ≈ (J(θ + ε) − J(θ − ε)) / 2ε

taken for every parameter (or a seeded subset of them in a large network), compared by the relative
difference ‖num − bp‖ / ‖num + bp‖, overall and for each parameter array (W1, b1, …).

A centred difference means nothing where J has a kink between θ − ε and θ + ε: a ReLU unit whose z^(l)
crosses 0, or a max-pooling window whose maximum moves to another value. Each probe therefore compares
the kinks' pattern (which ReLU units are on, which value wins each window) at θ ± ε with that at θ, and
where either side differs it probes again with ε/10, then ε/100; a parameter whose probes all straddle a
kink is left out of the comparison and counted in ``ArrayCheck.at_kinks``.
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
    at_kinks: int
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

    @property
    def at_kinks(self) -> int:
        return sum(a.at_kinks for a in self.arrays)

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
    kinks = kink_pattern(net, X)
    for name, param, grad, indices in zip(net.param_names(), net.params, backprop, chosen, strict=True):
        probes = [_numerical(net, X, Y, lambda_, param, i, epsilon, kinks) for i in indices]
        smooth = np.array([value is not None for value in probes], dtype=bool)
        numerical = np.array([value for value in probes if value is not None], dtype=np.float64)
        exact = grad.reshape(-1)[indices[smooth]].astype(np.float64)
        arrays.append(
            ArrayCheck(
                name,
                len(numerical),
                param.size,
                len(indices) - len(numerical),
                relative_difference(numerical, exact),
                numerical,
                exact,
            )
        )
    overall = relative_difference(
        np.concatenate([a.numerical for a in arrays]), np.concatenate([a.backprop for a in arrays])
    )
    return GradcheckReport(overall, arrays, epsilon, lambda_)


KINK_RETRIES = 3  # ε, ε/10, ε/100


def _numerical(net, X, Y, lambda_, param: np.ndarray, index: int, epsilon: float, kinks) -> float | None:
    """The centred difference of J in one parameter, from probes that straddle no kink; None if every ε
    tried does."""
    flat = param.reshape(-1)
    original = flat[index]

    def J(theta: float) -> float:
        flat[index] = theta
        return net.cost(X, Y, lambda_)

    def smooth_around(step: float) -> bool:
        for side in (original + step, original - step):
            flat[index] = side
            if not _same_pattern(kink_pattern(net, X), kinks):
                return False
        return True

    try:
        for attempt in range(KINK_RETRIES):
            step = epsilon / 10.0**attempt
            if kinks is None or smooth_around(step):
                return centred_difference(J, float(original), step)
        return None
    finally:
        flat[index] = original


def kink_pattern(net: Network, X: np.ndarray) -> list[np.ndarray] | None:
    """Where J is not smooth in θ: for every ReLU-family layer, which units have z > 0, and for every
    max-pooling layer, which value wins each window; None for a network with neither (all smooth)."""
    pattern = []
    a = X
    for layer in net.layers[:-1]:
        if hasattr(layer, "arg_max"):
            pattern.append(layer.arg_max(a))
        z = layer.forward(a)
        if layer.activation is not None and layer.activation.relu_family:
            pattern.append(z > 0)
        a = z if layer.activation is None else layer.activation.g(z)
    return pattern or None


def _same_pattern(pattern: list[np.ndarray] | None, reference: list[np.ndarray] | None) -> bool:
    if reference is None:
        return True
    return all(np.array_equal(mine, theirs) for mine, theirs in zip(pattern, reference, strict=True))


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

"""Output units and their losses, each pair chosen so that δ^(L) = ∂loss/∂z^(L) = a^(L) − y.

Losses are computed from z^(L), never from a^(L), so a saturated unit still gives a finite J:

- ``sigmoid``: the lecture's cross-entropy summed over the K units,
  −[y log a + (1 − y) log(1 − a)] = log(1 + e^z) − y·z, with log(1 + e^z) by ``logaddexp``;
- ``softmax``: categorical cross-entropy −Σ_k y_k log a_k with log a = z − logsumexp(z);
- ``linear``: squared error ½ Σ_k (a_k − y_k)².

Shapes: z, a and Y are (m, K). ``activate_and_loss`` returns a^(L) and the loss summed over all m
examples (the data part of m·J), so partitions of a batch can add their sums. The ``example`` forms take
one example as vectors z, y of length K.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from nncli.model.activations import sigmoid, sigmoid_inplace, sigmoid_into


@dataclass(frozen=True)
class OutputLoss:
    """An output unit h_Θ(x) = a^(L) = g_out(z^(L)) and the loss that makes δ^(L) = a^(L) − y."""

    name: str
    activate: Callable[[np.ndarray], np.ndarray]
    activate_and_loss: Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, float]]
    activate_and_loss_inplace: Callable[[np.ndarray, np.ndarray], float]
    """The training loop's form: overwrites z with a^(L) and returns the summed loss."""
    example_into: Callable[[np.ndarray, np.ndarray, np.ndarray], float]
    """The stochastic step's form, for one example: ``example_into(z, y, out)`` writes a^(L) into out
    and returns the example's loss (z, y and out are vectors of length K; z is left as it was)."""
    targets_problem: Callable[[np.ndarray], str | None] = lambda Y: None
    """What is wrong with Y for this loss, if anything (δ^(L) = a^(L) − y must be the loss's gradient)."""
    loss: str = ""
    """The loss in words and symbols, for reports."""


def _sigmoid_cross_entropy(z: np.ndarray, Y: np.ndarray) -> tuple[np.ndarray, float]:
    """a = σ(z); Σ_i Σ_k −[y log a + (1 − y) log(1 − a)] = Σ (log(1 + e^z) − y·z)."""
    loss = np.logaddexp(0.0, z).sum() - np.vdot(Y, z)
    return sigmoid(z), float(loss)


def _sigmoid_cross_entropy_inplace(z: np.ndarray, Y: np.ndarray) -> float:
    loss = float(np.logaddexp(0.0, z).sum() - np.vdot(Y, z))
    sigmoid_inplace(z, z)
    return loss


def _sigmoid_cross_entropy_example(z: np.ndarray, y: np.ndarray, out: np.ndarray) -> float:
    loss = float(np.add.reduce(np.logaddexp(0.0, z)) - np.vdot(y, z))
    sigmoid_into(z, out)
    return loss


def _log_softmax(z: np.ndarray) -> np.ndarray:
    """log a_k = z_k − log Σ_j e^(z_j), shifted by max z so that no exponent overflows."""
    shifted = z - z.max(axis=1, keepdims=True)
    shifted -= np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return shifted


def softmax(z: np.ndarray) -> np.ndarray:
    """a_k = e^(z_k) / Σ_j e^(z_j)."""
    return np.exp(_log_softmax(z))


def _softmax_cross_entropy(z: np.ndarray, Y: np.ndarray) -> tuple[np.ndarray, float]:
    """a = softmax(z); Σ_i −Σ_k y_k log a_k."""
    log_a = _log_softmax(z)
    return np.exp(log_a), float(-np.vdot(Y, log_a))


def _softmax_cross_entropy_inplace(z: np.ndarray, Y: np.ndarray) -> float:
    """With s = z − max z and rows of Y summing to 1 (checked where Y enters):
    −Σ_k y_k log a_k = log Σ_j e^(s_j) − Σ_k y_k s_k."""
    z -= np.maximum.reduce(z, axis=1, keepdims=True)  # ufunc.reduce: less overhead than z.max()
    y_dot_s = np.vdot(Y, z)
    np.exp(z, out=z)
    totals = np.add.reduce(z, axis=1, keepdims=True)
    z /= totals
    return float(np.add.reduce(np.log(totals, out=totals), axis=None) - y_dot_s)


# Σ_j e^(z_j) within this range needs no shift: no term overflowed, and any that underflowed is below
# 1e-30 of the largest, too small to change a or the loss.
_UNSHIFTED_TOTALS = (1e-30, 1e30)


_PYTHON_SUM_LENGTH = 32


def _vector_sum(v: np.ndarray) -> float:
    """Σ_k v_k of a vector; up to 32 terms as Python floats (math.fsum), which costs less than a NumPy
    reduction on so few."""
    return math.fsum(v.tolist()) if len(v) <= _PYTHON_SUM_LENGTH else float(np.add.reduce(v))


def _softmax_cross_entropy_example(z: np.ndarray, y: np.ndarray, out: np.ndarray) -> float:
    """a = e^z / Σ e^z and log Σ_j e^(z_j) − y·z, shifted by max z only when Σ e^z leaves a safe range
    (one example's few units rarely need it, and the shift costs two more passes)."""
    np.exp(z, out=out)
    total = _vector_sum(out)
    if not _UNSHIFTED_TOTALS[0] < total < _UNSHIFTED_TOTALS[1]:
        z = z - np.maximum.reduce(z)
        np.exp(z, out=out)
        total = _vector_sum(out)
    out /= total
    return math.log(total) - float(np.vdot(y, z))


def _identity(z: np.ndarray) -> np.ndarray:
    """a = z."""
    return z.copy()


def _squared_error(z: np.ndarray, Y: np.ndarray) -> tuple[np.ndarray, float]:
    """a = z; Σ_i ½ Σ_k (a_k − y_k)²."""
    residual = z - Y
    return z.copy(), 0.5 * float(np.vdot(residual, residual))


def _squared_error_inplace(z: np.ndarray, Y: np.ndarray) -> float:
    residual = z - Y
    return 0.5 * float(np.vdot(residual, residual))


def _squared_error_example(z: np.ndarray, y: np.ndarray, out: np.ndarray) -> float:
    np.copyto(out, z)
    return _squared_error_inplace(z, y)


def _rows_not_distributions(Y: np.ndarray) -> str | None:
    """Softmax: ∂/∂z of −Σ_k y_k log a_k is a − y only when Σ_k y_k = 1, so each row of Y must sum to 1."""
    tolerance = 1e-4 if Y.dtype == np.float32 else 1e-9
    sums = Y.sum(axis=1)
    bad = np.flatnonzero(np.abs(sums - 1.0) > tolerance)
    if len(bad):
        return (
            f"each row of Y should sum to 1 for a softmax output (one-hot labels), "
            f"but row {bad[0]} sums to {sums[bad[0]]:g}"
        )
    return None


OUTPUTS: dict[str, OutputLoss] = {
    "sigmoid": OutputLoss(
        "sigmoid",
        sigmoid,
        _sigmoid_cross_entropy,
        _sigmoid_cross_entropy_inplace,
        _sigmoid_cross_entropy_example,
        loss="cross-entropy −y log a − (1 − y) log(1 − a), per unit",
    ),
    "softmax": OutputLoss(
        "softmax",
        softmax,
        _softmax_cross_entropy,
        _softmax_cross_entropy_inplace,
        _softmax_cross_entropy_example,
        _rows_not_distributions,
        loss="cross-entropy −Σ_k y_k log a_k",
    ),
    "linear": OutputLoss(
        "linear",
        _identity,
        _squared_error,
        _squared_error_inplace,
        _squared_error_example,
        loss="squared error ½ (a − y)²",
    ),
}

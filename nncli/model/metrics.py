"""Quality figures reported beside J: accuracy for classification, label accuracy for several 0/1 labels,
RMSE for regression.

Each metric is computed as a sum over a batch, so the sums of an epoch's steps (or of partitions) add up,
and ``finish`` turns the total over m examples and K outputs into the figure.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Metric:
    name: str
    batch_sum: Callable[[np.ndarray, np.ndarray], float]
    finish: Callable[[float, int, int], float]

    def __call__(self, A: np.ndarray, Y: np.ndarray) -> float:
        """The metric of outputs A against targets Y, both (m, K)."""
        return self.finish(self.batch_sum(A, Y), A.shape[0], A.shape[1])


def predicted_classes(A: np.ndarray) -> np.ndarray:
    """Class indices from output activations: a ≥ 0.5 for one sigmoid unit, argmax over K units."""
    if A.shape[1] == 1:
        return (A[:, 0] >= 0.5).astype(np.intp)
    return A.argmax(axis=1)


def _correct(A: np.ndarray, Y: np.ndarray) -> float:
    return float(np.count_nonzero(predicted_classes(A) == predicted_classes(Y)))


def _squared_error(A: np.ndarray, Y: np.ndarray) -> float:
    residual = A - Y
    return float(np.vdot(residual, residual))


def _labels_correct(A: np.ndarray, Y: np.ndarray) -> float:
    return float(np.count_nonzero((A >= 0.5) == (Y >= 0.5)))


ACCURACY = Metric("accuracy", _correct, lambda total, m, k: total / m)
# Several 0/1 labels, one sigmoid unit each: the share of the m·K decisions a ≥ 0.5 that match y.
LABEL_ACCURACY = Metric("label_accuracy", _labels_correct, lambda total, m, k: total / (m * k))


def rmse(target_scale=1.0) -> Metric:
    """RMSE = √(Σ (a − y)² / (m K)) in the targets' own units: times ``target_scale`` for one target, or
    with each target's residual scaled by its own entry of ``target_scale`` (an array of K) for several."""
    scales = np.asarray(target_scale, dtype=np.float64)
    if scales.size == 1:
        scale = float(scales.reshape(-1)[0])
        return Metric("rmse", _squared_error, lambda total, m, k: scale * float(np.sqrt(total / (m * k))))

    def scaled_squares(A: np.ndarray, Y: np.ndarray) -> float:
        residual = (A - Y) * scales
        return float(np.vdot(residual, residual))

    return Metric("rmse", scaled_squares, lambda total, m, k: float(np.sqrt(total / (m * k))))

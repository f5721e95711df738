"""How well a model does on a table with its target column: counted chunk by chunk, so that memory does not
grow with the rows.

Classification: the confusion matrix C (true classes as rows, predicted as columns) and from it, for each
class k, precision C_kk / Σ_i C_ik, recall C_kk / Σ_j C_kj, F1 = 2·P·R / (P + R) (0 where a denominator is
0, as scikit-learn's ``zero_division=0``) and support Σ_j C_kj; accuracy Σ_k C_kk / m; their macro
(plain) and weighted (by support) averages. Classes the model never saw in training count as rows of C
that no prediction reaches.

Regression, in the target's own units: RMSE √(Σ e² / m), MAE Σ |e| / m and R² = 1 − Σ e² / Σ (y − ȳ)²,
with e = prediction − y and Σ (y − ȳ)² combined chunk by chunk (``nncli.moments``), not as
Σ y² − m ȳ², which loses the digits of a target far from 0.
"""

from __future__ import annotations

import numpy as np

from nncli.moments import merged


class ConfusionTally:
    """The confusion matrix of class labels, grown chunk by chunk; ``labels`` starts as the model's classes
    and gains any true label it never saw, in order of first appearance."""

    def __init__(self, classes) -> None:
        self.labels = list(classes)
        self.index = {label: i for i, label in enumerate(self.labels)}
        self.counts = np.zeros((len(self.labels), len(self.labels)), dtype=np.int64)

    def add(self, truth: list, predicted: list) -> None:
        for label in truth:
            if label not in self.index:
                self.index[label] = len(self.labels)
                self.labels.append(label)
        if len(self.labels) > len(self.counts):
            grown = np.zeros((len(self.labels), len(self.labels)), dtype=np.int64)
            grown[: len(self.counts), : len(self.counts)] = self.counts
            self.counts = grown
        rows = np.array([self.index[label] for label in truth], dtype=np.intp)
        columns = np.array([self.index[label] for label in predicted], dtype=np.intp)
        np.add.at(self.counts, (rows, columns), 1)

    def report(self) -> dict:
        C = self.counts
        correct = np.diag(C).astype(float)
        support = C.sum(axis=1)
        predicted = C.sum(axis=0)
        precision = _ratio(correct, predicted)
        recall = _ratio(correct, support)
        f1 = _ratio(2 * precision * recall, precision + recall)
        m = int(support.sum())
        per_class = [
            {
                "class": label,
                "precision": float(precision[k]),
                "recall": float(recall[k]),
                "f1": float(f1[k]),
                "support": int(support[k]),
            }
            for k, label in enumerate(self.labels)
        ]
        weights = support / m if m else np.zeros(len(support))
        return {
            "task": "classification",
            "rows": m,
            "accuracy": float(correct.sum() / m) if m else None,
            "correct": int(correct.sum()),
            "classes": per_class,
            "macro_avg": _averages(precision, recall, f1, np.full(len(support), 1 / max(len(support), 1)), m),
            "weighted_avg": _averages(precision, recall, f1, weights, m),
            "confusion_matrix": {"labels": list(self.labels), "rows_true_columns_predicted": C.tolist()},
        }


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """numerator / denominator, 0 where the denominator is 0."""
    out = np.zeros(len(numerator))
    np.divide(numerator, denominator, out=out, where=denominator != 0)
    return out


def _averages(precision, recall, f1, weights, support: int) -> dict:
    return {
        "precision": float(precision @ weights),
        "recall": float(recall @ weights),
        "f1": float(f1 @ weights),
        "support": support,
    }


class ErrorTally:
    """Sums of the errors of predicted numbers, grown chunk by chunk."""

    def __init__(self) -> None:
        self.rows = 0
        self.squares = 0.0  # Σ e²
        self.absolute = 0.0  # Σ |e|
        self.mean = 0.0  # ȳ so far
        self.spread = 0.0  # Σ (y − ȳ)² so far

    def add(self, truth: np.ndarray, predicted: np.ndarray) -> None:
        y = np.asarray(truth, dtype=np.float64)
        if len(y) == 0:
            return
        error = np.asarray(predicted, dtype=np.float64) - y
        self.squares += float(error @ error)
        self.absolute += float(np.abs(error).sum())
        mean = float(y.mean())
        spread = float(((y - mean) ** 2).sum())
        self.rows, self.mean, self.spread = merged(self.rows, self.mean, self.spread, len(y), mean, spread)

    def report(self) -> dict:
        m = self.rows
        return {
            "task": "regression",
            "rows": m,
            "rmse": float(np.sqrt(self.squares / m)) if m else None,
            "mae": self.absolute / m if m else None,
            "r2": 1.0 - self.squares / self.spread if m and self.spread > 0 else None,
        }

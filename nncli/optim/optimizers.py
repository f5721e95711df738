"""Optimizers: how a step's gradient D moves Θ, each written as its formula, in place, on θ.

For every optimizer, D is the lecture's gradient of J_i on the step's batch of m examples, with the L2
term coupled to it (biases free):

    D = Δ/m + (λ/m) Θ        (bias entries: Σ_i δ / m)

An engine hands an optimizer D pre-scaled by the optimizer's ``gradient_scale`` κ: it multiplies δ^(L) by
c = κ/m before backpropagating (every Δ is linear in δ^(L)), so its gradient buffer G holds κ·Δ/m, and the
optimizer adds decay·Θ on the weights with decay = κλ/m. With clipping (``nncli.optim.clipping``) the
engine has scaled G and decay by s ≤ 1 already.

Each optimizer names its state arrays (each shaped like θ, checkpointed by name) and its counters; the
engine gives ``update`` views of θ, G and the state over one range of θ at a time (threads update ranges
side by side), the first ``n_weights`` entries of the range being weights (λ covers them). ``update``
returns Σ Θ² over those weights before the update: the L2 term of J_i.

- ``momentum``, the lecture's:  V := β V + (1 − β) D,  Θ := Θ − α V  (β = 0 is plain gradient descent);
- ``nesterov``, momentum that looks ahead, in the same dampened form:
  V := β V + (1 − β) D,  Θ := Θ − α (β V + (1 − β) D).  scikit-learn's and Keras's Nesterov use an
  undampened velocity v := μ v − η D, Θ := Θ + μ v − η D; the two give the same steps with μ = β and
  η = α (1 − β);
- ``adam`` (Kingma & Ba, Algorithm 1, as PyTorch computes it), with t the steps taken:
  m := β₁ m + (1 − β₁) D,  v := β₂ v + (1 − β₂) D²,  m̂ = m / (1 − β₁ᵗ),  v̂ = v / (1 − β₂ᵗ),
  Θ := Θ − α m̂ / (√v̂ + ε).  scikit-learn instead folds both corrections into α and adds ε to √v:
  Θ := Θ − α √(1 − β₂ᵗ)/(1 − β₁ᵗ) · m / (√v + ε), which differs slightly while √v̂ is near ε.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass
class UpdatePart:
    """One range of θ for an update: views of θ, of the gradient G = κ·Δ/m, and of each state array,
    ``n_weights`` entries of which (at the front) are weights; ``scratch`` is room the size of the range."""

    theta: np.ndarray
    G: np.ndarray
    state: dict[str, np.ndarray]
    n_weights: int
    scratch: np.ndarray


class Optimizer:
    """The interface every optimizer offers the engines and the checkpoints."""

    name: str = ""
    state_names: tuple[str, ...] = ()

    def __init__(self, size: int, dtype) -> None:
        self.state = {name: np.zeros(size, dtype=dtype) for name in self.state_names}
        self.t = 0  # steps taken

    @property
    def gradient_scale(self) -> float:
        """κ: the factor the engine multiplies D by before ``update`` sees it."""
        return 1.0

    def begin_step(self) -> None:
        """Called once before each step's ``update`` of its ranges."""
        self.t += 1

    def counters(self) -> dict:
        """The optimizer's scalar state, for a checkpoint."""
        return {"t": self.t}

    def restore_counters(self, record: dict) -> None:
        t = record.get("t") if isinstance(record, dict) else None
        if not isinstance(t, int) or isinstance(t, bool) or t < 0:
            raise ValueError(f"its optimizer record's 't' should be a whole number ≥ 0, got {t!r:.60}")
        self.t = t

    def update(self, part: UpdatePart, alpha: float, decay: float) -> float:
        """The update of one range of θ with learning rate α; returns Σ Θ² of its weights before it."""
        raise NotImplementedError


def scaled_gradient(part: UpdatePart, decay: float) -> np.ndarray:
    """κD = G + decay·Θ (weights; G alone on the biases) into the part's scratch, which it returns."""
    d, w = part.scratch, part.n_weights
    np.multiply(part.theta[:w], decay, out=d[:w])
    d[:w] += part.G[:w]
    d[w:] = part.G[w:]
    return d


def weight_squares(part: UpdatePart) -> float:
    weights = part.theta[: part.n_weights]
    return float(np.vdot(weights, weights))


class Momentum(Optimizer):
    """V := β V + (1 − β) D;  Θ := Θ − α V.  κ = 1 − β, so the engine's κD is the (1 − β) D term."""

    name = "momentum"
    state_names = ("velocity",)

    def __init__(self, size: int, dtype, beta: float = 0.9) -> None:
        super().__init__(size, dtype)
        self.beta = beta

    @property
    def gradient_scale(self) -> float:
        return 1.0 - self.beta

    def update(self, part: UpdatePart, alpha: float, decay: float) -> float:
        squares = weight_squares(part)
        V = part.state["velocity"]
        V *= self.beta
        V += scaled_gradient(part, decay)
        np.multiply(V, alpha, out=part.scratch)
        part.theta -= part.scratch
        return squares


class Nesterov(Momentum):
    """V := β V + (1 − β) D;  Θ := Θ − α (β V + (1 − β) D): the step momentum is about to take, looked at
    from where it lands (dampened, as ``momentum``; see the module's docstring for the undampened form)."""

    name = "nesterov"

    def update(self, part: UpdatePart, alpha: float, decay: float) -> float:
        squares = weight_squares(part)
        V = part.state["velocity"]
        d = scaled_gradient(part, decay)
        V *= self.beta
        V += d
        d += self.beta * V  # (1 − β) D + β V, in the scratch that held (1 − β) D
        d *= alpha
        part.theta -= d
        return squares


class Adam(Optimizer):
    """m := β₁ m + (1 − β₁) D;  v := β₂ v + (1 − β₂) D²;  Θ := Θ − α m̂ / (√v̂ + ε), with the bias-corrected
    m̂ = m / (1 − β₁ᵗ) and v̂ = v / (1 − β₂ᵗ) after t steps.  κ = 1."""

    name = "adam"
    state_names = ("first_moment", "second_moment")

    def __init__(
        self, size: int, dtype, beta: float = 0.9, beta2: float = 0.999, epsilon: float = 1e-8
    ) -> None:
        super().__init__(size, dtype)
        self.beta = self.beta1 = beta  # the config's β is Adam's β₁
        self.beta2, self.epsilon = beta2, epsilon

    def corrections(self) -> tuple[float, float]:
        """(1 − β₁ᵗ, 1 − β₂ᵗ) for the step being taken."""
        return 1.0 - self.beta1**self.t, 1.0 - self.beta2**self.t

    def update(self, part: UpdatePart, alpha: float, decay: float) -> float:
        squares = weight_squares(part)
        first, second = part.state["first_moment"], part.state["second_moment"]
        d = scaled_gradient(part, decay)
        first *= self.beta1
        first += (1.0 - self.beta1) * d
        second *= self.beta2
        d *= d
        d *= 1.0 - self.beta2
        second += d
        correction1, correction2 = self.corrections()
        np.divide(second, correction2, out=d)  # v̂
        np.sqrt(d, out=d)
        d += self.epsilon
        np.divide(first, d, out=d)  # m / (√v̂ + ε)
        d *= alpha / correction1
        part.theta -= d
        return squares


OPTIMIZERS: dict[str, type[Optimizer]] = {"momentum": Momentum, "nesterov": Nesterov, "adam": Adam}


def make_optimizer(
    name: str, size: int, dtype, beta: float = 0.9, beta2: float = 0.999, epsilon: float = 1e-8
) -> Optimizer:
    """The optimizer ``name`` (a key of ``OPTIMIZERS``) for a θ of ``size`` entries."""
    kind = OPTIMIZERS[name]
    if kind is Adam:
        return Adam(size, dtype, beta, beta2, epsilon)
    return kind(size, dtype, beta)


def check_hyperparameters(beta2: float, epsilon: float) -> list[tuple[bool, str, object]]:
    """(ok, what it should be, value) for Adam's own hyperparameters (β is checked with the rest)."""

    def number(value) -> bool:
        return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)

    return [
        (
            number(beta2) and 0 <= beta2 < 1,
            "beta2 (β₂, Adam's second moment) should be a number in [0, 1)",
            beta2,
        ),
        (number(epsilon) and epsilon > 0, "epsilon (Adam's ε) should be a number > 0", epsilon),
    ]

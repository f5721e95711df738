"""Optimizer updates, compiled: each one fused pass over θ (``nncli.optim`` holds their formulas).

Every update adds the lecture's coupled L2 term on the weights only (the first ``n_weights`` entries of θ,
``nncli.model.network``) and returns Σ Θ² over them, of Θ as it was before the update: the L2 term of J.
"""

from __future__ import annotations

import numpy as np

from nncli.engines.compiled.jit import fast


@fast
def momentum_update(V, theta, G, n_weights, beta, decay, alpha):
    """V := β V + G + decay·Θ on the first ``n_weights`` entries (β V + G on the rest), Θ := Θ − α V, with
    G = (1 − β) Δ/m and decay = (1 − β) λ/m (``nncli.optim.optimizers.Momentum``); returns Σ Θ² over the
    weights, of Θ as it was before the update."""
    squares = 0.0
    for p in range(n_weights):
        t = theta[p]
        squares += t * t
        v = beta * V[p] + G[p] + decay * t
        V[p] = v
        theta[p] = t - alpha * v
    for p in range(n_weights, theta.size):
        v = beta * V[p] + G[p]
        V[p] = v
        theta[p] = theta[p] - alpha * v
    return squares


@fast
def _nesterov_range(V, theta, G, lo, hi, beta, decay, alpha):
    """``nesterov_update`` over entries lo…hi, each with the same decay (no branch in the loop, so that it
    vectorizes); returns their Σ Θ² before the update."""
    squares = 0.0
    for p in range(lo, hi):
        t = theta[p]
        squares += t * t
        d = G[p] + decay * t
        v = beta * V[p] + d
        V[p] = v
        theta[p] = t - alpha * (beta * v + d)
    return squares


@fast
def nesterov_update(V, theta, G, n_weights, beta, decay, alpha):
    """d = G + decay·Θ (κD, κ = 1 − β; G alone on the biases), V := β V + d, Θ := Θ − α (β V + d)
    (``Nesterov``); returns Σ Θ² over the weights before the update."""
    squares = _nesterov_range(V, theta, G, 0, n_weights, beta, decay, alpha)
    _nesterov_range(V, theta, G, n_weights, theta.size, beta, decay * 0, alpha)
    return squares


@fast
def _adam_range(
    first, second, theta, G, lo, hi, beta1, beta2, decay, step_size, inverse_correction2, epsilon
):
    """``adam_update`` over entries lo…hi, each with the same decay; returns their Σ Θ² before it."""
    squares = 0.0
    one = theta.dtype.type(1.0)
    for p in range(lo, hi):
        t = theta[p]
        squares += t * t
        d = G[p] + decay * t
        m = beta1 * first[p] + (one - beta1) * d
        v = beta2 * second[p] + (one - beta2) * d * d
        first[p] = m
        second[p] = v
        theta[p] = t - step_size * m / (np.sqrt(v * inverse_correction2) + epsilon)
    return squares


@fast
def adam_update(first, second, theta, G, n_weights, beta1, beta2, decay, step_size, correction2, epsilon):
    """D = G + decay·Θ (κ = 1; G alone on the biases), m := β₁ m + (1 − β₁) D, v := β₂ v + (1 − β₂) D²,
    Θ := Θ − α m̂ / (√v̂ + ε) (``Adam``), with step_size = α / (1 − β₁ᵗ) and correction2 = 1 − β₂ᵗ; returns
    Σ Θ² over the weights before the update."""
    inverse = theta.dtype.type(1.0) / correction2
    squares = _adam_range(
        first, second, theta, G, 0, n_weights, beta1, beta2, decay, step_size, inverse, epsilon
    )
    _adam_range(
        first, second, theta, G, n_weights, theta.size, beta1, beta2, decay * 0, step_size, inverse, epsilon
    )
    return squares


OPTIMIZER_CODES = {"momentum": 0, "nesterov": 1, "adam": 2}
# The scalars a one-call step's update reads, in its ``hyper`` array after (c, β, decay, α)
HYPER_AFTER_ALPHA = ("beta2", "epsilon", "step_size", "correction2")


def step_scalars(optimizer, alpha: float) -> tuple[float, float, float, float]:
    """(β₂, ε, α / (1 − β₁ᵗ), 1 − β₂ᵗ) for Adam's step being taken; zeros for the others."""
    if optimizer.name != "adam":
        return 0.0, 0.0, 0.0, 0.0
    correction1, correction2 = optimizer.corrections()
    return optimizer.beta2, optimizer.epsilon, alpha / correction1, correction2


@fast
def apply_update(code, first, second, theta, G, n_weights, hyper):
    """The update of optimizer ``code`` (``OPTIMIZER_CODES``) over θ, for a one-call step: ``first`` is
    momentum's and Nesterov's velocity or Adam's m, ``second`` Adam's v; ``hyper`` = (c, β, decay, α, β₂, ε,
    α / (1 − β₁ᵗ), 1 − β₂ᵗ). Returns Σ Θ² over the weights before the update."""
    beta, decay, alpha = hyper[1], hyper[2], hyper[3]
    if code == 0:
        return momentum_update(first, theta, G, n_weights, beta, decay, alpha)
    if code == 1:
        return nesterov_update(first, theta, G, n_weights, beta, decay, alpha)
    return adam_update(
        first, second, theta, G, n_weights, beta, hyper[4], decay, hyper[6], hyper[7], hyper[5]
    )


def state_arrays(state: dict, dtype) -> tuple[np.ndarray, np.ndarray]:
    """(first, second) of an optimizer's state arrays (or of views of them) as ``apply_update`` takes
    them: an empty second for an optimizer with one."""
    arrays = list(state.values())
    return arrays[0], arrays[1] if len(arrays) > 1 else np.empty(0, dtype=dtype)


def fused_update(optimizer, part, alpha, decay) -> float | None:
    """``optimizer.update(part, alpha, decay)`` as one compiled pass over the part, for the optimizers that
    have one; None for the others."""
    code = OPTIMIZER_CODES.get(optimizer.name)
    if code is None:
        return None
    dtype = part.theta.dtype
    hyper = np.array([0.0, optimizer.beta, decay, alpha, *step_scalars(optimizer, alpha)], dtype=dtype)
    first, second = state_arrays(part.state, dtype)
    return apply_update(code, first, second, part.theta, part.G, part.n_weights, hyper)

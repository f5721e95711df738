"""Training written plainly, for the tests to hold the engines to: the gradient from ``Network.backprop``
(itself held to the lecture's loop in ``reference.py``), then each optimizer, schedule and clipping rule
written independently here from its published formula, with new arrays every step."""

import math

import numpy as np

from nncli.model.network import GradientSums
from nncli.optim.batches import BATCH_MODES, epoch_batches


def momentum(state, params, grads, alpha, beta, **_):
    """The lecture's: V := β V + (1 − β) D; Θ := Θ − α V."""
    for index, (p, D) in enumerate(zip(params, grads, strict=True)):
        V = state.setdefault(index, np.zeros_like(p))
        V[...] = beta * V + (1 - beta) * D
        p -= alpha * V


def nesterov(state, params, grads, alpha, beta, **_):
    """Dampened Nesterov: V := β V + (1 − β) D; Θ := Θ − α (β V + (1 − β) D)."""
    for index, (p, D) in enumerate(zip(params, grads, strict=True)):
        V = state.setdefault(index, np.zeros_like(p))
        V[...] = beta * V + (1 - beta) * D
        p -= alpha * (beta * V + (1 - beta) * D)


def adam(state, params, grads, alpha, beta, beta2, epsilon, **_):
    """Kingma & Ba's Algorithm 1: bias-corrected moments, Θ := Θ − α m̂ / (√v̂ + ε)."""
    t = state["t"] = state.get("t", 0) + 1
    for index, (p, D) in enumerate(zip(params, grads, strict=True)):
        m, v = state.setdefault(index, (np.zeros_like(p), np.zeros_like(p)))
        m[...] = beta * m + (1 - beta) * D
        v[...] = beta2 * v + (1 - beta2) * D**2
        m_hat = m / (1 - beta**t)
        v_hat = v / (1 - beta2**t)
        p -= alpha * m_hat / (np.sqrt(v_hat) + epsilon)


OPTIMIZERS = {"momentum": momentum, "nesterov": nesterov, "adam": adam}


def clipped(grads, clip_norm):
    """D scaled to norm ``clip_norm`` when it is longer, by the norm over every array at once."""
    if clip_norm is None:
        return grads
    norm = math.sqrt(sum(float(np.sum(D**2)) for D in grads))
    return grads if norm <= clip_norm else [D * (clip_norm / norm) for D in grads]


def plain_train(
    net, X, Y, alpha=0.1, lambda_=0.0, beta=0.9, batch="mini-batch", batch_size=32, epochs=1, seed=0,
    optimizer="momentum", beta2=0.999, epsilon=1e-8, alphas=None, clip_norm=None,
):  # fmt: skip
    """Train ``net`` in place; ``alphas(e)`` gives each epoch's α (default: α throughout). Returns the
    batch J_i of every step."""
    rng = np.random.default_rng(seed)
    update, state, costs = OPTIMIZERS[optimizer], {}, []
    for epoch in range(epochs):
        rate = alpha if alphas is None else alphas(epoch)
        for rows in epoch_batches(len(X), BATCH_MODES[batch], batch_size, rng):
            loss, grad_sums, _ = net.backprop(X[rows], Y[rows])
            J, grads = net.finish(GradientSums(len(X[rows]), loss, grad_sums), lambda_)
            grads = clipped(grads, clip_norm)
            update(state, net.params, grads, rate, beta=beta, beta2=beta2, epsilon=epsilon)
            costs.append(J)
    return costs

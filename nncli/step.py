"""The training step's fast path: one FP/BP pass and the momentum update, in preallocated buffers.

The straightforward step (``Network.backprop``, ``Network.finish``, ``optim.Momentum.step``) computes

    D = Δ/m + (λ/m) Θ,   V := β V + (1 − β) D,   Θ := Θ − α V.

``FastStep`` computes the same step with fewer passes over memory:

- it keeps the displacement S = α V instead of V, so Θ := Θ − S is one pass over θ;
- it scales δ^(L) by c = α(1 − β)/m before backpropagating (every Δ is linear in δ^(L)), so the gradient
  buffer receives c·Δ directly;
- it updates the flat parameter vector θ at once: S := β S + c·Δ + c·λ·Θ (weights only), Θ := Θ − S.

Activations, errors and gradients live in buffers allocated once per batch size and reused. The result
equals the straightforward step up to rounding (the tests hold them to 1e-12 in float64).
"""

from __future__ import annotations

import numpy as np

from nncli.network import Network


class _Buffers:
    """Arrays for steps of ``rows`` examples: the gathered batch, a^(l), δ^(l) and scratch per layer."""

    def __init__(self, net: Network, rows: int) -> None:
        sizes = net.layer_sizes
        make = lambda s: np.empty((rows, s), dtype=net.dtype)  # noqa: E731
        self.X = make(sizes[0])
        self.Y = make(sizes[-1])
        self.activations = [make(s) for s in sizes[1:]]
        self.deltas = [make(s) for s in sizes[1:]]
        self.scratch = [make(s) for s in sizes[1:]]


class FastStep:
    """Gradient descent with momentum on ``net``, one batch per call, in place."""

    def __init__(self, net: Network, alpha: float, lambda_: float, beta: float) -> None:
        self.net = net
        self.alpha, self.lambda_, self.beta = alpha, lambda_, beta
        self.displacement = np.zeros_like(net.theta)  # S = α V
        self.gradient = np.zeros_like(net.theta)
        self.gradient_views = [net.views(self.gradient, layer) for layer in net.layers]
        self._buffers: dict[int, _Buffers] = {}

    @property
    def velocity(self) -> np.ndarray:
        """V = S / α, laid out like θ."""
        return self.displacement / self.alpha

    def __call__(self, X: np.ndarray, Y: np.ndarray, rows) -> tuple[float, np.ndarray, np.ndarray]:
        """One step on the rows ``rows`` (a slice or an index array) of X and Y.

        Returns (J_i of the batch, a^(L) of the batch, Y of the batch), all before the update.
        """
        net = self.net
        if isinstance(rows, slice):
            X_batch, Y_batch = X[rows], Y[rows]
            m = len(X_batch)
            buffers = self._buffers_for(m)
        else:
            m = len(rows)
            buffers = self._buffers_for(m)
            X_batch, Y_batch = buffers.X, buffers.Y
            np.take(X, rows, axis=0, out=X_batch)
            np.take(Y, rows, axis=0, out=Y_batch)

        activations = [X_batch, *buffers.activations]
        for index, layer in enumerate(net.layers[:-1]):
            layer.forward_into(activations[index], activations[index + 1])
            net.hidden.g_inplace(activations[index + 1], buffers.scratch[index])
        net.layers[-1].forward_into(activations[-2], activations[-1])
        loss = net.output.activate_and_loss_inplace(activations[-1], Y_batch)

        c = self.alpha * (1.0 - self.beta) / m
        delta = buffers.deltas[-1]
        np.subtract(activations[-1], Y_batch, out=delta)
        delta *= c
        for index in range(len(net.layers) - 1, -1, -1):
            layer = net.layers[index]
            layer.gradient_sums_into(delta, activations[index], self.gradient_views[index])
            if index > 0:
                below = buffers.deltas[index - 1]
                layer.propagate_into(delta, below)
                net.hidden.scale_by_g_prime(below, activations[index], buffers.scratch[index - 1])
                delta = below

        J = loss / m + net.penalty(self.lambda_, m)
        S, theta = self.displacement, net.theta
        S *= self.beta
        S += self.gradient
        if self.lambda_ != 0.0:
            k = net.n_regularized
            decay = self.gradient[:k]
            np.multiply(theta[:k], c * self.lambda_, out=decay)
            S[:k] += decay
        theta -= S
        return J, activations[-1], Y_batch

    def _buffers_for(self, rows: int) -> _Buffers:
        buffers = self._buffers.get(rows)
        if buffers is None:
            buffers = self._buffers[rows] = _Buffers(self.net, rows)
        return buffers

"""Forward and back propagation of one example (a stochastic step), with vectors.

With m = 1 the arithmetic is tiny and a step costs what its NumPy calls cost, so this path makes fewer and
cheaper ones than the general, row-matrix path of ``nncli.engines.numpy_engine``:

- a^(l), z^(l+1) and δ^(l+1) are vectors: no broadcasting; z^(l+1) = Θ^(l) a^(l) is a matrix–vector product
  on W as it is stored (no transposed view);
- Δ^(l) = δ^(l+1) (a^(l))ᵀ is an outer product, which BLAS does as an (s_{l+1}×1)·(1×s_l) product;
- a bias's gradient sum Σ_i δ^(l+1) is δ^(l+1) itself, so δ^(l+1) is computed straight into the
  gradient vector where that sum belongs, and nothing is copied;
- the output units use ``OutputLoss.example_into`` (softmax shifts z by its maximum only when it must).

It serves networks of ``Dense`` layers; other layer types take the general path.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nncli.engines.numpy_engine import RangeUpdate, cost
from nncli.model.layers import Dense
from nncli.model.network import Network
from nncli.optim.optimizers import Optimizer


def serves(net: Network) -> bool:
    """Whether this path can train ``net``: every layer fully connected, the hidden ones of one activation."""
    return all(type(layer) is Dense for layer in net.layers) and net.hidden is not None


@dataclass
class _LayerBuffers:
    """One Dense layer's arrays for the example path, made once: its parameters W and b,
    z^(l+1) turned in place into a^(l+1) (as a vector and a 1-row view), the gradient's view ΔW, δ^(l+1)
    (the gradient's view Δb, as a vector and a column) and scratch for g′."""

    W: np.ndarray
    b: np.ndarray
    a: np.ndarray
    a_row: np.ndarray
    grad_W: np.ndarray
    delta: np.ndarray
    delta_column: np.ndarray
    scratch: np.ndarray


class ExampleBackprop:
    """c·Δ of one example, written into ``gradient`` (laid out like θ), for the network ``net``; the batch
    sum of ``metric`` on the side when one is given."""

    def __init__(self, net: Network, gradient: np.ndarray, c: np.floating, metric=None) -> None:
        self.net = net
        self.c = c
        self.metric = metric
        self.layers = []
        for layer in net.layers:
            grad_W, grad_b = net.views(gradient, layer)
            a = np.empty(layer.sizes[1], dtype=net.dtype)
            self.layers.append(
                _LayerBuffers(
                    layer.W,
                    layer.b,
                    a,
                    a[None, :],
                    grad_W,
                    grad_b,
                    grad_b[:, None],
                    np.empty_like(a),
                )
            )

    def run(self, X: np.ndarray, Y: np.ndarray, row: int) -> tuple[float, float]:
        """(loss, metric sum) of the example X[row], Y[row], with its c·Δ left in the gradient vector."""
        net = self.net
        hidden, layers = net.hidden, self.layers
        a = X[row]
        for layer in layers[:-1]:
            np.dot(layer.W, a, out=layer.a)
            layer.a += layer.b
            hidden.g_inplace(layer.a, layer.scratch)
            a = layer.a
        top = layers[-1]
        np.dot(top.W, a, out=top.a)
        top.a += top.b
        y = Y[row]
        # a^(L) is written into δ^(L)'s place, then turned into δ^(L) = c·(a^(L) − y) there
        loss = net.output.example_into(top.a, y, top.delta)
        metric_sum = 0.0
        if self.metric is not None:
            metric_sum = self.metric.batch_sum(top.delta[None, :], Y[row : row + 1])
        np.subtract(top.delta, y, out=top.delta)
        top.delta *= self.c
        for index in range(len(layers) - 1, 0, -1):
            layer, below = layers[index], layers[index - 1]
            np.dot(layer.delta_column, below.a_row, out=layer.grad_W)
            np.dot(layer.delta, layer.W, out=below.delta)
            hidden.scale_by_g_prime(below.delta, below.a, below.scratch)
        first = layers[0]
        np.dot(first.delta_column, X[row : row + 1], out=first.grad_W)
        return loss, metric_sum


class ExampleStep:
    """Steps of one example: ``ExampleBackprop`` into one gradient vector, then the optimizer's update over
    all of θ as one range."""

    def __init__(
        self, net: Network, optimizer: Optimizer, lambda_: float, metric, passes, gradient, clip_norm
    ) -> None:
        kappa = optimizer.gradient_scale
        self.lambda_, self.decay = lambda_, kappa * lambda_
        self.backprop = ExampleBackprop(net, gradient, net.dtype.type(kappa), metric)
        self.update = RangeUpdate(net, optimizer, [gradient], passes, None, clip_norm)

    def run(self, X: np.ndarray, Y: np.ndarray, rows, alpha: float) -> tuple[float, float]:
        row = rows.start if rows.__class__ is slice else int(rows[0])
        loss, metric_sum = self.backprop.run(X, Y, row)
        return cost(loss, self.update.run(alpha, self.decay), self.lambda_, 1), metric_sum

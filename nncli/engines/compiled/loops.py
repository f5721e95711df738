"""The whole training step compiled as one function, for steps too small to pay for NumPy's calls.

A step of a few rows through a small network is a few hundred thousand multiply-adds; the NumPy path
spends more on its two dozen calls (each a few microseconds, however small its arrays) than on the
arithmetic. ``step`` runs FP, BP and the momentum update as one call, with the kernels of ``units``,
``products`` and ``updates``: δ^(L) = c·(a^(L) − y), c = (1 − β)/m, so the gradient buffer receives c·Δ,
and V := β V + c·Δ + c·λ·Θ (weights only), Θ := Θ − α V.

``CompiledStep`` drives ``step`` for one batch size; ``CompiledPasses`` serves the steps of
``nncli.engines.numpy_engine.ChunkedStep`` that keep BLAS for their products. This package imports numba;
``nncli.engines.registry`` imports it only for the ``compiled`` engine.
"""

from __future__ import annotations

import numba
import numpy as np

from nncli.engines import example_step
from nncli.engines.compiled.jit import fast
from nncli.engines.compiled.products import forward, gather_columns, gather_rows, gradient, propagate
from nncli.engines.compiled.units import (
    HIDDEN_CODES,
    OUTPUT_CODES,
    activate,
    add_bias,
    knows_units,
    output_and_delta,
    propagate_one_unit,
    scale_by_g_prime,
    unit_codes,
)
from nncli.engines.compiled.updates import (
    OPTIMIZER_CODES,
    apply_update,
    fused_update,
    state_arrays,
    step_scalars,
)
from nncli.engines.numpy_engine import cost


@fast
def step(X, Y, rows, start, theta, first, second, G, work, sizes, offsets, hyper, codes):
    """One step on m = ``work``'s batch rows: rows[i] of X and Y, or rows start… when ``rows`` is empty.

    ``sizes`` = (m, s_1, …, s_{L+1}); ``offsets`` = (W^(1), b^(1), …, W^(L), b^(L)) start in θ, then the
    number of regularized entries; ``hyper`` = (c, β, decay, α, β₂, ε, α/(1 − β₁ᵗ), 1 − β₂ᵗ) and ``codes`` =
    (hidden, output, optimizer), as ``nncli.engines.compiled.updates.apply_update`` reads them; ``first``
    and ``second`` are the optimizer's state arrays. ``work`` holds,
    packed for this m: the gathered X rows a^(1), a^(2) … a^(L+1), the gathered Y rows, δ^(2) … δ^(L+1).
    Returns (loss summed over the rows, Σ Θ² of the weights before the update).
    """
    m, layers = sizes[0], sizes.size - 2
    c = hyper[0]
    hidden, output = codes[0], codes[1]
    n_weights = offsets[2 * layers]

    # views of work, laid out as above
    position = 0
    activations = []
    for level in range(layers + 1):
        activations.append(work[position : position + m * sizes[level + 1]].reshape((m, sizes[level + 1])))
        position += m * sizes[level + 1]
    K = sizes[layers + 1]
    Y_batch = work[position : position + m * K].reshape((m, K))
    position += m * K
    deltas = []
    for level in range(layers):
        deltas.append(work[position : position + m * sizes[level + 2]].reshape((m, sizes[level + 2])))
        position += m * sizes[level + 2]

    # the batch's rows
    if rows.size:
        gather_rows(X, rows, activations[0])
        gather_rows(Y, rows, Y_batch)
    else:  # copied by the same loops from consecutive rows
        gather_rows(X, np.arange(start, start + m), activations[0])
        gather_rows(Y, np.arange(start, start + m), Y_batch)

    # FP
    for level in range(layers):
        s_in, s_out = sizes[level + 1], sizes[level + 2]
        W = theta[offsets[2 * level] : offsets[2 * level] + s_out * s_in].reshape((s_out, s_in))
        b = theta[offsets[2 * level + 1] : offsets[2 * level + 1] + s_out]
        forward(activations[level], W, b, activations[level + 1])
        if level < layers - 1:
            activate(activations[level + 1], hidden)
    as_rows = (m, sizes[layers + 1], 1)  # examples as rows, in the (groups, K, inner) of the kernel
    loss = output_and_delta(
        activations[layers].reshape(as_rows),
        Y_batch.reshape(as_rows),
        deltas[layers - 1].reshape(as_rows),
        c,
        output,
    )

    # BP, the gradient c·Δ into G
    for level in range(layers - 1, -1, -1):
        s_in, s_out = sizes[level + 1], sizes[level + 2]
        w_at, b_at = offsets[2 * level], offsets[2 * level + 1]
        grad_W = G[w_at : w_at + s_out * s_in].reshape((s_out, s_in))
        gradient(deltas[level], activations[level], grad_W, G[b_at : b_at + s_out])
        if level > 0:
            W = theta[w_at : w_at + s_out * s_in].reshape((s_out, s_in))
            propagate(deltas[level], W, deltas[level - 1])
            scale_by_g_prime(deltas[level - 1], activations[level], hidden)

    squares = apply_update(codes[2], first, second, theta, G, n_weights, hyper)
    return loss, squares


def parameter_starts(net) -> list[int]:
    """Where W^(1), b^(1), …, W^(L), b^(L) start in θ."""
    return [net.slices[(id(layer), index)].start for layer in net.layers for index in range(2)]


_NO_ROWS = np.empty(0, dtype=np.int64)


def batch_rows(rows) -> tuple[np.ndarray, int]:
    """A step's rows as the kernels take them: (index array, 0), or (no index, start) for a slice."""
    return (_NO_ROWS, rows.start) if rows.__class__ is slice else (rows, 0)


class CompiledStep:
    """Steps of m rows on ``net`` through ``step``, with one of the optimizers ``OPTIMIZER_CODES`` knows:
    the network's shape, offsets and codes, and the work buffer, made once. ``run`` updates θ and the
    optimizer's state in place."""

    def __init__(self, net, optimizer, lambda_: float, metric, m: int, gradient: np.ndarray) -> None:
        self.net, self.optimizer, self.lambda_, self.metric, self.m = net, optimizer, lambda_, metric, m
        self.first, self.second = state_arrays(optimizer.state, net.dtype)
        self.gradient = gradient
        sizes = net.layer_sizes
        self.sizes = np.array([m, *sizes], dtype=np.int64)
        self.offsets = np.array([*parameter_starts(net), net.n_regularized], dtype=np.int64)
        kappa = optimizer.gradient_scale
        beta = getattr(optimizer, "beta", getattr(optimizer, "beta1", 0.0))
        self.hyper = np.array(
            [kappa / m, beta, kappa * lambda_ / m, 0.0, 0.0, 0.0, 0.0, 0.0], dtype=net.dtype
        )
        self.codes = np.array([*unit_codes(net), OPTIMIZER_CODES[optimizer.name]], dtype=np.int64)
        rows_of_work = sum(sizes) + sizes[-1] + sum(sizes[1:])
        self.work = np.zeros(m * rows_of_work, dtype=net.dtype)
        K, at = sizes[-1], m * sum(sizes[:-1])
        self.outputs = self.work[at : at + m * K].reshape(m, K)
        self.targets = self.work[at + m * K : at + 2 * m * K].reshape(m, K)

    def run(self, X: np.ndarray, Y: np.ndarray, rows, alpha: float) -> tuple[float, float]:
        """(J_i of the batch, the metric's batch sum), both before the update."""
        index, start = batch_rows(rows)
        self.optimizer.begin_step()
        self.hyper[3] = alpha
        self.hyper[4:] = step_scalars(self.optimizer, alpha)
        loss, squares = step(
            X, Y, index, start, self.net.theta, self.first, self.second, self.gradient, self.work,
            self.sizes, self.offsets, self.hyper, self.codes,
        )  # fmt: skip
        metric = self.metric
        metric_sum = metric.batch_sum(self.outputs, self.targets) if metric is not None else 0.0
        return cost(loss, squares, self.lambda_, self.m), metric_sum


class CompiledPasses:
    """Everything but the products of the steps that keep BLAS for them, through this module's kernels:
    the same methods as ``nncli.engines.numpy_engine.NumpyPasses``, one pass each."""

    def __init__(self, net) -> None:
        self.hidden, self.output = HIDDEN_CODES[net.hidden.name], OUTPUT_CODES[net.output.name]

    def gather(self, X: np.ndarray, Y: np.ndarray, rows: np.ndarray, X_rows: np.ndarray, Y_columns) -> None:
        gather_rows(X, rows, X_rows)
        gather_columns(Y, rows, Y_columns)

    def add_bias_and_activate(self, z: np.ndarray, b: np.ndarray, scratch: np.ndarray, layer: int) -> None:
        add_bias(z, b)
        activate(z, self.hidden)

    def propagate_error(self, dense, delta, below, a, scratch, layer: int) -> None:
        if delta.shape[0] == 1:  # one unit above: an outer product, scaled by g′ as it is made
            propagate_one_unit(dense.W[0], delta[0], below, a, self.hidden)
        else:
            dense.propagate_columns(delta, below)
            scale_by_g_prime(below, a, self.hidden)

    def output_and_delta(self, z: np.ndarray, Y: np.ndarray, delta: np.ndarray, c) -> float:
        columns = (1, *z.shape)  # (K, m) as the kernel's (groups, K, inner)
        return output_and_delta(
            z.reshape(columns), Y.reshape(columns), delta.reshape(columns), c, self.output
        )

    def update(self, optimizer, part, alpha: float, decay: float) -> float:
        """The optimizer's update of one range of θ as one compiled pass where it has one."""
        squares = fused_update(optimizer, part, alpha, decay)
        return optimizer.update(part, alpha, decay) if squares is None else squares


def usable() -> bool:
    """False when numba runs as plain Python (NUMBA_DISABLE_JIT=1), far slower than NumPy."""
    return not numba.config.DISABLE_JIT


def serves(net) -> bool:
    """Whether ``step`` can train ``net``: fully connected layers and units it knows."""
    return example_step.serves(net) and knows_units(net)

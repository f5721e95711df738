"""The compiled step that calls BLAS for its products: on one thread, or shared among threads by units.

``nncli.engines.compiled.loops.step`` writes its products as loops, which run at about half BLAS's speed
once a step has more than a few thousand multiply-adds. Here the step is one numba function whose products
are calls of BLAS's gemm and whose everything else (bias, units, g′, the momentum update) is compiled
loops (``units``), with no NumPy call between them.

On several cores, BLAS spreads one product over them, but everything between two products runs on one
core while the others wait, and each product ends in a wait for the slowest thread. So ``step``'s
parallel loops give every thread a share of each layer's units, for every phase of the step;
``serial_step`` is the same function compiled without threads (each loop over threads runs once, over
all the units):

- forward:  thread t computes rows U_t of z^(l+1) = W^(l) a^(l) + b^(l) (rows U_t of W^(l) times all of
  a^(l)), then a^(l+1) = g(z^(l+1)) on those rows;
- output:   a^(L), the loss and δ^(L) = c·(a^(L) − y) on one thread (K × m numbers);
- gradient: S_W := β S_W + c·Δ^(l) for the rows U_t of layer l's weights, as one BLAS call that
  accumulates into S (δ^(l+1) rows U_t times a^(l)ᵀ, plus β S), and S_b := β S_b + c·Σ_i δ^(l+1)_i;
- backward: thread t computes rows V_t of δ^(l) = (W^(l))ᵀ δ^(l+1) .* g′(z^(l)), V_t being its share of
  layer l's own units;
- update:   S := S + c·λ·W (weights only), W := W − S, Σ W² on the way (the L2 term of J), rows U_t of
  layer l, in the next parallel loop (the backward loop still reads all of W^(l)).

So the only single-threaded work is the output units, and a thread's part of W^(l) and S stays in its core's
cache from its gradient to its update. Each thread's BLAS calls run on that thread
(``nncli.engines.numpy_engine`` holds BLAS to one thread of its own while a run lasts). The formulas are those
of ``nncli.engines.numpy_engine``, with c = α(1 − β)/m, S = α V; the tests hold the result to the
straightforward step's within 1e-12 in float64. It is deterministic for a given number of threads.

BLAS is called through ``nncli.engines.compiled.cblas``, where ``available`` says whether this process can:
elsewhere the registry keeps to ``nncli.engines.compiled``'s loops or ``nncli.engines.numpy_engine``'s path.
A process forked from one that has run the threaded step runs the serial one only.
"""

from __future__ import annotations

import types as pytypes

import numba
import numpy as np
from numba import prange

from nncli.engines.compiled.cblas import available, view
from nncli.engines.compiled.dense_gemm import (
    NO_UNITS,
    forward_units,
    gradient_units,
    layer_input,
    propagate_units,
)
from nncli.engines.compiled.jit import fast, threaded
from nncli.engines.compiled.loops import batch_rows, parameter_starts
from nncli.engines.compiled.products import gather_columns, gather_rows
from nncli.engines.compiled.units import output_and_delta, unit_codes
from nncli.engines.compiled.updates import OPTIMIZER_CODES, apply_update, state_arrays, step_scalars
from nncli.engines.numpy_engine import cost, even_edges

_threaded, _serial = threaded, fast


@_serial
def _finish_update(V, theta, decay, alpha):
    """V := V + decay·Θ, Θ := Θ − α V over the weights of a part; returns their Σ Θ² before the update."""
    squares = 0.0
    for p in range(theta.size):
        t = theta[p]
        squares += t * t
        v = V[p] + decay * t
        V[p] = v
        theta[p] = t - alpha * v
    return squares


@_serial
def _move(V, theta, alpha):
    """Θ := Θ − α V (biases, which λ does not cover)."""
    for p in range(theta.size):
        theta[p] -= alpha * V[p]


@_serial
def _update_rows(code, theta, first, second, G, offsets, sizes, level, shares, t, hyper):
    """The update of thread t's rows of layer ``level``, its weights and biases; returns Σ W². Momentum's
    velocity already holds β V + c·Δ (the gradient's gemm added into it); the other optimizers read c·Δ
    from G (``apply_update``)."""
    s_in = sizes[level + 1]
    lo, hi = shares[level + 1, t], shares[level + 1, t + 1]
    w_at, b_at = offsets[2 * level], offsets[2 * level + 1]
    weights, biases = slice(w_at + lo * s_in, w_at + hi * s_in), slice(b_at + lo, b_at + hi)
    if code == 0:
        squares = _finish_update(first[weights], theta[weights], hyper[2], hyper[3])
        _move(first[biases], theta[biases], hyper[3])
        return squares
    count = (hi - lo) * s_in
    squares = apply_update(code, first[weights], second[weights], theta[weights], G[weights], count, hyper)
    apply_update(code, first[biases], second[biases], theta[biases], G[biases], 0, hyper)
    return squares


@_threaded
def step(X, Y, rows, start, theta, first, second, G, work, sizes, offsets, places, hyper, codes, shares):
    """One step on m rows: rows[i] of X and Y, or rows start… when ``rows`` is empty.

    ``sizes`` = (m, s_1, …, s_{L+1}); ``offsets`` = (W^(1), b^(1), …, W^(L), b^(L)) start in θ, then the
    number of weights; ``places`` = where in ``work`` the gathered X rows (m, s_1), a^(2) … a^(L+1) (s_l, m),
    the batch's Y (K, m) and δ^(2) … δ^(L+1) (s_l, m) start; ``hyper`` and ``codes`` = (hidden, output,
    optimizer) as ``nncli.engines.compiled.loops.step`` takes them; ``first`` and ``second`` are the
    optimizer's state, ``G`` room for c·Δ (momentum adds c·Δ straight into its velocity instead, through
    gemm's β); ``shares[0]`` cuts the m rows among the threads, ``shares[l]`` the units of layer l.
    Returns (loss summed over the rows, Σ Θ² of the weights before the update).
    """
    m, layers = sizes[0], sizes.size - 2
    c, beta = hyper[0], hyper[1]
    hidden, output, code = codes[0], codes[1], codes[2]
    # momentum: S := β V + c·Δ in one gemm into the velocity; the others: G := c·Δ
    target = first if code == 0 else G
    gemm_beta = beta if code == 0 else 0.0
    threads = shares.shape[1] - 1
    # Each thread updates its rows of a layer as soon as the backward pass is done with them (its part of W
    # and the state still in its core's cache); on one thread, an optimizer that reads G updates θ in one
    # pass at the end instead, which the compiler vectorizes better than the per-layer ranges.
    rows_updated = code == 0 or threads > 1
    n = sizes[1]
    K = sizes[layers + 1]
    X_rows = view(work, places[0], m, n)
    Y_batch = view(work, places[layers + 1], K, m)

    for t in prange(threads):  # the batch's rows
        lo, hi = shares[0, t], shares[0, t + 1]
        # consecutive rows go through the same loops (a slice assignment's shape check costs a compile)
        taken = rows[lo:hi] if rows.size else np.arange(start + lo, start + hi)
        gather_rows(X, taken, X_rows[lo:hi])
        gather_columns(Y, taken, Y_batch[:, lo:hi])

    for level in range(layers):  # FP
        s_in, s_out = sizes[level + 1], sizes[level + 2]
        w_at, b_at = offsets[2 * level], offsets[2 * level + 1]
        z = view(work, places[level + 1], s_out, m)
        a_at, lda = layer_input(level, X_rows.ctypes.data, n, work, places[level], s_in, m)
        units = hidden if level < layers - 1 else NO_UNITS
        for t in prange(threads):
            lo, hi = shares[level + 1, t], shares[level + 1, t + 1]
            forward_units(theta, w_at, b_at, s_in, lo, hi, a_at, lda, level == 0, z, units)

    a_out = view(work, places[layers], K, m)
    delta_out = view(work, places[layers + 2 + layers - 1], K, m)
    columns = (1, K, m)  # (K, m) as the kernel's (groups, K, inner)
    loss = output_and_delta(
        a_out.reshape(columns), Y_batch.reshape(columns), delta_out.reshape(columns), c, output
    )

    squares = 0.0
    for level in range(layers - 1, -1, -1):  # BP, with the update of the layer above
        s_in, s_out = sizes[level + 1], sizes[level + 2]
        w_at, b_at = offsets[2 * level], offsets[2 * level + 1]
        delta = view(work, places[layers + 2 + level], s_out, m)
        a_at, lda = layer_input(level, X_rows.ctypes.data, n, work, places[level], s_in, m)
        for t in prange(threads):
            lo, hi = shares[level + 1, t], shares[level + 1, t + 1]
            gradient_units(delta, lo, hi, s_in, a_at, lda, level == 0, gemm_beta, target, w_at, b_at)
            part = 0.0
            if level > 0:
                a = view(work, places[level], s_in, m)
                below = view(work, places[layers + 2 + level - 1], s_in, m)
                propagate_units(
                    theta, w_at, s_in, shares[level, t], shares[level, t + 1], delta, below, a, hidden
                )
            elif rows_updated:
                part += _update_rows(code, theta, first, second, G, offsets, sizes, 0, shares, t, hyper)
            if level < layers - 1 and rows_updated:
                part += _update_rows(
                    code, theta, first, second, G, offsets, sizes, level + 1, shares, t, hyper
                )
            squares += part
    if not rows_updated:  # one thread, an optimizer that reads G: one update over all of θ
        squares = apply_update(code, first, second, theta, G, offsets[2 * layers], hyper)
    return loss, squares


def _renamed(function, name: str):
    """A copy of ``function`` under another name. numba's disk cache files a function's compiled code by
    its qualified name, not by the options it was compiled with: the serial compile of ``step`` needs a
    name of its own, or it could load the parallel one from the cache."""
    copy = pytypes.FunctionType(function.__code__, function.__globals__, name)
    copy.__qualname__ = copy.__name__ = name
    copy.__doc__ = function.__doc__
    return copy


serial_step = _serial(_renamed(step.py_func, "serial_step"))  # prange is range here


class BlasStep:
    """Steps of m rows on ``net`` through ``step`` shared among ``threads`` threads, or through
    ``serial_step`` for one, with one of the optimizers ``OPTIMIZER_CODES`` knows: the network's shape,
    offsets, codes, the threads' shares and the work buffer, made once. ``run`` updates θ and the
    optimizer's state in place."""

    def __init__(self, net, optimizer, lambda_: float, metric, m: int, threads: int, gradient) -> None:
        threads = min(threads, numba.get_num_threads())
        if not available(threads):  # the gemm symbols must be known to the linker before a step is loaded
            raise RuntimeError("BlasStep cannot run in this process (see ``available``)")
        self.net, self.optimizer, self.lambda_, self.metric, self.m = net, optimizer, lambda_, metric, m
        self.first, self.second = state_arrays(optimizer.state, net.dtype)
        self.gradient = gradient
        self.kernel = step if threads > 1 else serial_step
        sizes = net.layer_sizes
        layers = len(sizes) - 1
        self.sizes = np.array([m, *sizes], dtype=np.int64)
        self.offsets = np.array([*parameter_starts(net), net.n_regularized], dtype=np.int64)
        lengths = [*(m * s for s in sizes), m * sizes[-1], *(m * s for s in sizes[1:])]
        self.places = np.cumsum([0, *lengths[:-1]]).astype(np.int64)
        self.work = np.zeros(sum(lengths), dtype=net.dtype)
        kappa = optimizer.gradient_scale
        self.hyper = np.array(
            [kappa / m, optimizer.beta, kappa * lambda_ / m, 0, 0, 0, 0, 0], dtype=net.dtype
        )
        self.codes = np.array([*unit_codes(net), OPTIMIZER_CODES[optimizer.name]], dtype=np.int64)
        self.shares = np.stack([even_edges(m, threads), *(even_edges(s, threads) for s in sizes[1:])])
        K = sizes[-1]
        out_at, y_at = self.places[layers], self.places[layers + 1]
        self.outputs = self.work[out_at : out_at + m * K].reshape(K, m).T
        self.targets = self.work[y_at : y_at + m * K].reshape(K, m).T

    def run(self, X: np.ndarray, Y: np.ndarray, rows, alpha: float) -> tuple[float, float]:
        """(J_i of the batch, the metric's batch sum), both before the update."""
        index, start = batch_rows(rows)
        self.optimizer.begin_step()
        self.hyper[3] = alpha
        self.hyper[4:] = step_scalars(self.optimizer, alpha)
        loss, squares = self.kernel(
            X, Y, index, start, self.net.theta, self.first, self.second, self.gradient, self.work,
            self.sizes, self.offsets, self.places, self.hyper, self.codes, self.shares,
        )  # fmt: skip
        metric = self.metric
        metric_sum = metric.batch_sum(self.outputs, self.targets) if metric is not None else 0.0
        return cost(loss, squares, self.lambda_, self.m), metric_sum

"""The training step's fast path: one FP/BP pass and the momentum update, in preallocated buffers.

The straightforward step (``Network.backprop``, ``Network.finish``, ``optim.Momentum.step``) computes

    D = Δ/m + (λ/m) Θ,   V := β V + (1 − β) D,   Θ := Θ − α V.

``FastStep`` computes the same step with fewer passes over memory:

- it keeps the displacement S = α V instead of V, so Θ := Θ − S is one pass over θ;
- it scales δ^(L) by c = α(1 − β)/m before backpropagating (every Δ is linear in δ^(L)), so the gradient
  buffers receive c·Δ directly;
- it updates the flat parameter vector θ at once: S := β S + c·Δ + c·λ·Θ (weights only), Θ := Θ − S.

A step of many rows is cut into chunks of at most ``CHUNK_ROWS`` consecutive rows, so that a chunk's
activations and errors stay in the processor's cache, and the chunks are shared out among threads (NumPy
and BLAS release the GIL). Each thread adds its chunks' gradient sums into its own vector; the vectors are
added — the batch gradient is a sum over examples — and the update runs over separate ranges of θ on the
same threads. This keeps every core busy through the element-wise work that BLAS alone leaves on one.

Buffers are allocated once per batch size and reused. The result equals the straightforward step up to
rounding (the tests hold them to 1e-12 in float64); it is deterministic for a given number of cores.
"""

from __future__ import annotations

import itertools
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from threadpoolctl import ThreadpoolController

from nncli.network import Network

CHUNK_ROWS = 2048
MIN_ROWS_TO_SPLIT = 1024  # BLAS threads already share the products of a smaller step well


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def even_spans(total: int, count: int) -> list[slice]:
    edges = np.linspace(0, total, count + 1).round().astype(int)
    return [slice(int(a), int(b)) for a, b in itertools.pairwise(edges)]


class _Worker:
    """One thread's share of a step: its chunks of rows, buffers for the largest, and a gradient vector."""

    def __init__(self, net: Network, chunks: list[slice], gradient: np.ndarray) -> None:
        rows = max(span.stop - span.start for span in chunks)
        sizes, dtype = net.layer_sizes, net.dtype
        self.chunks = chunks
        self.X = np.empty((rows, sizes[0]), dtype=dtype)
        self.Y = np.empty((rows, sizes[-1]), dtype=dtype)
        self.activations = [np.empty((rows, s), dtype=dtype) for s in sizes[1:]]
        self.deltas = [np.empty((rows, s), dtype=dtype) for s in sizes[1:]]
        self.scratch = [np.empty((rows, s), dtype=dtype) for s in sizes[1:]]
        self.ones = np.ones(rows, dtype=dtype)
        self.gradient = gradient
        self.gradient_views = [net.views(gradient, layer) for layer in net.layers]
        if len(chunks) > 1:
            self.chunk_gradient = np.empty_like(gradient)
            self.chunk_views = [net.views(self.chunk_gradient, layer) for layer in net.layers]


@dataclass
class _Layout:
    workers: list[_Worker]
    theta_ranges: list[slice]


class FastStep:
    """Gradient descent with momentum on ``net``, one batch per call, in place."""

    def __init__(
        self,
        net: Network,
        alpha: float,
        lambda_: float,
        beta: float,
        metric=None,
        cores: int | None = None,
        displacement: np.ndarray | None = None,
    ) -> None:
        self.net = net
        self.alpha, self.lambda_, self.beta = alpha, lambda_, beta
        self.metric = metric
        self.cores = available_cores() if cores is None else cores
        # S = α V, the momentum carried from step to step (updated in place)
        self.displacement = np.zeros_like(net.theta) if displacement is None else displacement
        self._gradients = [np.zeros_like(net.theta)]
        self._layouts: dict[int, _Layout] = {}
        self._pool: ThreadPoolExecutor | None = None
        self._blas_limit = None

    @property
    def velocity(self) -> np.ndarray:
        """V = S / α, laid out like θ."""
        return self.displacement / self.alpha

    def close(self) -> None:
        """Stop the threads and give BLAS back its own thread count."""
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None
        if self._blas_limit is not None:
            self._blas_limit.restore_original_limits()
            self._blas_limit = None

    def __call__(self, X: np.ndarray, Y: np.ndarray, rows) -> tuple[float, float]:
        """One step on the rows ``rows`` (a slice or an index array) of X and Y.

        Returns J_i of the batch and the metric's batch sum (0 without a metric), both before the update.
        """
        m = rows.stop - rows.start if isinstance(rows, slice) else len(rows)
        layout = self._layouts.get(m) or self._layout(m)
        c = self.alpha * (1.0 - self.beta) / m
        workers = layout.workers
        futures = [self._pool.submit(self._backprop, w, X, Y, rows, c) for w in workers[1:]]
        results = [self._backprop(workers[0], X, Y, rows, c)] + [f.result() for f in futures]
        J = sum(r[0] for r in results) / m + self.net.penalty(self.lambda_, m)
        metric_sum = sum(r[1] for r in results)
        count = len(workers)
        futures = [self._pool.submit(self._update, span, count, c) for span in layout.theta_ranges[1:]]
        self._update(layout.theta_ranges[0], count, c)
        for future in futures:
            future.result()
        return J, metric_sum

    def _layout(self, m: int) -> _Layout:
        """How steps of m rows are cut into chunks and shared among threads (made once per batch size)."""
        chunks = even_spans(m, -(-m // CHUNK_ROWS))
        threads = min(self.cores, len(chunks)) if m >= MIN_ROWS_TO_SPLIT else 1
        if threads > 1 and self._pool is None:
            self._pool = ThreadPoolExecutor(self.cores - 1, thread_name_prefix="nncli-step")
            # Each thread's products run on that thread: BLAS must not start threads of its own too.
            self._blas_limit = ThreadpoolController().limit(limits=1, user_api="blas")
        while len(self._gradients) < threads:
            self._gradients.append(np.zeros_like(self.net.theta))
        workers = [_Worker(self.net, chunks[t::threads], self._gradients[t]) for t in range(threads)]
        layout = self._layouts[m] = _Layout(workers, even_spans(self.net.theta.size, threads))
        return layout

    def _backprop(self, worker: _Worker, X, Y, rows, c: float) -> tuple[float, float]:
        """Forward and back propagation of the worker's chunks; their c·Δ summed into its gradient."""
        loss = metric_sum = 0.0
        for number, chunk in enumerate(worker.chunks):
            views = worker.gradient_views if number == 0 else worker.chunk_views
            chunk_loss, chunk_metric = self._backprop_chunk(worker, X, Y, _subset(rows, chunk), c, views)
            if number > 0:
                worker.gradient += worker.chunk_gradient
            loss += chunk_loss
            metric_sum += chunk_metric
        return loss, metric_sum

    def _backprop_chunk(self, worker: _Worker, X, Y, rows, c: float, gradient_views) -> tuple[float, float]:
        net = self.net
        if isinstance(rows, slice):
            X_batch, Y_batch = X[rows], Y[rows]
            count = len(X_batch)
        else:
            count = len(rows)
            X_batch, Y_batch = worker.X[:count], worker.Y[:count]
            np.take(X, rows, axis=0, out=X_batch)
            np.take(Y, rows, axis=0, out=Y_batch)
        activations = [X_batch, *(a[:count] for a in worker.activations)]
        deltas = [d[:count] for d in worker.deltas]
        scratch = [s[:count] for s in worker.scratch]
        ones = worker.ones[:count]
        hidden, layers = net.hidden, net.layers
        for index, layer in enumerate(layers[:-1]):
            layer.forward_into(activations[index], activations[index + 1])
            hidden.g_inplace(activations[index + 1], scratch[index])
        layers[-1].forward_into(activations[-2], activations[-1])
        loss = net.output.activate_and_loss_inplace(activations[-1], Y_batch)
        metric_sum = self.metric.batch_sum(activations[-1], Y_batch) if self.metric is not None else 0.0

        delta = deltas[-1]
        np.subtract(activations[-1], Y_batch, out=delta)
        delta *= c
        for index in range(len(layers) - 1, -1, -1):
            layer = layers[index]
            layer.gradient_sums_into(delta, activations[index], gradient_views[index], ones)
            if index > 0:
                below = deltas[index - 1]
                layer.propagate_into(delta, below)
                hidden.scale_by_g_prime(below, activations[index], scratch[index - 1])
                delta = below
        return loss, metric_sum

    def _update(self, span: slice, workers: int, c: float) -> None:
        """S := β S + Σ_threads c·Δ + c·λ·Θ (weights only); Θ := Θ − S, over the θ range ``span``."""
        S, theta = self.displacement[span], self.net.theta[span]
        S *= self.beta
        for gradient in self._gradients[:workers]:
            S += gradient[span]
        weights_end = min(span.stop, self.net.n_regularized) - span.start
        if self.lambda_ != 0.0 and weights_end > 0:
            decay = self._gradients[0][span][:weights_end]
            np.multiply(theta[:weights_end], c * self.lambda_, out=decay)
            S[:weights_end] += decay
        theta -= S


def _subset(rows, span: slice):
    """The part ``span`` (positions within the batch) of the batch's rows."""
    if isinstance(rows, slice):
        return slice(rows.start + span.start, rows.start + span.stop)
    return rows[span]

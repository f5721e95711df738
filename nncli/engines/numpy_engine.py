"""The training step's fast path: one FP/BP pass and the momentum update, in preallocated buffers.

The straightforward step (``Network.backprop``, ``Network.finish``, ``optim.Momentum.step``) computes

    D = Δ/m + (λ/m) Θ,   V := β V + (1 − β) D,   Θ := Θ − α V.

``FastStep`` computes the same step with fewer passes over memory:

- it keeps the displacement S = α V instead of V, so Θ := Θ − S is one pass over θ;
- it scales δ^(L) by c = α(1 − β)/m before backpropagating (every Δ is linear in δ^(L)), so the gradient
  buffers receive c·Δ directly;
- it updates the flat parameter vector θ at once: S := β S + c·Δ + c·λ·Θ (weights only), Θ := Θ − S;
- it holds a batch's a^(l) and δ^(l) with examples as columns, (s_l, m), the lecture's layout, whose
  products BLAS runs faster (``nncli.model.layers``); the rows of X are gathered as they are and read
  transposed.

A step of many rows is cut into chunks of at most ``CHUNK_ROWS`` consecutive rows, so that a chunk's
activations and errors stay in the processor's cache, and the chunks are shared out among threads (NumPy
and BLAS release the GIL). Each thread adds its chunks' gradient sums into its own vector; the vectors are
added — the batch gradient is a sum over examples — and the update runs over separate ranges of θ on the
same threads. This keeps every core busy through the element-wise work that BLAS alone leaves on one.

Buffers are allocated once per batch size and reused. The result equals the straightforward step up to
rounding (the tests hold them to 1e-12 in float64); it is deterministic for a given number of cores.

On the ``compiled`` engine (``nncli.engines``) a step is one compiled call where it can be: of
``nncli.engines.compiled.loops.step`` (its products written as loops) up to ``LOOPS_MAX_WORK`` multiply-adds
per product pass; of ``nncli.engines.compiled.blas``'s step, which calls BLAS's gemm for its products, up to
``COMPILED_MAX_WORK`` on one thread, and above it, for fewer than ``MIN_ROWS_TO_SPLIT`` rows, shared among
numba's threads by units (where that module can run; where it cannot, ``nncli.engines.compiled.loops.step``
still takes the steps up to ``COMPILED_MAX_WORK``). Any other step keeps this path's BLAS products, and
everything else it does (gathering the batch, the units, the momentum update) goes through
``nncli.engines.compiled.loops.CompiledPasses``, one compiled pass each, instead of ``NumpyPasses``.
"""

from __future__ import annotations

import functools
import itertools
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from nncli.cores import available_cores, blas_controller
from nncli.engines import example_step
from nncli.engines import registry as engines
from nncli.model.network import Network

# Steps by their multiply-adds per product pass (m × the number of weights), on the compiled engine: at most
# LOOPS_MAX_WORK, the products are ``nncli.engines.compiled``'s loops (BLAS's call costs more than their
# arithmetic); at most COMPILED_MAX_WORK, BLAS's gemm on one thread (``nncli.engines.compiled.blas``); above
# it, a mini-batch's step is shared among the cores.
LOOPS_MAX_WORK = 1 << 13
COMPILED_MAX_WORK = 1 << 20
CHUNK_ROWS = 2048
MIN_ROWS_TO_SPLIT = 1024  # BLAS threads already share the products of a smaller step well


@functools.cache
def shared_pool(workers: int) -> ThreadPoolExecutor:
    """The helper threads every step shares, started once per process (their start-up would otherwise be
    paid by every ``train`` call)."""
    return ThreadPoolExecutor(workers, thread_name_prefix="nncli-step")


if hasattr(os, "register_at_fork"):  # POSIX: a forked child has none of its parent's threads
    os.register_at_fork(after_in_child=shared_pool.cache_clear)


def even_spans(total: int, count: int) -> list[slice]:
    edges = np.linspace(0, total, count + 1).round().astype(int)
    return [slice(int(a), int(b)) for a, b in itertools.pairwise(edges)]


def _columns(flat: np.ndarray, units: int, count: int) -> np.ndarray:
    """The first units × count entries of ``flat`` as a C-contiguous (units, count) array: one column per
    example."""
    return flat[: units * count].reshape(units, count)


class _Chunk:
    """Everything one chunk of a step touches, made once: its rows within the batch, the buffer for its
    gathered rows of X, its Y, a^(l), δ^(l) and scratch as columns (one per example), a vector of ones,
    and the gradient arrays it writes."""

    def __init__(self, net: Network, span: slice, store: _Store, gradient_views, adds_into) -> None:
        count = span.stop - span.start
        sizes = net.layer_sizes
        self.span, self.count = span, count
        self.X = store.X[:count]
        self.Y = _columns(store.Y, sizes[-1], count)

        def per_layer(flats: list[np.ndarray]) -> list[np.ndarray]:
            return [_columns(flat, units, count) for flat, units in zip(flats, sizes[1:], strict=True)]

        self.activations, self.deltas = per_layer(store.activations), per_layer(store.deltas)
        self.scratch = per_layer(store.scratch)
        self.ones = store.ones[:count]
        self.gradient_views = gradient_views
        self.adds_into = adds_into  # (chunk gradient, worker gradient) when this chunk's sums are added on


@dataclass
class _Store:
    """A worker's buffers, sized for its largest chunk of ``rows`` examples: rows of X as gathered, and
    flat room for Y and each layer's a^(l), δ^(l) and scratch as columns."""

    X: np.ndarray
    Y: np.ndarray
    activations: list[np.ndarray]
    deltas: list[np.ndarray]
    scratch: list[np.ndarray]
    ones: np.ndarray

    @classmethod
    def for_rows(cls, net: Network, rows: int) -> _Store:
        sizes, dtype = net.layer_sizes, net.dtype

        def flats() -> list[np.ndarray]:
            return [np.empty(rows * s, dtype=dtype) for s in sizes[1:]]

        return cls(
            np.empty((rows, sizes[0]), dtype=dtype),
            np.empty(rows * sizes[-1], dtype=dtype),
            flats(),
            flats(),
            flats(),
            np.ones(rows, dtype=dtype),
        )


class _Worker:
    """One thread's share of a step: its chunks of rows (buffers sized for the largest) and the gradient
    vector their sums go into."""

    def __init__(self, net: Network, spans: list[slice], gradient: np.ndarray) -> None:
        store = _Store.for_rows(net, max(span.stop - span.start for span in spans))
        views = [net.views(gradient, layer) for layer in net.layers]
        self.gradient = gradient
        self.chunks = [_Chunk(net, spans[0], store, views, None)]
        if len(spans) > 1:
            extra = np.empty_like(gradient)
            extra_views = [net.views(extra, layer) for layer in net.layers]
            self.chunks += [_Chunk(net, span, store, extra_views, (extra, gradient)) for span in spans[1:]]


class NumpyPasses:
    """Everything of a step but its products, through NumPy calls, in place: gathering a batch, the hidden
    and output units (``nncli.model.activations``, ``nncli.model.losses``) and the momentum update.
    ``nncli.engines.compiled.loops.CompiledPasses`` offers the same methods, each one compiled pass. a^(l),
    δ^(l) and the batch's Y hold one column per example."""

    def __init__(self, net: Network) -> None:
        self.hidden, self.output = net.hidden, net.output

    def gather(self, X: np.ndarray, Y: np.ndarray, rows: np.ndarray, X_rows: np.ndarray, Y_columns) -> None:
        """X_rows := X[rows]; Y_columns := Y[rows]ᵀ."""
        # mode="clip" writes straight into the buffer ("raise" goes through a temporary); the indices
        # come from a permutation of range(m), so none is ever out of range.
        X.take(rows, axis=0, out=X_rows, mode="clip")
        np.copyto(Y_columns, Y.take(rows, axis=0).T)

    def activate(self, z: np.ndarray, scratch: np.ndarray) -> None:
        """z := g(z)."""
        self.hidden.g_inplace(z, scratch)

    def scale_by_g_prime(self, delta: np.ndarray, a: np.ndarray, scratch: np.ndarray) -> None:
        """δ .*= g′(z), from a = g(z)."""
        self.hidden.scale_by_g_prime(delta, a, scratch)

    def output_and_delta(self, z: np.ndarray, Y: np.ndarray, delta: np.ndarray, c: np.floating) -> float:
        """z^(L) := a^(L), δ^(L) := c·(a^(L) − y); returns the loss summed over the examples. z, Y and
        delta are (K, m)."""
        loss = self.output.activate_and_loss_inplace(z.T, Y.T)
        np.subtract(z, Y, out=delta)
        delta *= c
        return loss

    def momentum_update(self, S, theta, G, n_weights: int, beta, decay, scratch) -> float:
        """S := β S + G + decay·Θ on the first ``n_weights`` entries (β S + G on the rest), Θ := Θ − S.

        Returns Σ Θ² over those entries as they were before the update (the L2 term of J_i), or 0 when
        ``scratch`` (room for decay·Θ; it may be G's weights, no longer needed once added into S) is None
        because λ is 0.
        """
        squares = 0.0
        S *= beta
        S += G
        if scratch is not None and n_weights:
            weights = theta[:n_weights]
            squares = float(np.vdot(weights, weights))
            np.multiply(weights, decay, out=scratch)
            S[:n_weights] += scratch
        theta -= S
        return squares


@dataclass
class _Range:
    """One thread's part of the update: views of S, θ and the gradients over a range of θ, and how many
    of its entries are weights (the rest are biases)."""

    S: np.ndarray
    theta: np.ndarray
    gradients: list[np.ndarray]
    n_weights: int


@dataclass
class _Layout:
    """How steps of m rows run: c = α(1 − β)/m and c·λ (in θ's dtype), the threads' chunks of rows, their
    ranges of the update, or the lean path for steps of one example."""

    c: np.floating
    decay_rate: np.floating
    workers: list[_Worker]
    ranges: list[_Range]
    example: example_step.ExampleBackprop | None = None
    compiled: object | None = None  # nncli.engines.compiled.loops.CompiledStep: the whole step in one call


class FastStep:
    """Gradient descent with momentum on ``net``, one batch per call, in place, on the ``engine``
    ``numpy`` or ``compiled`` (``nncli.engines``)."""

    def __init__(
        self,
        net: Network,
        alpha: float,
        lambda_: float,
        beta: float,
        metric=None,
        cores: int | None = None,
        displacement: np.ndarray | None = None,
        engine: str = "numpy",
    ) -> None:
        self.net = net
        self.alpha, self.lambda_, self.beta = alpha, lambda_, beta
        self.metric = metric
        self.cores = available_cores() if cores is None else cores
        # S = α V, the momentum carried from step to step (updated in place)
        self.displacement = np.zeros_like(net.theta) if displacement is None else displacement
        self._gradients = [np.zeros_like(net.theta)]
        self._layouts: dict[int, _Layout] = {}
        self._beta = net.dtype.type(beta)  # scalars in θ's dtype: NumPy converts a Python float on every call
        self._pool: ThreadPoolExecutor | None = None
        # nncli.engines.compiled for the compiled engine (see nncli.engines), None for NumPy calls only
        self._kernels = engines.required_kernels() if engine == "compiled" else None
        compiled_passes = self._kernels is not None and self._kernels.knows_units(net)
        self._passes = self._kernels.CompiledPasses(net) if compiled_passes else NumpyPasses(net)
        self._blas_limit = None

    def close(self) -> None:
        """Give BLAS back its own thread count."""
        if self._blas_limit is not None:
            self._blas_limit.restore_original_limits()
            self._blas_limit = None

    def _hold_blas_to_one_thread(self) -> None:
        """Each thread's products run on that thread: BLAS must not start threads of its own too."""
        if self._blas_limit is None:
            self._blas_limit = blas_controller().limit(limits=1, user_api="blas")

    def take(self, X: np.ndarray, Y: np.ndarray, rows) -> tuple[float, float]:
        """One step on the rows ``rows`` (a slice or an index array) of X and Y.

        Returns J_i of the batch and the metric's batch sum (0 without a metric), both before the update.
        """
        m = rows.stop - rows.start if rows.__class__ is slice else len(rows)
        layout = self._layouts.get(m) or self._layout(m)
        if layout.compiled is not None:
            compiled = layout.compiled
            loss, squares = compiled.run(X, Y, rows)
            metric = self.metric
            return self._cost(loss, squares, m), (
                metric.batch_sum(compiled.outputs, compiled.targets) if metric is not None else 0.0
            )
        c = layout.c
        if layout.example is not None:
            row = rows.start if rows.__class__ is slice else int(rows[0])
            loss, metric_sum = layout.example.run(X, Y, row)
            return self._cost(loss, self._update_all(layout), 1), metric_sum
        workers = layout.workers
        if len(workers) == 1:
            loss, metric_sum = self._backprop(workers[0], X, Y, rows, c)
            return self._cost(loss, self._update_all(layout), m), metric_sum
        futures = [self._pool.submit(self._backprop, w, X, Y, rows, c) for w in workers[1:]]
        results = [self._backprop(workers[0], X, Y, rows, c)] + [f.result() for f in futures]
        loss = sum(r[0] for r in results)
        return self._cost(loss, self._update_all(layout), m), sum(r[1] for r in results)

    def _cost(self, loss: float, squares: float, m: int) -> float:
        """J_i = loss/m + λ/(2m) Σ Θ² (the weights' squares as they were before the update)."""
        return loss / m + (self.lambda_ / (2.0 * m) * squares if self.lambda_ != 0.0 else 0.0)

    def _update_all(self, layout: _Layout) -> float:
        """The update over every range of θ (on the pool's threads too); Σ Θ² of the weights before it."""
        ranges = layout.ranges
        if len(ranges) == 1:  # no round trip through the pool
            return self._update(ranges[0], layout)
        futures = [self._pool.submit(self._update, part, layout) for part in ranges[1:]]
        squares = self._update(ranges[0], layout)
        for future in futures:
            squares += future.result()
        return squares

    def _layout(self, m: int) -> _Layout:
        """How steps of m rows are cut into chunks and shared among threads (made once per batch size)."""
        spans = even_spans(m, -(-m // CHUNK_ROWS))
        threads = min(self.cores, len(spans)) if m >= MIN_ROWS_TO_SPLIT else 1
        # The update is shared only among threads that already share the rows: a single pass over θ is
        # bound by memory, and handing half of it to a helper thread (a round trip of about 50 µs here)
        # made W2's steps 6–7 % slower on both engines.
        if threads > 1 and self._pool is None:
            self._pool = shared_pool(self.cores - 1)
        if threads > 1:
            self._hold_blas_to_one_thread()
        while len(self._gradients) < threads:
            self._gradients.append(np.zeros_like(self.net.theta))
        gradients = self._gradients[:threads]
        c = self.net.dtype.type(self.alpha * (1.0 - self.beta) / m)
        decay_rate = self.net.dtype.type(self.alpha * (1.0 - self.beta) / m * self.lambda_)
        if self._kernels is not None and self._kernels.serves(self.net):
            step = self._compiled_step(m, c, decay_rate)
            if step is not None:
                layout = self._layouts[m] = _Layout(c, decay_rate, [], [], compiled=step)
                return layout
        example = None
        if m == 1 and example_step.serves(self.net):
            example, workers = example_step.ExampleBackprop(self.net, gradients[0], c, self.metric), []
        else:
            workers = [_Worker(self.net, spans[t::threads], gradients[t]) for t in range(threads)]
        ranges = []
        for span in even_spans(self.net.theta.size, threads):
            n_weights = max(0, min(span.stop, self.net.n_regularized) - span.start)
            gradients_of_range = [g[span] for g in gradients]  # one per thread of rows
            ranges.append(
                _Range(self.displacement[span], self.net.theta[span], gradients_of_range, n_weights)
            )
        layout = self._layouts[m] = _Layout(c, decay_rate, workers, ranges, example)
        return layout

    def _compiled_step(self, m: int, c: np.floating, decay_rate: np.floating):
        """The compiled step for m rows (one call per step), or None where such steps keep this module's
        path: the compiled loops for the smallest steps, ``nncli.engines.compiled.blas`` (on one thread
        up to ``COMPILED_MAX_WORK``, shared among the cores above it) for mini-batches, the loops again
        where BLAS's gemm cannot be called directly."""
        work = m * self.net.n_regularized
        small = work <= COMPILED_MAX_WORK
        if work > LOOPS_MAX_WORK and (small or m < MIN_ROWS_TO_SPLIT):
            threads = 1 if small else self.cores
            blas = engines.blas_kernels(threads)
            if blas is None and threads > 1:
                threads, blas = 1, engines.blas_kernels(1)
            if blas is not None:
                if small or threads > 1:  # a small product is faster on one thread, a shared one must be
                    self._hold_blas_to_one_thread()
                return blas.BlasStep(self.net, m, self.displacement, c, self._beta, decay_rate, threads)
        if small:
            return self._kernels.CompiledStep(
                self.net, m, self.displacement, self._gradients[0], c, self._beta, decay_rate
            )
        return None

    def _backprop(self, worker: _Worker, X, Y, rows, c: np.floating) -> tuple[float, float]:
        """Forward and back propagation of the worker's chunks; their c·Δ summed into its gradient."""
        if len(worker.chunks) == 1:
            return self._backprop_chunk(worker.chunks[0], X, Y, rows, c)
        loss = metric_sum = 0.0
        for chunk in worker.chunks:
            chunk_loss, chunk_metric = self._backprop_chunk(chunk, X, Y, rows, c)
            if chunk.adds_into is not None:
                extra, gradient = chunk.adds_into
                gradient += extra
            loss += chunk_loss
            metric_sum += chunk_metric
        return loss, metric_sum

    def _backprop_chunk(self, chunk: _Chunk, X, Y, rows, c: np.floating) -> tuple[float, float]:
        """FP and BP of one chunk, examples as columns (``nncli.model.layers``): a^(1) is the chunk's rows of
        X seen transposed, and c·Δ goes into the chunk's gradient arrays."""
        net = self.net
        span = chunk.span
        Y_batch = chunk.Y
        if rows.__class__ is slice:
            start = rows.start + span.start
            X_batch = X[start : start + chunk.count]
            np.copyto(Y_batch, Y[start : start + chunk.count].T)
        else:
            X_batch = chunk.X
            self._passes.gather(X, Y, rows[span] if chunk.count != len(rows) else rows, X_batch, Y_batch)
        activations, scratch, deltas = chunk.activations, chunk.scratch, chunk.deltas
        passes, layers = self._passes, net.layers
        a = X_batch.T
        for index, layer in enumerate(layers[:-1]):
            z = activations[index]
            layer.forward_columns(a, z)
            passes.activate(z, scratch[index])
            a = z
        a_out, delta = activations[-1], deltas[-1]
        layers[-1].forward_columns(a, a_out)
        loss = passes.output_and_delta(a_out, Y_batch, delta, c)
        metric_sum = self.metric.batch_sum(a_out.T, Y_batch.T) if self.metric is not None else 0.0

        views = chunk.gradient_views
        for index in range(len(layers) - 1, -1, -1):
            layer = layers[index]
            below_a = activations[index - 1] if index > 0 else X_batch.T
            layer.gradient_sums_columns(delta, below_a, views[index], chunk.ones)
            if index > 0:
                below = deltas[index - 1]
                layer.propagate_columns(delta, below)
                passes.scale_by_g_prime(below, below_a, scratch[index - 1])
                delta = below
        return loss, metric_sum

    def _update(self, part: _Range, layout: _Layout) -> float:
        """S := β S + Σ_threads c·Δ + c·λ·Θ (weights only); Θ := Θ − S, over one range of θ; returns
        Σ Θ² over the range's weights as they were before the update (the L2 term of J_i)."""
        gradient = part.gradients[0]
        for extra in part.gradients[1:]:
            gradient += extra
        # the gradient's weights are free once added into S: room for c·λ·Θ
        scratch = gradient[: part.n_weights] if self.lambda_ != 0.0 else None
        return self._passes.momentum_update(
            part.S, part.theta, gradient, part.n_weights, self._beta, layout.decay_rate, scratch
        )

"""The general step: one FP/BP pass of a batch cut into chunks shared among threads, and the optimizer's
update, in preallocated buffers. It serves every network, optimizer, batch size and clipping setting
(``nncli.engines.registry`` sends a step elsewhere only where a faster path declares it serves it).

The straightforward step (``Network.backprop``, ``Network.finish``, then the optimizer's formula) computes
D = Δ/m + (λ/m) Θ and moves Θ by it. This one computes the same with fewer passes over memory:

- it scales δ^(L) by c = κ/m before backpropagating, κ being the optimizer's ``gradient_scale``
  (``nncli.optim.optimizers``): every Δ is linear in δ^(L), so the gradient buffers receive κ·Δ/m;
- it holds a batch's a^(l) and δ^(l) with examples as columns, (s_l, m), the lecture's layout, whose
  products BLAS runs faster (``nncli.model.layers``); the rows of X are gathered as they are and read
  transposed;
- it updates the flat parameter vector θ at once, range by range (``RangeUpdate``).

A step of many rows is cut into chunks of at most ``CHUNK_ROWS`` consecutive rows of float64 (the same
bytes of float32), so that a chunk's activations and errors stay in the processor's cache, and the chunks
are shared out among threads, as many for each (NumPy and BLAS release the GIL). Each thread adds its
chunks' gradient sums into its own vector; the vectors are added — the batch gradient is a sum over
examples — and the update moves θ, a large θ in separate ranges on the same threads. This keeps every core
busy through the element-wise work that BLAS alone leaves on one.

Everything of a step but its products goes through a ``passes`` object: ``NumpyPasses`` (NumPy calls) on
the ``numpy`` engine, ``nncli.engines.compiled.loops.CompiledPasses`` (one compiled pass each) on the
``compiled`` one. Buffers are allocated once per batch size and reused. The result equals the
straightforward step up to rounding (the tests hold them to 1e-12 in float64); it is deterministic for a
given number of cores.
"""

from __future__ import annotations

import functools
import itertools
import math
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from nncli.cores import blas_controller
from nncli.model.network import Network
from nncli.optim.clipping import clip_factor
from nncli.optim.optimizers import Optimizer, UpdatePart, scaled_gradient

CHUNK_ROWS = 2048  # of float64; a float32 chunk holds twice the rows, the same bytes
MIN_ROWS_TO_SPLIT = 1024  # BLAS threads already share the products of a smaller step well
# A smaller θ is updated on one thread: handing half of a pass over it to a helper thread (waking it, and
# waiting for it) costs more than the half saves.
MIN_ENTRIES_TO_SHARE_UPDATE = 1 << 20


@functools.cache
def shared_pool(workers: int) -> ThreadPoolExecutor:
    """The helper threads every step shares, started once per process (their start-up would otherwise be
    paid by every ``train`` call)."""
    return ThreadPoolExecutor(workers, thread_name_prefix="nncli-step")


if hasattr(os, "register_at_fork"):  # POSIX: a forked child has none of its parent's threads
    os.register_at_fork(after_in_child=shared_pool.cache_clear)


def even_edges(total: int, count: int) -> np.ndarray:
    """0 = e_0 ≤ e_1 ≤ … ≤ e_count = total: ``total`` cut into ``count`` parts that differ by at most one."""
    return np.linspace(0, total, count + 1).round().astype(np.int64)


def even_spans(total: int, count: int) -> list[slice]:
    return [slice(int(a), int(b)) for a, b in itertools.pairwise(even_edges(total, count))]


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
    and output units (``nncli.model.activations``, ``nncli.model.losses``) and the optimizer's update.
    ``nncli.engines.compiled.loops.CompiledPasses`` offers the same methods, each one compiled pass.
    a^(l), δ^(l) and the batch's Y hold one column per example."""

    def __init__(self, net: Network) -> None:
        self.activations = [layer.activation for layer in net.layers[:-1]]  # g of each hidden layer
        self.output = net.output

    def gather(self, X: np.ndarray, Y: np.ndarray, rows: np.ndarray, X_rows: np.ndarray, Y_columns) -> None:
        """X_rows := X[rows]; Y_columns := Y[rows]ᵀ."""
        # mode="clip" writes straight into the buffer ("raise" goes through a temporary); the indices
        # come from a permutation of range(m), so none is ever out of range.
        X.take(rows, axis=0, out=X_rows, mode="clip")
        np.copyto(Y_columns, Y.take(rows, axis=0).T)

    def add_bias_and_activate(self, z: np.ndarray, b: np.ndarray, scratch: np.ndarray, layer: int) -> None:
        """z := g(z + b) from the product z = Θ^(l) a^(l) (s, m) and the bias b (s,), g that of hidden layer
        ``layer`` (counted from 0)."""
        z += b[:, np.newaxis]
        self.activations[layer].g_inplace(z, scratch)

    def propagate_error(self, dense, delta, below, a, scratch, layer: int) -> None:
        """δ^(l) = (Θ^(l))ᵀ δ^(l+1) .* g′(z^(l)) into ``below``, through the Dense layer ``dense`` (Θ^(l)),
        from δ^(l+1) ``delta`` and a^(l) = g(z^(l)) ``a``, g that of hidden layer ``layer``."""
        dense.propagate_columns(delta, below)
        self.activations[layer].scale_by_g_prime(below, a, scratch)

    def output_and_delta(self, z: np.ndarray, Y: np.ndarray, delta: np.ndarray, c: np.floating) -> float:
        """z^(L) := a^(L), δ^(L) := c·(a^(L) − y); returns the loss summed over the examples. z, Y and
        delta are (K, m)."""
        loss = self.output.activate_and_loss_inplace(z.T, Y.T)
        np.subtract(z, Y, out=delta)
        delta *= c
        return loss

    def update(self, optimizer: Optimizer, part: UpdatePart, alpha: float, decay: float) -> float:
        """The optimizer's update of one range of θ (its formula, in NumPy calls)."""
        return optimizer.update(part, alpha, decay)


class RangeUpdate:
    """The update of θ after a step's gradient: θ cut into one range per thread that computed gradients;
    each range adds up the threads' gradients for its entries, then moves its part of θ by the optimizer.
    θ of fewer than ``MIN_ENTRIES_TO_SHARE_UPDATE`` entries is one range.

    With ``clip_norm``, ‖D‖ over all of θ is needed before any range moves: the ranges first add up their
    gradients and their part of ‖κD‖², then G and decay are scaled by s = min(1, clip_norm / ‖D‖)."""

    def __init__(self, net: Network, optimizer: Optimizer, gradients, passes, pool, clip_norm) -> None:
        self.optimizer, self.passes, self.pool, self.clip_norm = optimizer, passes, pool, clip_norm
        self.parts = []
        ranges = len(gradients) if pool is not None and net.theta.size >= MIN_ENTRIES_TO_SHARE_UPDATE else 1
        for span in even_spans(net.theta.size, ranges):
            n_weights = max(0, min(span.stop, net.n_regularized) - span.start)
            state = {name: array[span] for name, array in optimizer.state.items()}
            part = UpdatePart(
                net.theta[span],
                gradients[0][span],
                state,
                n_weights,
                np.empty(span.stop - span.start, net.dtype),
            )
            self.parts.append((part, [g[span] for g in gradients[1:]]))

    def run(self, alpha: float, decay: float) -> float:
        """Move θ; returns Σ Θ² over the weights before the update (the L2 term of J_i)."""
        if self.clip_norm is not None:
            norm = math.sqrt(sum(self._map(self._sum_and_norm, decay)))
            scale = clip_factor(norm, self.optimizer.gradient_scale, self.clip_norm)
            if scale != 1.0:
                for part, _ in self.parts:
                    part.G *= scale
                decay *= scale
        elif len(self.parts) > 1 or self.parts[0][1]:
            self._map(self._sum, decay)
        self.optimizer.begin_step()
        return sum(self._map(self._update, alpha, decay))

    def _map(self, work, *args) -> list:
        if len(self.parts) == 1:  # no round trip through the pool
            return [work(self.parts[0], *args)]
        futures = [self.pool.submit(work, part, *args) for part in self.parts[1:]]
        return [work(self.parts[0], *args)] + [future.result() for future in futures]

    @staticmethod
    def _sum(entry, decay) -> float:
        part, extras = entry
        for extra in extras:
            part.G += extra
        return 0.0

    @staticmethod
    def _sum_and_norm(entry, decay) -> float:
        RangeUpdate._sum(entry, decay)
        d = scaled_gradient(entry[0], decay)
        return float(np.vdot(d, d))

    def _update(self, entry, alpha, decay) -> float:
        return self.passes.update(self.optimizer, entry[0], alpha, decay)


def chunk_spans(m: int, itemsize: int, cores: int) -> tuple[list[slice], int]:
    """(the chunks of a step of m rows, the threads that share them): chunks of at most ``CHUNK_ROWS`` rows
    of float64 (as many bytes of another precision), as many for each thread, on all ``cores`` threads for
    a step of ``MIN_ROWS_TO_SPLIT`` rows or more (each thread's products then run on BLAS's one thread, so
    a step of fewer rows than a chunk still gets a chunk on each core)."""
    count = -(-m // (CHUNK_ROWS * 8 // itemsize))
    threads = cores if m >= MIN_ROWS_TO_SPLIT else 1
    return even_spans(m, -(-count // threads) * threads), threads


class ChunkedStep:
    """Steps of m rows on ``net``: the threads' chunks of rows and their buffers, and the update's ranges,
    made once. ``run`` takes one step with learning rate α. ``shared`` gives the run's gradient vectors,
    helper threads and hold on BLAS's threads (``nncli.engines.registry``)."""

    def __init__(
        self, net: Network, optimizer: Optimizer, lambda_: float, metric, m: int, cores: int, passes, shared,
        clip_norm,
    ) -> None:  # fmt: skip
        self.net, self.optimizer, self.lambda_, self.metric = net, optimizer, lambda_, metric
        self.passes, self.m = passes, m
        spans, threads = chunk_spans(m, net.dtype.itemsize, cores)
        self.pool = shared.pool() if threads > 1 else None
        if threads > 1:
            shared.hold_blas_to_one_thread()
        gradients = shared.gradients(threads)
        self.workers = [_Worker(net, spans[t::threads], gradients[t]) for t in range(threads)]
        # The update is shared only among threads that already share the rows, and only for a large θ
        # (``RangeUpdate``): a pass over θ is bound by memory, and waking a helper thread for half of a
        # small one costs more than the half.
        self.update = RangeUpdate(net, optimizer, gradients, passes, self.pool, clip_norm)
        kappa = optimizer.gradient_scale
        self.c = net.dtype.type(kappa / m)
        self.decay = kappa * lambda_ / m

    def run(self, X, Y, rows, alpha: float) -> tuple[float, float]:
        """(J_i of the batch, the metric's batch sum), both before the update."""
        workers, c = self.workers, self.c
        if len(workers) == 1:
            loss, metric_sum = self._backprop(workers[0], X, Y, rows, c)
        else:
            futures = [self.pool.submit(self._backprop, w, X, Y, rows, c) for w in workers[1:]]
            results = [self._backprop(workers[0], X, Y, rows, c)] + [f.result() for f in futures]
            loss, metric_sum = sum(r[0] for r in results), sum(r[1] for r in results)
        squares = self.update.run(alpha, self.decay)
        return cost(loss, squares, self.lambda_, self.m), metric_sum

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
            self.passes.gather(X, Y, rows[span] if chunk.count != len(rows) else rows, X_batch, Y_batch)
        activations, scratch, deltas = chunk.activations, chunk.scratch, chunk.deltas
        passes, layers = self.passes, net.layers
        a = X_batch.T
        for index, layer in enumerate(layers[:-1]):
            z = activations[index]
            layer.product_columns(a, z)
            passes.add_bias_and_activate(z, layer.b, scratch[index], index)
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
                passes.propagate_error(layer, delta, below, below_a, scratch[index - 1], index - 1)
                delta = below
        return loss, metric_sum


class LayerStep:
    """Steps of m rows through the layers' own forms (``Network.backprop``, examples as rows): the path for
    any layer type, since it uses nothing of a layer but the ``Layer`` protocol. The gradient sums are
    scaled by κ/m into one gradient vector, then ``RangeUpdate`` moves θ."""

    def __init__(self, net: Network, optimizer: Optimizer, lambda_: float, metric, m: int, shared, clip_norm):
        self.net, self.lambda_, self.metric, self.m = net, lambda_, metric, m
        gradient = shared.gradients(1)[0]
        self.views = [view for layer in net.layers for view in net.views(gradient, layer)]
        self.update = RangeUpdate(net, optimizer, [gradient], shared.passes, None, clip_norm)
        kappa = optimizer.gradient_scale
        self.scale, self.decay = kappa / m, kappa * lambda_ / m

    def run(self, X, Y, rows, alpha: float) -> tuple[float, float]:
        """(J_i of the batch, the metric's batch sum), both before the update."""
        loss, metric_sum = self.gradient_sums(X, Y, rows)
        return cost(loss, self.update.run(alpha, self.decay), self.lambda_, self.m), metric_sum

    def gradient_sums(self, X, Y, rows) -> tuple[float, float]:
        """(Σ loss, the metric's sum) of the batch, with κ/m · Σ ∂loss/∂Θ written into the gradient."""
        loss, grads, metric_sum = self.sums(X[rows], Y[rows])
        for view, grad in zip(self.views, grads, strict=True):
            np.multiply(grad, self.scale, out=view)
        return loss, metric_sum

    def sums(self, X_batch: np.ndarray, Y_batch: np.ndarray, forms=None):
        """(Σ loss, Σ ∂loss/∂Θ per parameter array, the metric's sum) of a batch, by ``Network.backprop``
        through ``forms`` (the layers' own by default)."""
        loss, grads, a_out = self.net.backprop(X_batch, Y_batch, forms)
        return loss, grads, self.metric.batch_sum(a_out, Y_batch) if self.metric is not None else 0.0


def cost(loss: float, squares: float, lambda_: float, m: int) -> float:
    """J_i = loss/m + λ/(2m) Σ Θ² (the weights' squares as they were before the update)."""
    return loss / m + (lambda_ / (2.0 * m) * squares if lambda_ != 0.0 else 0.0)


def new_gradients(net: Network, threads: int) -> list[np.ndarray]:
    """One gradient vector laid out like θ per thread."""
    return [np.zeros_like(net.theta) for _ in range(threads)]


def hold_blas_to_one_thread():
    """A context that holds BLAS to one thread of its own: each thread's products then run on that thread.
    Returns the threadpoolctl limit, whose ``restore_original_limits`` gives BLAS its threads back."""
    return blas_controller().limit(limits=1, user_api="blas")


class PartitionedStep(LayerStep):
    """A step whose batch is every row the workers hold (``nncli.distributed``): the partitions' sums are
    added in partition order, then the step goes on as ``LayerStep``'s, on the client."""

    def gradient_sums(self, X, Y, rows) -> tuple[float, float]:
        loss, grads, metric_sum, _ = X.sums(
            self.net, self.metric, batch=None if isinstance(rows, slice) else rows
        )
        for view, grad in zip(self.views, grads, strict=True):
            np.multiply(grad, self.scale, out=view)
        return loss, metric_sum

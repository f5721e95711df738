"""The compiled step for many rows: the batch cut into chunks of rows shared among numba's threads, each
chunk's products calls of BLAS's gemm on its thread, and nothing between them that is not compiled.

It computes what ``nncli.engines.numpy_engine.ChunkedStep`` computes, in the same chunks
(``chunk_spans``), but as one call: no Python runs between a chunk's products, so no thread waits for the
GIL or for a helper thread to wake. Examples are columns, as there (the lecture's layout):

- thread t takes chunks t, t + T, t + 2T, … of the m rows (T threads), each of r rows:
  - forward:  z^(l+1) = Θ^(l) a^(l) + b^(l) (s_{l+1}, r), a^(l+1) = g(z^(l+1)); a^(1) is the chunk's rows of
    X read transposed where they lie (a slice of a C-ordered X), or gathered first;
  - output:   a^(L), the loss and δ^(L) = c·(a^(L) − y), c = κ/m (κ the optimizer's ``gradient_scale``);
  - gradient: G_t += c·Δ^(l) = δ^(l+1) a^(l)ᵀ and c·Σ_i δ^(l+1)_i for the bias, one gemm that adds into
    G_t (the first chunk writes over it);
  - backward: δ^(l) = (Θ^(l))ᵀ δ^(l+1) .* g′(z^(l));
- then θ is cut into ranges (one per thread for a θ of ``MIN_ENTRIES_TO_SHARE_UPDATE`` entries or more,
  else one): each range adds up G_0 + G_1 + … for its entries and moves its part of θ by the optimizer's
  fused update (``nncli.engines.compiled.updates``), which adds the coupled λ term.

Each thread's BLAS calls run on that thread (the registry holds BLAS to one thread of its own while a run
lasts). Each pass of a layer is one of ``nncli.engines.compiled.dense_gemm``'s. The sums are added in
thread order, so a step is deterministic for a given number of threads; the tests hold it to the
straightforward step within 1e-12 in float64.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import prange

from nncli.engines.compiled.cblas import address, available, view
from nncli.engines.compiled.dense_gemm import (
    NO_UNITS,
    forward_units,
    gradient_units,
    layer_input,
    propagate_units,
)
from nncli.engines.compiled.jit import threaded
from nncli.engines.compiled.loops import batch_rows, parameter_starts
from nncli.engines.compiled.products import gather_columns, gather_rows
from nncli.engines.compiled.units import output_and_delta, unit_codes
from nncli.engines.compiled.updates import OPTIMIZER_CODES, apply_update, state_arrays, step_scalars
from nncli.engines.numpy_engine import MIN_ENTRIES_TO_SHARE_UPDATE, chunk_spans, cost, even_edges


@threaded
def chunk_step(
    X, Y, rows, start, direct, theta, first, second, G, work, sizes, offsets, places, hyper, codes, edges,
    ranges, losses, squares, outputs, targets,
):  # fmt: skip
    """One step on m rows: rows[i] of X and Y, or rows start… when ``rows`` is empty (read from X where
    they lie when ``direct``, X being C-ordered).

    ``sizes`` = (s_1, …, s_{L+1}); ``offsets`` = (W^(1), b^(1), …, W^(L), b^(L)) start in θ, then the
    number of weights; ``work[t]`` is thread t's buffer, ``places`` where in it the gathered X rows
    (r, s_1), a^(2) … a^(L+1) (s_l, r), the chunk's Y (K, r) and δ^(2) … δ^(L+1) (s_l, r) start, for its
    largest chunk; ``G[t]`` its gradient; ``edges`` the chunks' first rows, then m; ``ranges`` θ's update
    ranges; ``hyper`` and ``codes`` = (hidden, output, optimizer) as ``nncli.engines.compiled.blas.step``
    takes them. Writes each thread's loss sum into ``losses`` and each range's Σ Θ² of the weights before
    the update into ``squares``; and a^(L) and Y (K, m) into ``outputs`` and ``targets`` when they are
    not empty (for a metric).
    """
    threads, chunks, layers = work.shape[0], edges.size - 1, sizes.size - 1
    c = hyper[0]
    hidden, output, code = codes[0], codes[1], codes[2]
    n, K = sizes[0], sizes[layers]
    keep = outputs.size > 0
    for t in prange(threads):
        w, g = work[t], G[t]
        loss = 0.0
        accumulate = 0.0  # gemm's β: the first chunk writes over G_t, the others add into it
        if t >= chunks:
            g[:] = 0.0
        for j in range(t, chunks, threads):
            lo, hi = edges[j], edges[j + 1]
            r = hi - lo
            taken = rows[lo:hi] if rows.size else np.arange(start + lo, start + hi)
            X_rows = view(w, places[0], r, n)
            if rows.size == 0 and direct:
                x_at = address(X, (start + lo) * n)
            else:
                gather_rows(X, taken, X_rows)
                x_at = X_rows.ctypes.data
            Y_chunk = view(w, places[layers + 1], K, r)
            gather_columns(Y, taken, Y_chunk)

            for level in range(layers):  # FP
                s_in, s_out = sizes[level], sizes[level + 1]
                a_at, lda = layer_input(level, x_at, n, w, places[level], s_in, r)
                units = hidden if level < layers - 1 else NO_UNITS
                z = view(w, places[level + 1], s_out, r)
                forward_units(theta, offsets[2 * level], offsets[2 * level + 1], s_in, 0, s_out, a_at, lda,
                              level == 0, z, units)  # fmt: skip

            a_out = view(w, places[layers], K, r)
            delta_out = view(w, places[layers + 1 + layers], K, r)
            columns = (1, K, r)  # (K, r) as the kernel's (groups, K, inner)
            loss += output_and_delta(
                a_out.reshape(columns), Y_chunk.reshape(columns), delta_out.reshape(columns), c, output
            )
            if keep:
                outputs[:, lo:hi] = a_out
                targets[:, lo:hi] = Y_chunk

            for level in range(layers - 1, -1, -1):  # BP
                s_in, s_out = sizes[level], sizes[level + 1]
                w_at, b_at = offsets[2 * level], offsets[2 * level + 1]
                a_at, lda = layer_input(level, x_at, n, w, places[level], s_in, r)
                delta = view(w, places[layers + 2 + level], s_out, r)
                gradient_units(delta, 0, s_out, s_in, a_at, lda, level == 0, accumulate, g, w_at, b_at)
                if level > 0:
                    a = view(w, places[level], s_in, r)
                    below = view(w, places[layers + 1 + level], s_in, r)
                    propagate_units(theta, w_at, s_in, 0, s_in, delta, below, a, hidden)
            accumulate = 1.0
        losses[t] = loss

    n_weights = offsets[2 * layers]
    for q in prange(ranges.size - 1):  # the update, range by range
        lo, hi = ranges[q], ranges[q + 1]
        total = G[0, lo:hi]
        for t in range(1, threads):
            other = G[t, lo:hi]
            for p in range(hi - lo):
                total[p] += other[p]
        weights = min(max(n_weights - lo, 0), hi - lo)
        squares[q] = apply_update(code, first[lo:hi], second[lo:hi], theta[lo:hi], total, weights, hyper)


class ChunkStep:
    """Steps of m rows on ``net`` through ``chunk_step`` on up to ``cores`` threads, with one of the
    optimizers ``OPTIMIZER_CODES`` knows: the chunks, the threads' buffers, the update's ranges, the
    network's shape, offsets and codes, made once; the threads' gradients are the rows of
    ``gradient_rows(threads)``. ``run`` updates θ and the optimizer's state in place."""

    def __init__(self, net, optimizer, lambda_: float, metric, m: int, cores: int, gradient_rows) -> None:
        cores = min(cores, numba.get_num_threads())
        spans, threads = chunk_spans(m, net.dtype.itemsize, cores)
        if not available(threads):  # the gemm symbols must be known to the linker before a step is loaded
            raise RuntimeError("ChunkStep cannot run in this process (see cblas.available)")
        self.net, self.optimizer, self.lambda_, self.metric, self.m = net, optimizer, lambda_, metric, m
        self.first, self.second = state_arrays(optimizer.state, net.dtype)
        sizes = net.layer_sizes
        self.sizes = np.array(sizes, dtype=np.int64)
        self.offsets = np.array([*parameter_starts(net), net.n_regularized], dtype=np.int64)
        self.edges = np.array([span.start for span in spans] + [m], dtype=np.int64)
        rows = max(span.stop - span.start for span in spans)
        lengths = [*(rows * s for s in sizes), rows * sizes[-1], *(rows * s for s in sizes[1:])]
        self.places = np.cumsum([0, *lengths[:-1]]).astype(np.int64)
        self.work = np.zeros((threads, sum(lengths)), dtype=net.dtype)
        self.G = gradient_rows(threads)  # (threads, θ's size): written over by each step
        shared = threads if net.theta.size >= MIN_ENTRIES_TO_SHARE_UPDATE else 1
        self.ranges = even_edges(net.theta.size, shared)
        self.losses = np.zeros(threads)
        self.squares = np.zeros(shared)
        kappa = optimizer.gradient_scale
        self.hyper = np.array(
            [kappa / m, optimizer.beta, kappa * lambda_ / m, 0, 0, 0, 0, 0], dtype=net.dtype
        )
        self.codes = np.array([*unit_codes(net), OPTIMIZER_CODES[optimizer.name]], dtype=np.int64)
        kept = (sizes[-1], m) if metric is not None else (0, 0)
        self.outputs, self.targets = np.empty(kept, net.dtype), np.empty(kept, net.dtype)

    def run(self, X: np.ndarray, Y: np.ndarray, rows, alpha: float) -> tuple[float, float]:
        """(J_i of the batch, the metric's batch sum), both before the update."""
        index, start = batch_rows(rows)
        self.optimizer.begin_step()
        self.hyper[3] = alpha
        self.hyper[4:] = step_scalars(self.optimizer, alpha)
        chunk_step(
            X, Y, index, start, X.flags.c_contiguous, self.net.theta, self.first, self.second, self.G,
            self.work, self.sizes, self.offsets, self.places, self.hyper, self.codes, self.edges, self.ranges,
            self.losses, self.squares, self.outputs, self.targets,
        )  # fmt: skip
        metric = self.metric
        metric_sum = metric.batch_sum(self.outputs.T, self.targets.T) if metric is not None else 0.0
        loss = sum(self.losses.tolist())  # in thread order
        return cost(loss, sum(self.squares.tolist()), self.lambda_, self.m), metric_sum

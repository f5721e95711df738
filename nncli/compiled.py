"""The training step compiled by numba: the whole step as one function, for steps too small to pay for
NumPy's calls, and the units and momentum update of the larger steps that keep BLAS for their products.

A step of a few rows through a small network is a few hundred thousand multiply-adds; the NumPy path
spends more on its two dozen calls (each a few microseconds, however small its arrays) than on the
arithmetic. Here numba compiles the same step — FP, BP and the momentum update — into one function, and
a step costs one call. The formulas are the lecture's, written as the sums they are:

- forward:   z^(l+1)_ij = b_j + Σ_k a^(l)_ik W_jk, then a^(l+1) = g(z^(l+1)) in place;
- output:    a^(L) and the loss from z^(L) (``nncli.losses``), δ^(L) = c·(a^(L) − y), c = α(1 − β)/m;
- gradient:  c·Δ^(l)_jk = Σ_i δ^(l+1)_ij a^(l)_ik and c·Σ_i δ^(l+1)_ij for the bias;
- backward:  δ^(l)_ik = (Σ_j δ^(l+1)_ij W_jk) .* g′(z^(l)_ik), g′ written from a^(l);
- update:    S := β S + c·Δ + c·λ·Θ (weights only), Θ := Θ − S, with Σ Θ² of the weights taken on the way
             (the L2 term of J, for Θ before the update).

Shapes: a^(l) is (m, s_l), W = Θ^(l) without its bias column is (s_{l+1}, s_l). Every loop's innermost
index runs along memory, so the compiler vectorizes it. ``fastmath`` allows reassociating sums and fused
multiply-adds: the result differs from the NumPy path's in the last bits (the tests hold them to 1e-12
in float64), and is the same on every run of one machine.

``CompiledStep`` drives ``step`` for one batch size; ``CompiledPasses`` serves the
larger steps of ``nncli.step.FastStep``. This module imports numba; ``nncli.engines`` imports it only for
the ``compiled`` engine.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from nncli import example_step
from nncli.activations import LEAKY_SLOPE

HIDDEN_CODES = {"sigmoid": 0, "tanh": 1, "relu": 2, "leaky_relu": 3}
OUTPUT_CODES = {"sigmoid": 0, "softmax": 1, "linear": 2}

# error_model="numpy": a division by 0 gives inf or nan as in NumPy, with no check that stops the
# compiler from vectorizing the loop.
_compiled = numba.njit(cache=True, nogil=True, error_model="numpy", fastmath={"reassoc", "contract", "nsz"})


@_compiled
def _forward(a, W, b, z):
    """z = a Wᵀ + b: (m, s_l) · (s_{l+1}, s_l)ᵀ + (s_{l+1},). Four units at a time, so that each a_ik
    loaded serves four sums."""
    zero = a.dtype.type(0.0)
    units = W.shape[0]
    for i in range(a.shape[0]):
        j = 0
        while j + 4 <= units:
            t0 = t1 = t2 = t3 = zero
            for k in range(a.shape[1]):
                x = a[i, k]
                t0 += x * W[j, k]
                t1 += x * W[j + 1, k]
                t2 += x * W[j + 2, k]
                t3 += x * W[j + 3, k]
            z[i, j] = t0 + b[j]
            z[i, j + 1] = t1 + b[j + 1]
            z[i, j + 2] = t2 + b[j + 2]
            z[i, j + 3] = t3 + b[j + 3]
            j += 4
        while j < units:
            t0 = zero
            for k in range(a.shape[1]):
                t0 += a[i, k] * W[j, k]
            z[i, j] = t0 + b[j]
            j += 1


# e^x for σ, tanh and softmax: numba's np.exp is a call per number, which the compiler cannot vectorize.
# Here e^x = 2^n e^r with n = round(x / ln 2) and r = x − n ln 2, |r| ≤ ln 2 / 2: ln 2 is split in two so
# that n·ln2_hi is exact; e^r is its Taylor series (to r^13 in float64, r^7 in float32: the first term
# left out is below a tenth of the last place); 2^n is made from its exponent bits. Adding 1.5·2^52
# (1.5·2^23) rounds x / ln 2 to the integer n and leaves n in the low bits. The result is within a few
# units of the last place of the C library's exp (the tests compare them).
_BLOCK = 256  # numbers per pass: the block's passes stay in the first-level cache
_F64 = (6.93147180369123816490e-01, 1.90821492927058770002e-10, 1.4426950408889634, 6755399441055744.0)
_F32 = tuple(np.float32(v) for v in (0.693359375, -2.12194440e-4, 1.44269504, 12582912.0))
_SHIFTER_BITS_64 = int(np.float64(_F64[3]).view(np.int64))
_SHIFTER_BITS_32 = np.int32(np.float32(_F32[3]).view(np.int32))
_TAYLOR_64 = tuple(1.0 / math.factorial(k) for k in range(13, -1, -1))  # 1/13!, …, 1/1!, 1/0!
_TAYLOR_32 = tuple(np.float32(1.0 / math.factorial(k)) for k in range(7, -1, -1))

# No reassociation here: it would undo the rounding by 1.5·2^52 and the two-part reduction.
_exact = numba.njit(cache=True, nogil=True, error_model="numpy", fastmath={"contract"})


@_exact
def _exp_block(x, e, e_bits):
    """e := e^x for a block of x within the range ``_exp_inplace`` clamps to (x is overwritten), in x's
    precision; ``e_bits`` is e viewed as integers of its size."""
    if x.itemsize == 4:
        _exp_terms(x, e, e_bits, _F32, _TAYLOR_32, _SHIFTER_BITS_32, np.int32(127), np.int32(23))
    else:
        _exp_terms(x, e, e_bits, _F64, _TAYLOR_64, _SHIFTER_BITS_64, 1023, 52)


@_exact
def _exp_terms(x, e, e_bits, reduction, taylor, shifter_bits, bias, mantissa):
    ln2_hi, ln2_lo, inv_ln2, shifter = reduction
    for q in range(x.size):
        shifted = x[q] * inv_ln2 + shifter
        n = shifted - shifter
        r = (x[q] - n * ln2_hi) - n * ln2_lo
        p = taylor[0]
        for coefficient in taylor[1:]:  # Horner's rule; the tuple's length is known when compiling
            p = p * r + coefficient
        x[q] = p
        e[q] = shifted
    for q in range(x.size):
        e_bits[q] = (e_bits[q] - shifter_bits + bias) << mantissa  # the bits of 2^n
    for q in range(x.size):
        e[q] *= x[q]


_EXP, _SIGMOID, _TANH = 0, 1, 2  # what ``_exp_inplace`` leaves: e^x, 1 / (1 + e^x), 1 − 2 / (e^x + 1)


@_exact
def _exp_inplace(flat, scale, finish):
    """flat := f(e^(scale·flat)), f chosen by ``finish``, block by block. scale·flat is clamped to where
    2^n is a normal number or inf (e^x of a larger x is inf, as in NumPy; of a smaller one, the smallest
    normal number instead of 0 or a subnormal). nan stays nan."""
    if flat.itemsize == 4:
        e32 = np.empty(_BLOCK, dtype=np.float32)
        _exp_blocks(flat, scale, finish, e32, e32.view(np.int32), -87.0, 89.0)
    else:
        e64 = np.empty(_BLOCK, dtype=np.float64)
        _exp_blocks(flat, scale, finish, e64, e64.view(np.int64), -708.0, 710.0)


@_exact
def _exp_blocks(flat, scale, finish, e, e_bits, low, high):
    one, two = flat.dtype.type(1.0), flat.dtype.type(2.0)
    scale, low, high = flat.dtype.type(scale), flat.dtype.type(low), flat.dtype.type(high)
    x = np.empty_like(e)
    for start in range(0, flat.size, _BLOCK):
        part = flat[start : start + _BLOCK]
        size = part.size
        xs, es = x[:size], e[:size]
        for q in range(size):
            v = scale * part[q]
            v = high if v > high else v  # comparisons, not min/max, so that nan stays nan
            xs[q] = low if v < low else v
        _exp_block(xs, es, e_bits[:size])
        if finish == _EXP:
            part[:] = es
        elif finish == _SIGMOID:
            for q in range(size):
                part[q] = one / (one + es[q])
        else:
            for q in range(size):
                part[q] = one - two / (es[q] + one)


@_exact
def _activate(z, code):
    """z := g(z), with the formulas of ``nncli.activations``: σ(z) = 1 / (1 + e^(−z)),
    tanh(z) = 1 − 2 / (e^(2z) + 1), relu max(0, z), leaky relu max(z, 0.01 z). nan stays nan."""
    flat = z.reshape(z.size)
    if code == 0:
        _exp_inplace(flat, -1.0, _SIGMOID)
    elif code == 1:
        _exp_inplace(flat, 2.0, _TANH)  # tanh(±20) is ±1 to the last bit, and e^40 is still finite
    elif code == 2:
        for p in range(flat.size):
            if flat[p] < 0:
                flat[p] = 0
    else:
        slope = z.dtype.type(LEAKY_SLOPE)
        for p in range(flat.size):
            if flat[p] < 0:
                flat[p] *= slope


@_compiled
def _scale_by_g_prime(delta, a, code):
    """δ .*= g′(z), written from a = g(z)."""
    one = a.dtype.type(1.0)
    slope = a.dtype.type(LEAKY_SLOPE)
    d, flat = delta.reshape(delta.size), a.reshape(a.size)
    if code == 0:  # a (1 − a)
        for p in range(flat.size):
            d[p] *= flat[p] * (one - flat[p])
    elif code == 1:  # 1 − a²
        for p in range(flat.size):
            d[p] *= one - flat[p] * flat[p]
    elif code == 2:  # 1 where a > 0, else 0
        for p in range(flat.size):
            if not flat[p] > 0:
                d[p] = 0
    else:  # 1 where a > 0, else 0.01
        for p in range(flat.size):
            if not flat[p] > 0:
                d[p] *= slope


@_exact
def _output_and_delta(z, Y, delta, c, code):
    """Overwrite z^(L) with a^(L), write δ^(L) = c·(a − y), return the loss summed over the examples.

    z, Y and delta are laid out alike, as (groups, K, inner): example (g, i) has its K units at
    [g, :, i]. Examples as rows, (m, K), are (m, K, 1); examples as columns, (K, m), are (1, K, m), whose
    softmax loops run along the m examples in memory.
    """
    one = z.dtype.type(1.0)
    loss = 0.0
    groups, K, inner = z.shape
    flat, d, y = z.reshape(z.size), delta.reshape(delta.size), Y.reshape(Y.size)
    if code == 0:  # sigmoid, cross-entropy log(1 + e^z) − y·z = max(z, 0) + log(1 + e^−|z|) − y·z
        for p in range(flat.size):
            d[p] = -abs(flat[p])
        _exp_inplace(d, 1.0, _EXP)  # t = e^−|z|, in δ's place until δ is written
        for p in range(flat.size):
            v, t = flat[p], d[p]
            loss += (v if v > 0 else 0.0) + np.log1p(t) - y[p] * v
            flat[p] = one / (one + t) if v >= 0 else t / (one + t)
    elif code == 1:  # softmax, log Σ_j e^(s_j) − y·s with s = z − max z
        per_example = np.empty(inner, dtype=z.dtype)  # max z, then Σ e^s, of each example in the group
        for g in range(groups):
            per_example[:] = z[g, 0]
            for k in range(1, K):
                for i in range(inner):
                    per_example[i] = max(per_example[i], z[g, k, i])
            for k in range(K):
                for i in range(inner):
                    z[g, k, i] -= per_example[i]
                    loss -= Y[g, k, i] * z[g, k, i]
        _exp_inplace(flat, 1.0, _EXP)
        for g in range(groups):
            per_example[:] = 0
            for k in range(K):
                for i in range(inner):
                    per_example[i] += z[g, k, i]
            for i in range(inner):
                loss += np.log(per_example[i])
            for k in range(K):
                for i in range(inner):
                    z[g, k, i] /= per_example[i]
    else:  # linear, ½ (a − y)²
        for p in range(flat.size):
            residual = flat[p] - y[p]
            loss += 0.5 * residual * residual
    for p in range(flat.size):
        d[p] = c * (flat[p] - y[p])
    return loss


@_compiled
def _gradient(delta, a, grad_W, grad_b):
    """c·Δ = δᵀ a (s_{l+1}, s_l) and c·Σ_i δ_i (s_{l+1},), written over what the arrays held. Four
    examples at a time, so that each entry of Δ is loaded and stored once per four products."""
    grad_W[:] = 0
    grad_b[:] = 0
    m = a.shape[0]
    i = 0
    while i + 4 <= m:
        for j in range(delta.shape[1]):
            d0, d1, d2, d3 = delta[i, j], delta[i + 1, j], delta[i + 2, j], delta[i + 3, j]
            grad_b[j] += d0 + d1 + d2 + d3
            for k in range(a.shape[1]):
                grad_W[j, k] += d0 * a[i, k] + d1 * a[i + 1, k] + d2 * a[i + 2, k] + d3 * a[i + 3, k]
        i += 4
    while i < m:
        for j in range(delta.shape[1]):
            d0 = delta[i, j]
            grad_b[j] += d0
            for k in range(a.shape[1]):
                grad_W[j, k] += d0 * a[i, k]
        i += 1


@_compiled
def _propagate(delta, W, below):
    """δ W: (m, s_{l+1}) · (s_{l+1}, s_l), before the .* g′. Four units at a time."""
    below[:] = 0
    units = W.shape[0]
    for i in range(delta.shape[0]):
        j = 0
        while j + 4 <= units:
            d0, d1, d2, d3 = delta[i, j], delta[i, j + 1], delta[i, j + 2], delta[i, j + 3]
            for k in range(W.shape[1]):
                below[i, k] += d0 * W[j, k] + d1 * W[j + 1, k] + d2 * W[j + 2, k] + d3 * W[j + 3, k]
            j += 4
        while j < units:
            d0 = delta[i, j]
            for k in range(W.shape[1]):
                below[i, k] += d0 * W[j, k]
            j += 1


@_compiled
def _gather_rows(X, rows, out):
    """out[i] = X[rows[i]], four rows at a time: four streams from memory in flight instead of one (on
    W2's rows, 1.5 × as fast as ``ndarray.take``)."""
    i, m = 0, rows.size
    while i + 4 <= m:
        r0, r1, r2, r3 = rows[i], rows[i + 1], rows[i + 2], rows[i + 3]
        for k in range(X.shape[1]):
            out[i, k] = X[r0, k]
            out[i + 1, k] = X[r1, k]
            out[i + 2, k] = X[r2, k]
            out[i + 3, k] = X[r3, k]
        i += 4
    while i < m:
        out[i, :] = X[rows[i], :]
        i += 1


@_compiled
def _gather_columns(Y, rows, out):
    """out[:, i] = Y[rows[i]]: the batch's targets as columns, one per example."""
    for i in range(rows.size):
        for k in range(Y.shape[1]):
            out[k, i] = Y[rows[i], k]


@_compiled
def momentum_update(S, theta, G, n_weights, beta, decay):
    """S := β S + G + decay·Θ on the first ``n_weights`` entries (β S + G on the rest), Θ := Θ − S;
    returns Σ Θ² over those entries, of Θ as it was before the update."""
    squares = 0.0
    for p in range(n_weights):
        t = theta[p]
        squares += t * t
        s = beta * S[p] + G[p] + decay * t
        S[p] = s
        theta[p] = t - s
    for p in range(n_weights, theta.size):
        s = beta * S[p] + G[p]
        S[p] = s
        theta[p] = theta[p] - s
    return squares


@_compiled
def step(X, Y, rows, start, theta, S, G, work, sizes, offsets, hyper, codes):
    """One step on m = ``work``'s batch rows: rows[i] of X and Y, or rows start… when ``rows`` is empty.

    ``sizes`` = (m, s_1, …, s_{L+1}); ``offsets`` = (W^(1), b^(1), …, W^(L), b^(L)) start in θ, then the
    number of regularized entries; ``hyper`` = (c, β, c·λ); ``codes`` = (hidden, output). ``work`` holds,
    packed for this m: the gathered X rows a^(1), a^(2) … a^(L+1), the gathered Y rows, δ^(2) … δ^(L+1).
    Returns (loss summed over the rows, Σ Θ² of the weights before the update).
    """
    m, layers = sizes[0], sizes.size - 2
    c, beta, decay = hyper[0], hyper[1], hyper[2]
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
        _gather_rows(X, rows, activations[0])
        _gather_rows(Y, rows, Y_batch)
    else:
        activations[0][:] = X[start : start + m]
        Y_batch[:] = Y[start : start + m]

    # FP
    for level in range(layers):
        s_in, s_out = sizes[level + 1], sizes[level + 2]
        W = theta[offsets[2 * level] : offsets[2 * level] + s_out * s_in].reshape((s_out, s_in))
        b = theta[offsets[2 * level + 1] : offsets[2 * level + 1] + s_out]
        _forward(activations[level], W, b, activations[level + 1])
        if level < layers - 1:
            _activate(activations[level + 1], hidden)
    as_rows = (m, sizes[layers + 1], 1)  # examples as rows, in the (groups, K, inner) of the kernel
    loss = _output_and_delta(
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
        _gradient(deltas[level], activations[level], grad_W, G[b_at : b_at + s_out])
        if level > 0:
            W = theta[w_at : w_at + s_out * s_in].reshape((s_out, s_in))
            _propagate(deltas[level], W, deltas[level - 1])
            _scale_by_g_prime(deltas[level - 1], activations[level], hidden)

    squares = momentum_update(S, theta, G, n_weights, beta, decay)
    return loss, squares


def parameter_starts(net) -> list[int]:
    """Where W^(1), b^(1), …, W^(L), b^(L) start in θ."""
    return [net.slices[(id(layer), index)].start for layer in net.layers for index in range(2)]


def unit_codes(net) -> np.ndarray:
    """(hidden, output): the kernels' codes of ``net``'s units."""
    return np.array([HIDDEN_CODES[net.hidden.name], OUTPUT_CODES[net.output.name]], dtype=np.int64)


_NO_ROWS = np.empty(0, dtype=np.int64)


def batch_rows(rows) -> tuple[np.ndarray, int]:
    """A step's rows as the kernels take them: (index array, 0), or (no index, start) for a slice."""
    return (_NO_ROWS, rows.start) if rows.__class__ is slice else (rows, 0)


class CompiledStep:
    """Steps of m rows on ``net`` through ``step``: the network's shape, offsets and codes, and the work
    buffer, made once. ``run`` updates θ and S in place, and leaves a^(L) and the batch's Y rows in
    ``outputs`` and ``targets`` for a metric."""

    def __init__(self, net, m: int, S: np.ndarray, gradient: np.ndarray, c, beta, decay) -> None:
        self.net, self.S, self.gradient = net, S, gradient
        sizes = net.layer_sizes
        self.sizes = np.array([m, *sizes], dtype=np.int64)
        self.offsets = np.array([*parameter_starts(net), net.n_regularized], dtype=np.int64)
        self.hyper = np.array([c, beta, decay], dtype=net.dtype)
        self.codes = unit_codes(net)
        rows_of_work = sum(sizes) + sizes[-1] + sum(sizes[1:])
        self.work = np.zeros(m * rows_of_work, dtype=net.dtype)
        K, at = sizes[-1], m * sum(sizes[:-1])
        self.outputs = self.work[at : at + m * K].reshape(m, K)
        self.targets = self.work[at + m * K : at + 2 * m * K].reshape(m, K)

    def run(self, X: np.ndarray, Y: np.ndarray, rows) -> tuple[float, float]:
        """(loss summed over the rows, Σ Θ² of the weights before the update) of one step."""
        index, start = batch_rows(rows)
        return step(
            X, Y, index, start, self.net.theta, self.S, self.gradient, self.work,
            self.sizes, self.offsets, self.hyper, self.codes,
        )  # fmt: skip


class CompiledPasses:
    """Everything but the products of the steps that keep BLAS for them, through this module's kernels:
    the same methods as ``nncli.step.NumpyPasses``, one pass each."""

    def __init__(self, net) -> None:
        self.hidden, self.output = HIDDEN_CODES[net.hidden.name], OUTPUT_CODES[net.output.name]

    def gather(self, X: np.ndarray, Y: np.ndarray, rows: np.ndarray, X_rows: np.ndarray, Y_columns) -> None:
        _gather_rows(X, rows, X_rows)
        _gather_columns(Y, rows, Y_columns)

    def activate(self, z: np.ndarray, scratch: np.ndarray) -> None:
        _activate(z, self.hidden)

    def scale_by_g_prime(self, delta: np.ndarray, a: np.ndarray, scratch: np.ndarray) -> None:
        _scale_by_g_prime(delta, a, self.hidden)

    def output_and_delta(self, z: np.ndarray, Y: np.ndarray, delta: np.ndarray, c) -> float:
        columns = (1, *z.shape)  # (K, m) as the kernel's (groups, K, inner)
        return _output_and_delta(
            z.reshape(columns), Y.reshape(columns), delta.reshape(columns), c, self.output
        )

    def momentum_update(self, S, theta, G, n_weights: int, beta, decay, scratch) -> float:
        return momentum_update(S, theta, G, n_weights, beta, decay)


def knows_units(net) -> bool:
    """Whether the kernels have ``net``'s hidden activation and output unit."""
    return net.hidden.name in HIDDEN_CODES and net.output.name in OUTPUT_CODES


def usable() -> bool:
    """False when numba runs as plain Python (NUMBA_DISABLE_JIT=1), far slower than NumPy."""
    return not numba.config.DISABLE_JIT


def serves(net) -> bool:
    """Whether ``step`` can train ``net``: fully connected layers and units it knows."""
    return example_step.serves(net) and knows_units(net)

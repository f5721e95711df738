"""The units, compiled: g and g′ of the hidden units, and the output units with their loss and δ^(L).

- activate:         a = g(z) in place, with the formulas of ``nncli.model.activations``:
                    σ(z) = 1 / (1 + e^(−z)), tanh(z) = 1 − 2 / (e^(2z) + 1), relu max(0, z), leaky relu
                    max(z, 0.01 z);
- add_bias:         z^(l+1) := Θ^(l) a^(l) + b^(l) from the product, examples as columns;
- scale_by_g_prime: δ^(l) .*= g′(z^(l)), g′ written from a^(l) = g(z^(l));
- propagate_one_unit: δ^(l) = (Θ^(l))ᵀ δ^(l+1) .* g′(z^(l)) where layer l + 1 has one unit (an outer
                    product), a row at a time;
- output_and_delta: a^(L) and the loss from z^(L) (``nncli.model.losses``), δ^(L) = c·(a^(L) − y), for a
                    scale c the caller chooses (its optimizer's, ``nncli.optim``).

e^x is computed here, block by block, rather than by numba's np.exp, which is a call per number that the
compiler cannot vectorize.
"""

from __future__ import annotations

import math

import numpy as np
from numba import types
from numba.extending import overload

from nncli.engines.compiled.jit import exact, fast
from nncli.model.activations import LEAKY_SLOPE

HIDDEN_CODES = {"sigmoid": 0, "tanh": 1, "relu": 2, "leaky_relu": 3}
OUTPUT_CODES = {"sigmoid": 0, "softmax": 1, "linear": 2}


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

# No reassociation in these (``exact``): it would undo the rounding by 1.5·2^52 and the two-part reduction.


def _exp_constants(x):
    """(reduction, Taylor coefficients, shifter's bits, exponent bias, mantissa bits) for x's precision."""


@overload(_exp_constants)
def _exp_constants_of(x):
    # chosen while typing, so that each precision compiles only its own constants (a branch on the
    # itemsize would type, and compile, both)
    if x.dtype == types.float32:
        return lambda x: (_F32, _TAYLOR_32, _SHIFTER_BITS_32, np.int32(127), np.int32(23))
    return lambda x: (_F64, _TAYLOR_64, _SHIFTER_BITS_64, 1023, 52)


def _exp_workspace(flat):
    """(e, e's bits as integers of its size, lowest x, highest x): ``_exp_blocks``' buffer and range."""


@overload(_exp_workspace)
def _exp_workspace_of(flat):
    if flat.dtype == types.float32:

        def workspace32(flat):
            e = np.empty(_BLOCK, dtype=np.float32)
            return e, e.view(np.int32), -87.0, 89.0

        return workspace32

    def workspace64(flat):
        e = np.empty(_BLOCK, dtype=np.float64)
        return e, e.view(np.int64), -708.0, 710.0

    return workspace64


@exact
def _exp_block(x, e, e_bits):
    """e := e^x for a block of x within the range ``_exp_inplace`` clamps to (x is overwritten), in x's
    precision; ``e_bits`` is e viewed as integers of its size."""
    reduction, taylor, shifter_bits, bias, mantissa = _exp_constants(x)
    _exp_terms(x, e, e_bits, reduction, taylor, shifter_bits, bias, mantissa)


@exact
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


@exact
def _exp_inplace(flat, scale, finish):
    """flat := f(e^(scale·flat)), f chosen by ``finish``, block by block. scale·flat is clamped to where
    2^n is a normal number or inf (e^x of a larger x is inf, as in NumPy; of a smaller one, the smallest
    normal number instead of 0 or a subnormal). nan stays nan."""
    e, e_bits, low, high = _exp_workspace(flat)
    _exp_blocks(flat, scale, finish, e, e_bits, low, high)


@exact
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
            for q in range(size):  # a loop, not part[:] = es, whose shape check costs a compile
                part[q] = es[q]
        elif finish == _SIGMOID:
            for q in range(size):
                part[q] = one / (one + es[q])
        else:
            for q in range(size):
                part[q] = one - two / (es[q] + one)


@exact
def activate(z, code):
    """z := g(z), with the formulas of ``nncli.model.activations``: σ(z) = 1 / (1 + e^(−z)),
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


@fast
def add_bias(z, b):
    """z := z + b, b (s,) added to every column of z (s, m): one column per example."""
    for j in range(z.shape[0]):
        for i in range(z.shape[1]):
            z[j, i] += b[j]


@fast
def propagate_one_unit(w, delta, below, a, code):
    """δ^(l) = (Θ^(l))ᵀ δ^(l+1) .* g′(z^(l)) into ``below`` (s_l, m), for Θ^(l) of one row w (s_l,) and
    δ^(l+1) (m,): row j is w_j δ^(l+1) .* g′, made and scaled while it is in the first-level cache."""
    for j in range(below.shape[0]):
        row = below[j]
        weight = w[j]
        for i in range(row.size):
            row[i] = weight * delta[i]
        scale_by_g_prime(row, a[j], code)


@fast
def scale_by_g_prime(delta, a, code):
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


@exact
def output_and_delta(z, Y, delta, c, code):
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
            for i in range(inner):
                per_example[i] = z[g, 0, i]
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


def unit_codes(net) -> np.ndarray:
    """(hidden, output): the kernels' codes of ``net``'s units."""
    return np.array([HIDDEN_CODES[net.hidden.name], OUTPUT_CODES[net.output.name]], dtype=np.int64)


def knows_units(net) -> bool:
    """Whether the kernels have ``net``'s hidden activation (one for every hidden layer) and output unit."""
    return net.hidden is not None and net.hidden.name in HIDDEN_CODES and net.output.name in OUTPUT_CODES

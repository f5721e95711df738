"""A dense layer's three passes through BLAS's gemm, on a range of its units, for the compiled BLAS steps
(``blas``, which shares each layer's units among threads, and ``blas_chunks``, which shares chunks of
rows and gives each thread all of them). Examples are columns: z^(l+1), δ^(l+1) are (s_{l+1}, m) and
a^(l) is (s_l, m), except a^(1), which is the batch's rows of X (m, s_1) read transposed.

a^(l) is passed as an address with its leading dimension (``layer_input``) and whether it holds examples as
rows:

- ``forward_units``:   rows lo…hi of z^(l+1) = Θ^(l) a^(l) + b^(l), then g on them;
- ``gradient_units``:  rows lo…hi of S_W := β S_W + δ^(l+1) a^(l)ᵀ, and S_b := β S_b + Σ_i δ^(l+1)_i
                       (β = 0 writes the sums, β = 1 adds them, β of momentum adds them into the velocity);
- ``propagate_units``: rows lo…hi of δ^(l) = (Θ^(l))ᵀ δ^(l+1) .* g′(z^(l)); below a layer of one unit the
                       outer product is made and scaled by g′ row by row (``units.propagate_one_unit``).
"""

from __future__ import annotations

from nncli.engines.compiled.cblas import NO_TRANS, TRANS, address, gemm, view
from nncli.engines.compiled.jit import fast
from nncli.engines.compiled.products import bias_sums
from nncli.engines.compiled.units import activate, add_bias, propagate_one_unit, scale_by_g_prime

NO_UNITS = -1  # ``forward_units``' code for a layer whose g is applied elsewhere (the output units)


@fast
def forward_units(theta, w_at, b_at, s_in, lo, hi, a_at, lda, a_rows, z, code):
    """Rows lo…hi of z = W a + b (z is (s_{l+1}, m)), then a = g(z) on them for hidden code ``code`` (none
    for ``NO_UNITS``); W starts at θ[w_at] (s_{l+1}, s_in), b at θ[b_at]."""
    m = z.shape[1]
    gemm(NO_TRANS, TRANS if a_rows else NO_TRANS, hi - lo, m, s_in, address(theta, w_at + lo * s_in), s_in,
         a_at, lda, 0.0, z[lo:hi], m)  # fmt: skip
    add_bias(z[lo:hi], theta[b_at + lo : b_at + hi])
    if code != NO_UNITS:
        activate(z[lo:hi], code)


@fast
def gradient_units(delta, lo, hi, s_in, a_at, lda, a_rows, beta, sums, w_at, b_at):
    """Rows lo…hi of the weights' sums at sums[w_at] (s_{l+1}, s_in) := β · them + δ aᵀ, and the biases'
    at sums[b_at] := β · them + Σ_i δ_i; δ is (s_{l+1}, m)."""
    m = delta.shape[1]
    gemm(NO_TRANS, NO_TRANS if a_rows else TRANS, hi - lo, s_in, m, address(delta, lo * m), m, a_at, lda,
         beta, sums[w_at + lo * s_in : w_at + hi * s_in], s_in)  # fmt: skip
    bias_sums(delta[lo:hi], sums[b_at + lo : b_at + hi], beta)


@fast
def propagate_units(theta, w_at, s_in, lo, hi, delta, below, a, code):
    """Rows lo…hi of δ^(l) = Wᵀ δ^(l+1) .* g′(z^(l)) into ``below`` (s_in, m), from δ^(l+1) ``delta``
    (s_{l+1}, m), a^(l) = g(z^(l)) ``a`` (s_in, m) and W at θ[w_at] (s_{l+1}, s_in)."""
    s_out, m = delta.shape
    if s_out == 1:
        propagate_one_unit(theta[w_at + lo : w_at + hi], delta[0], below[lo:hi], a[lo:hi], code)
        return
    gemm(TRANS, NO_TRANS, hi - lo, m, s_out, address(theta, w_at + lo), s_in, delta.ctypes.data, m, 0.0,
         below[lo:hi], m)  # fmt: skip
    scale_by_g_prime(below[lo:hi], a[lo:hi], code)


@fast
def layer_input(level, x_at, n, work, at, s_in, m):
    """(address, leading dimension) of layer ``level``'s input a^(level+1): the batch's rows of X (m, n) at
    ``x_at`` for the first layer, else a^(l) (s_in, m) at work[at]."""
    if level == 0:
        return x_at, n
    return view(work, at, s_in, m).ctypes.data, m

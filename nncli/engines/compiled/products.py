"""The products of a step, compiled as loops, for steps too small to pay for BLAS's calls; and the
gathering of a batch's rows. Shapes: a^(l) is (m, s_l), W = Θ^(l) without its bias column is
(s_{l+1}, s_l), δ^(l+1) is (m, s_{l+1}).

- forward:   z^(l+1)_ij = b_j + Σ_k a^(l)_ik W_jk;
- gradient:  Δ^(l)_jk = Σ_i δ^(l+1)_ij a^(l)_ik and Σ_i δ^(l+1)_ij for the bias;
- propagate: (Θ^(l))ᵀ δ^(l+1), Σ_j δ^(l+1)_ij W_jk, before the .* g′.

Every loop's innermost index runs along memory, so the compiler vectorizes it.
"""

from __future__ import annotations

from nncli.engines.compiled.jit import fast


@fast
def forward(a, W, b, z):
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


@fast
def gradient(delta, a, grad_W, grad_b):
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


@fast
def propagate(delta, W, below):
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


@fast
def gather_rows(X, rows, out):
    """out[i] = X[rows[i]], four rows at a time: four streams from memory in flight instead of one."""
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
        for k in range(X.shape[1]):  # a loop, not out[i, :] = X[…]: its shape check costs a compile
            out[i, k] = X[rows[i], k]
        i += 1


@fast
def gather_columns(Y, rows, out):
    """out[:, i] = Y[rows[i]]: the batch's targets as columns, one per example."""
    for i in range(rows.size):
        for k in range(Y.shape[1]):
            out[k, i] = Y[rows[i], k]


@fast
def bias_sums(delta, S_b, beta):
    """S_b := β S_b + Σ_i δ_i for δ (units, m), examples as columns: the bias's gradient sums, added into
    S_b (β = 1), written over it (β = 0), or added into momentum's velocity."""
    for j in range(delta.shape[0]):
        total = delta.dtype.type(0.0)
        for i in range(delta.shape[1]):
            total += delta[j, i]
        S_b[j] = beta * S_b[j] + total

"""The image layers' data movement, compiled: unrolling windows into columns (im2col) and folding them
back, moving a batch between examples-as-rows and one wide matrix, and max pooling. They run on the
calling thread: the products between them use BLAS's threads, which keep spinning for a while after each
call and would slow any threads of numba's started meanwhile.

Shapes. A batch of m images (C, H, W) travels as rows a (m, C·H·W). A convolution with F kernels
(F, C, kh, kw), stride s and a zero border (top, left) has P = Ho·Wo output positions per example, and
its whole batch becomes one product, the batch side by side:

    columns (C·kh·kw, m·P):  columns[(c·kh + i)·kw + j, e·P + y·Wo + x] = a_pad[e, c, s·y + i, s·x + j]
    z_T = W_mat columns      (F, m·P), W_mat = W reshaped (F, C·kh·kw)

so that the forward pass, the kernels' gradient δ_T columnsᵀ (every position's share summed by the
product: the tied weights) and the error passed down W_matᵀ δ_T are each one large product for BLAS.
"""

from __future__ import annotations

from nncli.engines.compiled.jit import fast


@fast
def inside(j, stride, left, W, Wo):
    """[x0, x1): the output columns x whose input column s·x + j − left lies in 0 … W − 1."""
    x0 = max(0, -((j - left) // stride))
    x1 = min(Wo, (W - 1 - j + left) // stride + 1)
    return x0, max(x0, x1)


@fast
def unroll(a, C, H, W, kh, kw, stride, top, left, Ho, Wo, columns):
    """im2col: every window of every image of ``a`` (m, C·H·W) into ``columns`` (C·kh·kw, m·Ho·Wo);
    positions in the zero border read 0."""
    m = a.shape[0]
    P = Ho * Wo
    zero = a.dtype.type(0.0)
    for c in range(C):
        for i in range(kh):
            for j in range(kw):
                row = (c * kh + i) * kw + j
                x0, x1 = inside(j, stride, left, W, Wo)
                for e in range(m):
                    for y in range(Ho):
                        r = stride * y + i - top
                        out = e * P + y * Wo
                        if r < 0 or r >= H:
                            for x in range(Wo):
                                columns[row, out + x] = zero
                            continue
                        source = (c * H + r) * W + j - left
                        for x in range(x0):
                            columns[row, out + x] = zero
                        if stride == 1:  # a run of the image's row: a copy that vectorizes
                            for x in range(x0, x1):
                                columns[row, out + x] = a[e, source + x]
                        else:
                            for x in range(x0, x1):
                                columns[row, out + x] = a[e, source + stride * x]
                        for x in range(x1, Wo):
                            columns[row, out + x] = zero


@fast
def fold(shares, C, H, W, kh, kw, stride, top, left, Ho, Wo, below):
    """col2im: each window's share (C·kh·kw, m·Ho·Wo) added back onto the image it came from, ``below``
    (m, C·H·W), summed where windows overlap, in the window's row-major order; the border's shares
    dropped."""
    m = below.shape[0]
    P = Ho * Wo
    zero = below.dtype.type(0.0)
    for e in range(m):
        for k in range(below.shape[1]):
            below[e, k] = zero
    for c in range(C):
        for i in range(kh):
            for j in range(kw):
                row = (c * kh + i) * kw + j
                x0, x1 = inside(j, stride, left, W, Wo)
                for e in range(m):
                    for y in range(Ho):
                        r = stride * y + i - top
                        if r < 0 or r >= H:
                            continue
                        out = e * P + y * Wo
                        target = (c * H + r) * W + j - left
                        if stride == 1:
                            for x in range(x0, x1):
                                below[e, target + x] += shares[row, out + x]
                        else:
                            for x in range(x0, x1):
                                below[e, target + stride * x] += shares[row, out + x]


@fast
def to_rows(wide, b, rows):
    """``rows`` (m, F·P) from ``wide`` (F, m·P), adding b (F,): the batch back to one example a row."""
    m = rows.shape[0]
    F = wide.shape[0]
    P = wide.shape[1] // m
    for e in range(m):
        for f in range(F):
            bias = b[f]
            for p in range(P):
                rows[e, f * P + p] = wide[f, e * P + p] + bias


@fast
def to_wide(rows, wide):
    """``wide`` (F, m·P) from ``rows`` (m, F·P): the batch side by side, one row per kernel."""
    m = rows.shape[0]
    F = wide.shape[0]
    P = wide.shape[1] // m
    for e in range(m):
        for f in range(F):
            for p in range(P):
                wide[f, e * P + p] = rows[e, f * P + p]


@fast
def max_pool(a, C, H, W, size, stride, Ho, Wo, z, where):
    """z (m, C·Ho·Wo) = each size × size window's maximum, and ``where`` its row-major index i·size + j
    in the window, the first on ties (a nan is never the maximum, as NumPy's ``greater``)."""
    if size == 2:
        max_pool_2x2(a, C, H, W, stride, Ho, Wo, z, where)
        return
    m = a.shape[0]
    for e in range(m):
        for c in range(C):
            for y in range(Ho):
                for x in range(Wo):
                    corner = (c * H + stride * y) * W + stride * x
                    best = a[e, corner]
                    index = 0
                    for i in range(size):
                        for j in range(size):
                            value = a[e, corner + i * W + j]
                            if value > best:
                                best = value
                                index = i * size + j
                    out = (c * Ho + y) * Wo + x
                    z[e, out] = best
                    where[e, out] = index


@fast
def max_pool_2x2(a, C, H, W, stride, Ho, Wo, z, where):
    """``max_pool`` of 2 × 2 windows, the common case: the four values of each compared in row-major order
    without a loop over the window (`docs/performance.md` has the figure)."""
    m = a.shape[0]
    for e in range(m):
        for c in range(C):
            for y in range(Ho):
                top = (c * H + stride * y) * W
                out = (c * Ho + y) * Wo
                for x in range(Wo):
                    corner = top + stride * x
                    best, index = a[e, corner], 0
                    value = a[e, corner + 1]
                    if value > best:
                        best, index = value, 1
                    value = a[e, corner + W]
                    if value > best:
                        best, index = value, 2
                    value = a[e, corner + W + 1]
                    if value > best:
                        best, index = value, 3
                    z[e, out + x] = best
                    where[e, out + x] = index


@fast
def max_unpool(delta, where, C, H, W, size, stride, Ho, Wo, below):
    """∂loss/∂a (m, C·H·W): each window's δ added at its maximum (``where``), 0 elsewhere."""
    m = below.shape[0]
    zero = below.dtype.type(0.0)
    for e in range(m):
        for k in range(below.shape[1]):
            below[e, k] = zero
        for c in range(C):
            for y in range(Ho):
                for x in range(Wo):
                    out = (c * Ho + y) * Wo + x
                    i, j = divmod(where[e, out], size)
                    below[e, (c * H + stride * y + i) * W + stride * x + j] += delta[e, out]

"""Means and sums of squared deviations merged from parts (Chan, Golub and LeVeque's pairwise update), so
that statistics gathered chunk by chunk or partition by partition keep their digits: for parts a and b
with n rows, means x̄ and M2 = Σ (x − x̄)²,

    n = n_a + n_b,  δ = x̄_b − x̄_a,  x̄ = x̄_a + δ·n_b/n,  M2 = M2_a + M2_b + δ²·n_a·n_b/n.

Works for numbers and for arrays of column statistics alike."""

from __future__ import annotations


def merged(count_a, mean_a, squares_a, count_b, mean_b, squares_b):
    """(n, x̄, M2) of two parts together; a part of 0 rows leaves the other as it is."""
    if count_a == 0:
        return count_b, mean_b, squares_b
    if count_b == 0:
        return count_a, mean_a, squares_a
    count = count_a + count_b
    shift = mean_b - mean_a
    return (
        count,
        mean_a + shift * count_b / count,
        squares_a + squares_b + shift * shift * count_a * count_b / count,
    )

"""Layer types of the engine. A layer maps a^(l) to z^(l+1) and, going back, turns δ^(l+1) into the sums
that make up its gradient and into the error it passes on.

The interface a layer offers the network (so that a new layer type — for instance one whose units share
weights — slots in without touching backpropagation):

- ``param_shapes`` and ``regularized``: the shapes of its parameter arrays, in a fixed order, and whether
  the L2 term λ/(2m)·Σ Θ² covers each (never a bias);
- ``bind(arrays)``: the network hands the layer views into its one flat parameter vector θ;
- ``forward(a)`` / ``forward_into(a, out)``: z^(l+1) from a^(l), (m, s_l) -> (m, s_{l+1});
- ``gradient_sums(delta, a)`` / ``gradient_sums_into(delta, a, outs, ones)``: per parameter, Σ over the m
  examples of ∂loss/∂param (the lecture's Δ);
- ``propagate(delta)`` / ``propagate_into(delta, out)``: (Θ^(l))ᵀ δ^(l+1), in rows: (m, s_{l+1}) -> (m, s_l),
  before the .* g′(z^(l)).

The ``_into`` forms write into preallocated arrays for the training loop; the plain forms allocate. Gradients
are sums over examples, not means, so that sums from separate partitions of a batch can be added.
"""

from __future__ import annotations

import numpy as np


class Dense:
    """A fully connected layer: z^(l+1) = a^(l) Θ^(l)ᵀ + b^(l), with W = Θ^(l) minus its bias column.

    W has shape (s_{l+1}, s_l) and b has shape (s_{l+1},).
    """

    regularized = (True, False)

    def __init__(self, s_in: int, s_out: int) -> None:
        self.param_shapes = ((s_out, s_in), (s_out,))
        self.W = self.b = None

    def bind(self, arrays: list[np.ndarray]) -> None:
        self.W, self.b = arrays

    @property
    def params(self) -> list[np.ndarray]:
        return [self.W, self.b]

    @property
    def sizes(self) -> tuple[int, int]:
        """(s_l, s_{l+1}): the number of units this layer reads and the number it feeds."""
        s_out, s_in = self.param_shapes[0]
        return s_in, s_out

    def forward(self, a: np.ndarray) -> np.ndarray:
        """z^(l+1) = a^(l) Wᵀ + b, shape (m, s_{l+1})."""
        z = a @ self.W.T
        z += self.b
        return z

    # The _into forms call np.dot, whose 2-D path reaches BLAS with less overhead than np.matmul's.

    def forward_into(self, a: np.ndarray, out: np.ndarray) -> None:
        np.dot(a, self.W.T, out=out)
        out += self.b

    def gradient_sums(self, delta: np.ndarray, a: np.ndarray) -> list[np.ndarray]:
        """Δ^(l) = Σ_i δ^(l+1) (a^(l))ᵀ = δᵀ a (the sum over i is the matrix product), and Σ_i δ^(l+1)."""
        return [delta.T @ a, delta.sum(axis=0)]

    def gradient_sums_into(
        self, delta: np.ndarray, a: np.ndarray, outs: list[np.ndarray], ones: np.ndarray
    ) -> None:
        """As ``gradient_sums``; ``ones`` (m,) lets BLAS do the sum over examples as 1ᵀ δ."""
        np.dot(delta.T, a, out=outs[0])
        if len(delta) == 1:  # one example: the sum is its row
            np.copyto(outs[1], delta[0])
        else:
            np.dot(ones, delta, out=outs[1])

    def propagate(self, delta: np.ndarray) -> np.ndarray:
        """(Θ^(l))ᵀ δ^(l+1) for every example at once: δ W, shape (m, s_l)."""
        return delta @ self.W

    def propagate_into(self, delta: np.ndarray, out: np.ndarray) -> None:
        if delta.shape[1] == 1:  # one unit above: an outer product, which broadcasting does faster
            np.multiply(delta, self.W, out=out)
        else:
            np.dot(delta, self.W, out=out)

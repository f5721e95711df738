"""Layer types of the engine. A layer maps a^(l) to z^(l+1) and, going back, turns δ^(l+1) into the sums
that make up its gradient and into the error it passes on.

The interface a layer offers the network (so that a new layer type — for instance one whose units share
weights — slots in without touching backpropagation):

- ``params``: the arrays the optimizer updates in place, in a fixed order;
- ``regularized``: for each of them, whether the L2 term λ/(2m)·Σ Θ² covers it (never the bias);
- ``forward(a)``: z^(l+1) from a^(l), shape (m, s_l) -> (m, s_{l+1});
- ``gradient_sums(delta, a)``: for each param, Σ over the m examples of ∂loss/∂param (the lecture's Δ);
- ``propagate(delta)``: (Θ^(l))ᵀ δ^(l+1), in rows: (m, s_{l+1}) -> (m, s_l), before the .* g′(z^(l)).

Gradients are returned as sums over examples, not means, so that the sums from separate partitions of a
batch can be added before dividing by m.
"""

from __future__ import annotations

import numpy as np


class Dense:
    """A fully connected layer: z^(l+1) = a^(l) Θ^(l)ᵀ + b^(l), with W = Θ^(l) minus its bias column.

    W has shape (s_{l+1}, s_l) and b has shape (s_{l+1},).
    """

    regularized = (True, False)

    def __init__(self, W: np.ndarray, b: np.ndarray) -> None:
        self.W = W
        self.b = b

    @property
    def params(self) -> list[np.ndarray]:
        return [self.W, self.b]

    @property
    def sizes(self) -> tuple[int, int]:
        """(s_l, s_{l+1}): the number of units this layer reads and the number it feeds."""
        s_out, s_in = self.W.shape
        return s_in, s_out

    def forward(self, a: np.ndarray) -> np.ndarray:
        """z^(l+1) = a^(l) Wᵀ + b, shape (m, s_{l+1})."""
        z = a @ self.W.T
        z += self.b
        return z

    def gradient_sums(self, delta: np.ndarray, a: np.ndarray) -> list[np.ndarray]:
        """Δ^(l) = Σ_i δ^(l+1) (a^(l))ᵀ = δᵀ a (the sum over i is the matrix product), and Σ_i δ^(l+1)."""
        return [delta.T @ a, delta.sum(axis=0)]

    def propagate(self, delta: np.ndarray) -> np.ndarray:
        """(Θ^(l))ᵀ δ^(l+1) for every example at once: δ W, shape (m, s_l)."""
        return delta @ self.W

"""The fully connected layer: every unit of a^(l+1) reads every value of a^(l) through its own weight.

Besides the ``Layer`` protocol's row forms, a dense layer has the training loop's forms
``forward_columns(a, out)`` (or ``product_columns(a, out)``, the same without the bias, for a caller that
adds it in a pass of its own), ``gradient_sums_columns(delta, a, outs, ones)`` and
``propagate_columns(delta, out)``, which compute the same into preallocated arrays with examples as columns:
a^(l) is (s_l, m), the lecture's layout of a batch, column i being a^(l) of example i. OpenBLAS runs some of
a mini-batch's products faster in that layout (``docs/performance.md``).
"""

from __future__ import annotations

import math

import numpy as np

from nncli.model.activations import Activation
from nncli.model.layers.base import Layer, activation_of, known_keys, whole_number


class Dense(Layer):
    """A fully connected layer: z^(l+1) = a^(l) Θ^(l)ᵀ + b^(l), with W = Θ^(l) minus its bias column.

    W has shape (s_{l+1}, s_l) and b has shape (s_{l+1},).
    """

    kind = "dense"
    regularized = (True, False)

    def __init__(self, s_in: int, s_out: int, activation: Activation | None = None) -> None:
        self.in_shape, self.out_shape = (s_in,), (s_out,)
        self.param_shapes = ((s_out, s_in), (s_out,))
        self.activation = activation
        self.W = self.b = self.b_column = None

    def bind(self, arrays: list[np.ndarray]) -> None:
        self.W, self.b = arrays
        self.b_column = self.b[:, np.newaxis]  # b as (s_{l+1}, 1), to add to every column

    @property
    def params(self) -> list[np.ndarray]:
        return [self.W, self.b]

    @property
    def fans(self) -> tuple[int, int]:
        """(fan-in, fan-out) = (s_l, s_{l+1})."""
        return self.sizes

    def spec(self) -> dict:
        spec = {"type": self.kind, "units": self.sizes[1]}
        if self.activation is not None:
            spec["activation"] = self.activation.name
        return spec

    @classmethod
    def from_spec(
        cls, spec: dict, in_shape: tuple[int, ...], activation: Activation | None, where: str
    ) -> Dense:
        """``{type: dense, units: N, activation: …}``: a dense layer of N units reading every value of
        ``in_shape`` (an image flattened, as PyTorch's ``flatten`` orders it); ``activation`` is its g unless
        the spec names one."""
        known_keys(spec, {"type", "units", "activation"}, where)
        units = whole_number(spec, "units", None, where)
        return cls(math.prod(in_shape), units, activation_of(spec, activation, where))

    @property
    def multiply_adds(self) -> int:
        """s_l · s_{l+1}: one per weight."""
        return self.sizes[0] * self.sizes[1]

    def forward(self, a: np.ndarray) -> np.ndarray:
        """z^(l+1) = a^(l) Wᵀ + b, shape (m, s_{l+1})."""
        z = a @ self.W.T
        z += self.b
        return z

    def gradient_sums(self, delta: np.ndarray, a: np.ndarray) -> list[np.ndarray]:
        """Δ^(l) = Σ_i δ^(l+1) (a^(l))ᵀ = δᵀ a (the sum over i is the matrix product), and Σ_i δ^(l+1)."""
        return [delta.T @ a, delta.sum(axis=0)]

    def propagate(self, delta: np.ndarray, a: np.ndarray | None = None) -> np.ndarray:
        """(Θ^(l))ᵀ δ^(l+1) for every example at once: δ W, shape (m, s_l)."""
        return delta @ self.W

    # The training loop's forms, examples as columns. np.matmul, not np.dot: np.dot runs δ aᵀ (a
    # transposed view) slower.

    def forward_columns(self, a: np.ndarray, out: np.ndarray) -> None:
        """z^(l+1) = W a^(l) + b, (s_l, m) -> (s_{l+1}, m), into out."""
        self.product_columns(a, out)
        out += self.b_column

    def product_columns(self, a: np.ndarray, out: np.ndarray) -> None:
        """W a^(l), (s_l, m) -> (s_{l+1}, m), into out: z^(l+1) before its bias b is added."""
        np.matmul(self.W, a, out=out)

    def gradient_sums_columns(
        self, delta: np.ndarray, a: np.ndarray, outs: list[np.ndarray], ones: np.ndarray
    ) -> None:
        """Δ^(l) = δ^(l+1) (a^(l))ᵀ and Σ_i δ^(l+1)_i, from δ (s_{l+1}, m) and a (s_l, m), into outs;
        ``ones`` (m,) lets BLAS do the sum over examples as δ 1."""
        np.matmul(delta, a.T, out=outs[0])
        if delta.shape[1] == 1:  # one example: the sum is its column
            np.copyto(outs[1], delta[:, 0])
        else:
            np.dot(delta, ones, out=outs[1])

    def propagate_columns(self, delta: np.ndarray, out: np.ndarray) -> None:
        """(Θ^(l))ᵀ δ^(l+1) = Wᵀ δ, (s_{l+1}, m) -> (s_l, m), into out."""
        if delta.shape[0] == 1:  # one unit above: an outer product, which broadcasting does faster
            np.multiply(self.W.T, delta, out=out)
        else:
            np.matmul(self.W.T, delta, out=out)

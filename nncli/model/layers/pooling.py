"""Pooling layers and flatten: layers without parameters or units of their own.

Pooling summarizes each size × size window of every channel, stepping by ``stride`` (= size unless given):
an input (C, H, W) gives (C, Ho, Wo), Ho = (H − size) // stride + 1, windows that do not fit being left
out (as PyTorch's ``MaxPool2d``). Both are computed as size² strided slices of the images, one per
position (i, j) inside the window:

    max pooling:      z[c, y, x] = max_{i,j} a[c, s·y + i, s·x + j]
                      ∂loss/∂a[c, s·y + i, s·x + j] += δ[c, y, x] for the (i, j) of the window's maximum,
                      the first in row-major order on ties
    average pooling:  z[c, y, x] = (1/size²) Σ_{i,j} a[c, s·y + i, s·x + j]
                      ∂loss/∂a[c, s·y + i, s·x + j] += δ[c, y, x] / size² for every (i, j)

Flatten reads a (C, H, W) image as C·H·W values; since activations travel as flat rows already, it moves
no data. It is implicit before the first dense layer after an image layer.
"""

from __future__ import annotations

import math

import numpy as np

from nncli.errors import NncliError
from nncli.model.activations import Activation
from nncli.model.layers.base import Layer, described, image_shape, known_keys, whole_number


class Pooling(Layer):
    """The windows' geometry, shared by max and average pooling."""

    def __init__(self, in_shape: tuple[int, int, int], size: int, stride: int | None = None) -> None:
        C, H, W = in_shape
        self.in_shape, self.size = in_shape, size
        self.stride = size if stride is None else stride
        self.out_hw = ((H - size) // self.stride + 1, (W - size) // self.stride + 1)
        self.out_shape = (C, *self.out_hw)

    @classmethod
    def from_spec(cls, spec: dict, in_shape: tuple[int, ...], activation: Activation | None, where: str):
        """``{type: maxpool | avgpool, size: 2, stride: null}`` reading ``in_shape`` = (C, H, W); pooling
        has no units, so no activation."""
        known_keys(spec, {"type", "size", "stride"}, where)
        size = whole_number(spec, "size", 2, where)
        stride = spec.get("stride")
        if stride is not None:
            stride = whole_number(spec, "stride", None, where)
        C, H, W = image_shape(in_shape, where)
        if size > H or size > W:
            raise NncliError(
                f"{where}'s window {size}×{size} is larger than its input {described(in_shape)}, leaving no "
                f"pixels; use a smaller size or pool fewer times"
            )
        return cls((C, H, W), size, stride)

    def spec(self) -> dict:
        return {"type": self.kind, "size": self.size, "stride": self.stride}

    @property
    def fans(self) -> tuple[int, int]:
        return self.size * self.size, 1

    def images(self, a: np.ndarray) -> np.ndarray:
        return a.reshape(len(a), *self.in_shape)

    def slices(self, images: np.ndarray):
        """(i, j, the view (m, C, Ho, Wo) of the values at position (i, j) of every window)."""
        s = self.stride
        Ho, Wo = self.out_hw
        for i in range(self.size):
            for j in range(self.size):
                yield i, j, images[:, :, i : i + s * (Ho - 1) + 1 : s, j : j + s * (Wo - 1) + 1 : s]

    def combined(self, a: np.ndarray, combine: np.ufunc) -> np.ndarray:
        """``combine`` (np.maximum, np.add) folded over every window's values, (m, C, Ho, Wo)."""
        windows = self.slices(self.images(a))
        _, _, first = next(windows)
        z = first.copy()
        for _, _, values in windows:
            combine(z, values, out=z)
        return z


class MaxPool(Pooling):
    """z = the maximum of each window; δ goes back to the window's first maximum."""

    kind = "maxpool"

    def forward(self, a: np.ndarray) -> np.ndarray:
        return self.combined(a, np.maximum).reshape(len(a), -1)

    def arg_max(self, a: np.ndarray) -> np.ndarray:
        """For every window, the row-major index i·size + j of its first maximum, (m, C, Ho, Wo)."""
        windows = self.slices(self.images(a))
        _, _, first = next(windows)
        best = first.copy()
        index = np.zeros(best.shape, dtype=np.intp)
        larger = np.empty(best.shape, dtype=bool)
        for i, j, values in windows:
            np.greater(values, best, out=larger)  # strictly: the first maximum wins a tie
            np.copyto(best, values, where=larger)
            np.copyto(index, i * self.size + j, where=larger)
        return index

    def propagate(self, delta: np.ndarray, a: np.ndarray) -> np.ndarray:
        """δ of each window added to the input at its arg-max, (m, C·Ho·Wo) -> (m, C·H·W)."""
        index = self.arg_max(a)
        deltas = delta.reshape(index.shape)
        below = np.zeros((len(a), *self.in_shape), dtype=delta.dtype)
        chosen = np.empty(index.shape, dtype=bool)
        tiled = self.stride >= self.size  # each input value in one window at most: δ is copied, not added
        for i, j, target in self.slices(below):
            np.equal(index, i * self.size + j, out=chosen)
            if tiled:
                np.copyto(target, deltas, where=chosen)
            else:
                target += np.where(chosen, deltas, 0.0)
        return below.reshape(len(a), -1)


class AvgPool(Pooling):
    """z = the mean of each window; δ is spread evenly over the window."""

    kind = "avgpool"

    def forward(self, a: np.ndarray) -> np.ndarray:
        z = self.combined(a, np.add)
        z *= 1.0 / (self.size * self.size)
        return z.reshape(len(a), -1)

    def propagate(self, delta: np.ndarray, a: np.ndarray | None = None) -> np.ndarray:
        """δ / size² added to every value of each window, (m, C·Ho·Wo) -> (m, C·H·W)."""
        m = len(delta)
        share = delta.reshape(m, *self.out_shape) * (1.0 / (self.size * self.size))
        below = np.zeros((m, *self.in_shape), dtype=delta.dtype)
        for _, _, target in self.slices(below):
            target += share
        return below.reshape(m, -1)


class Flatten(Layer):
    """(C, H, W) read as C·H·W values in row-major order: the identity on flat rows."""

    kind = "flatten"

    def __init__(self, in_shape: tuple[int, ...]) -> None:
        self.in_shape, self.out_shape = in_shape, (math.prod(in_shape),)

    @classmethod
    def from_spec(cls, spec: dict, in_shape: tuple[int, ...], activation: Activation | None, where: str):
        known_keys(spec, {"type"}, where)
        return cls(in_shape)

    def spec(self) -> dict:
        return {"type": self.kind}

    @property
    def fans(self) -> tuple[int, int]:
        return 1, 1

    def forward(self, a: np.ndarray) -> np.ndarray:
        return a

    def propagate(self, delta: np.ndarray, a: np.ndarray | None = None) -> np.ndarray:
        return delta

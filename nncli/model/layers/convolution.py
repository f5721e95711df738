"""The convolutional layer: parameter sharing, the lecture's last section.

Each unit of a feature map looks at one kh × kw window of the input image, and every unit of the map uses
the same weights — one kernel per map, tied together wherever the window sits. For an input a of shape
(C, H, W) and F kernels W of shape (F, C, kh, kw) (PyTorch's layout), the layer computes the
cross-correlation (as PyTorch's ``Conv2d``, no kernel flip)

    z[f, y, x] = Σ_c Σ_i Σ_j W[f, c, i, j] · a_pad[c, s·y + i, s·x + j] + b[f]

of shape (F, Ho, Wo), Ho = (H + padding − kh) // s + 1, with stride s and ``valid`` (no) or ``same``
padding (zeros around the image so that Ho = ⌈H / s⌉, the extra row or column at the bottom and right).

Unrolling the windows (im2col) turns it into one matrix product per example: the columns matrix
A (C·kh·kw, Ho·Wo) holds the window of output position p in column p, and

    z = W_mat A + b,                 W_mat = W reshaped to (F, C·kh·kw)

Backpropagation, for δ = ∂loss/∂z of shape (F, Ho·Wo) per example:

    ∂loss/∂W = Σ_i Σ_p δ_i[:, p] A_i[:, p]ᵀ = Σ_i δ_i A_iᵀ    the tied weights: a weight's gradient is the
                                                             sum over every position that uses it
    ∂loss/∂b = Σ_i Σ_p δ_i[:, p]
    ∂loss/∂a = the columns W_matᵀ δ_i (C·kh·kw, Ho·Wo), each scattered back onto the window it came from
               and summed where windows overlap (kh·kw strided adds)

The L2 term λ/(2m)·Σ W² covers the kernels, never the biases.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from nncli.errors import NncliError, shown
from nncli.model.activations import Activation
from nncli.model.layers.base import (
    Layer,
    activation_of,
    described,
    image_shape,
    known_keys,
    pair,
    whole_number,
)

PADDINGS = ("valid", "same")


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """(before, after): the zeros around one axis of ``size`` that give ⌈size / stride⌉ outputs, the odd
    one after (TensorFlow's and, at stride 1, PyTorch's ``same``)."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


class Convolution(Layer):
    """F kernels (F, C, kh, kw) slid over a (C, H, W) image with stride s: z of shape (F, Ho, Wo)."""

    kind = "conv"
    regularized = (True, False)

    def __init__(
        self,
        in_shape: tuple[int, int, int],
        filters: int,
        kernel: tuple[int, int],
        stride: int = 1,
        padding: str = "valid",
        activation: Activation | None = None,
    ) -> None:
        C, H, W = in_shape
        kh, kw = kernel
        self.in_shape, self.filters, self.kernel, self.stride, self.padding = (
            in_shape,
            filters,
            kernel,
            stride,
            padding,
        )
        if padding == "same":
            self.pad_h, self.pad_w = same_padding(H, kh, stride), same_padding(W, kw, stride)
        else:
            self.pad_h = self.pad_w = (0, 0)
        self.padded = (H + sum(self.pad_h), W + sum(self.pad_w))
        self.out_hw = ((self.padded[0] - kh) // stride + 1, (self.padded[1] - kw) // stride + 1)
        self.out_shape = (filters, *self.out_hw)
        self.param_shapes = ((filters, C, kh, kw), (filters,))
        self.workspace = C * kh * kw * self.out_hw[0] * self.out_hw[1] + C * self.padded[0] * self.padded[1]
        self.activation = activation
        self.W = self.b = self.W_matrix = None
        self._padded_inputs: dict[int, np.ndarray] = {}  # per batch size m: the zero-bordered images
        self._columns: dict[int, np.ndarray] = {}  # per batch size m: the im2col buffer

    @classmethod
    def from_spec(cls, spec: dict, in_shape: tuple[int, ...], activation: Activation | None, where: str):
        """``{type: conv, filters: F, kernel: k or [kh, kw], stride: 1, padding: valid | same,
        activation: …}`` reading ``in_shape`` = (C, H, W)."""
        known_keys(spec, {"type", "filters", "kernel", "stride", "padding", "activation"}, where)
        filters = whole_number(spec, "filters", None, where)
        kernel = pair(spec, "kernel", None, where)
        stride = whole_number(spec, "stride", 1, where)
        padding = spec.get("padding", "valid")
        if padding not in PADDINGS:
            raise NncliError(f"{where} should have padding valid or same, got {shown(padding)}")
        C, H, W = image_shape(in_shape, where)
        if padding == "valid" and (kernel[0] > H or kernel[1] > W):
            raise NncliError(
                f"{where}'s kernel {described(kernel)} is larger than its input {described(in_shape)}; "
                f"use a smaller kernel or padding: same"
            )
        return cls((C, H, W), filters, kernel, stride, padding, activation_of(spec, activation, where))

    def spec(self) -> dict:
        spec = {
            "type": self.kind,
            "filters": self.filters,
            "kernel": list(self.kernel),
            "stride": self.stride,
            "padding": self.padding,
        }
        if self.activation is not None:
            spec["activation"] = self.activation.name
        return spec

    @property
    def fans(self) -> tuple[int, int]:
        """(C·kh·kw, F·kh·kw): the inputs one unit reads, and the units one input value feeds per window
        position."""
        C = self.in_shape[0]
        kh, kw = self.kernel
        return C * kh * kw, self.filters * kh * kw

    @property
    def multiply_adds(self) -> int:
        """F · C·kh·kw · Ho·Wo: every kernel's weights once per output position (the tied weights' work)."""
        return self.filters * self.fans[0] * self.out_hw[0] * self.out_hw[1]

    def bind(self, arrays: list[np.ndarray]) -> None:
        self.W, self.b = arrays
        self.W_matrix = self.W.reshape(self.filters, -1)  # W_mat (F, C·kh·kw), a view

    @property
    def params(self) -> list[np.ndarray]:
        return [self.W, self.b]

    # ----------------------------------------------------------------- im2col

    def windows(self, a: np.ndarray) -> np.ndarray:
        """Every window of every image, as a view (m, C, kh, kw, Ho, Wo) into the zero-bordered images."""
        m = len(a)
        C, H, W = self.in_shape
        images = a.reshape(m, C, H, W)
        if self.padded != (H, W):
            padded = self._padded_inputs.get(m)
            if padded is None or padded.dtype != a.dtype:
                padded = self._padded_inputs[m] = np.zeros((m, C, *self.padded), dtype=a.dtype)
            top, left = self.pad_h[0], self.pad_w[0]
            padded[:, :, top : top + H, left : left + W] = images
            images = padded
        s = self.stride
        view = sliding_window_view(images, self.kernel, axis=(2, 3))[:, :, ::s, ::s]  # (m, C, Ho, Wo, kh, kw)
        return view.transpose(0, 1, 4, 5, 2, 3)

    def columns(self, a: np.ndarray) -> np.ndarray:
        """im2col: A of every example, (m, C·kh·kw, Ho·Wo), in a buffer made once per batch size."""
        m = len(a)
        buffer = self._columns.get(m)
        if buffer is None or buffer.dtype != a.dtype:
            C = self.in_shape[0]
            buffer = self._columns[m] = np.empty((m, C, *self.kernel, *self.out_hw), dtype=a.dtype)
        np.copyto(buffer, self.windows(a))
        return buffer.reshape(m, -1, self.out_hw[0] * self.out_hw[1])

    # ----------------------------------------------------------------- the Layer protocol

    def forward(self, a: np.ndarray) -> np.ndarray:
        """z = W_mat A + b for every example: (m, C·H·W) -> (m, F·Ho·Wo)."""
        z = np.matmul(self.W_matrix, self.columns(a))  # (m, F, Ho·Wo)
        z += self.b[:, np.newaxis]
        return z.reshape(len(a), -1)

    def gradient_sums(self, delta: np.ndarray, a: np.ndarray) -> list[np.ndarray]:
        """Σ_i δ_i A_iᵀ as (F, C, kh, kw), each weight's gradient summed over its positions and the
        examples; and Σ_i Σ_p δ_i[:, p] (F,)."""
        m = len(a)
        deltas = delta.reshape(m, self.filters, -1)  # (m, F, Ho·Wo)
        columns = self.columns(a)  # (m, C·kh·kw, Ho·Wo)
        # one product per example, δ_i A_iᵀ (F, C·kh·kw), then the sum over examples: BLAS reads A_iᵀ as
        # a transposed view, where a single product over all examples would first copy δ and A
        per_example = np.matmul(deltas, columns.transpose(0, 2, 1))
        return [per_example.sum(axis=0).reshape(self.param_shapes[0]), deltas.sum(axis=(0, 2))]

    def propagate(self, delta: np.ndarray, a: np.ndarray | None = None) -> np.ndarray:
        """∂loss/∂a: each window's share W_matᵀ δ_i scattered back onto the window and summed where
        windows overlap, (m, F·Ho·Wo) -> (m, C·H·W)."""
        m = len(delta)
        C, H, W = self.in_shape
        kh, kw = self.kernel
        Ho, Wo = self.out_hw
        shares = np.matmul(self.W_matrix.T, delta.reshape(m, self.filters, -1))  # (m, C·kh·kw, Ho·Wo)
        shares = shares.reshape(m, C, kh, kw, Ho, Wo)
        below = np.zeros((m, C, *self.padded), dtype=delta.dtype)
        s = self.stride
        for i in range(kh):
            for j in range(kw):
                below[:, :, i : i + s * (Ho - 1) + 1 : s, j : j + s * (Wo - 1) + 1 : s] += shares[:, :, i, j]
        top, left = self.pad_h[0], self.pad_w[0]
        return np.ascontiguousarray(below[:, :, top : top + H, left : left + W]).reshape(m, -1)

"""The ``compiled-images`` path: steps of networks with image layers, their convolutions as three large
products over the whole batch and their max pooling compiled (``nncli.engines.compiled.images``).

The step is ``LayerStep``'s — ``Network.backprop`` through the ``Layer`` protocol — with other forms for
some layers: ``UnrolledConvolution`` for a convolution, ``CompiledMaxPool`` for max pooling, the layer's
own forms for every other layer. A form object serves one batch size and keeps its buffers, and what its
forward pass made (the unrolled windows, the maxima's places) for the backward pass of the same input.
"""

from __future__ import annotations

import numpy as np

from nncli.engines.compiled import images
from nncli.engines.numpy_engine import LayerStep, even_spans
from nncli.model.layers import Convolution, MaxPool


class UnrolledConvolution:
    """A ``Convolution``'s forms for batches of m: columns = im2col of the batch (C·kh·kw, m·P), then
    z_T = W_mat columns, ΣΔ = δ_T columnsᵀ and the error passed down = fold(W_matᵀ δ_T), each one product."""

    def __init__(self, layer: Convolution, m: int, dtype) -> None:
        C, H, W = layer.in_shape
        kh, kw = layer.kernel
        Ho, Wo = layer.out_hw
        self.layer = layer
        self.geometry = (C, H, W, kh, kw, layer.stride, layer.pad_h[0], layer.pad_w[0], Ho, Wo)
        self.columns = np.empty((C * kh * kw, m * Ho * Wo), dtype)
        self.wide = np.empty((layer.filters, m * Ho * Wo), dtype)  # z_T going forward, δ_T going back
        self.shares = np.empty_like(self.columns)
        self.z = np.empty((m, layer.sizes[1]), dtype)
        self.below = np.empty((m, layer.sizes[0]), dtype)
        self.unrolled = self.widened = None  # the input whose columns, and the δ whose δ_T, are held

    def forward(self, a: np.ndarray) -> np.ndarray:
        images.unroll(np.ascontiguousarray(a), *self.geometry, self.columns)
        self.unrolled = a
        np.matmul(self.layer.W_matrix, self.columns, out=self.wide)
        self.widened = None
        images.to_rows(self.wide, self.layer.b, self.z)
        return self.z

    def gradient_sums(self, delta: np.ndarray, a: np.ndarray) -> list[np.ndarray]:
        self._unroll(a)
        self._widen(delta)
        grad_W = np.matmul(self.wide, self.columns.T)  # (F, C·kh·kw): every position's share summed
        return [grad_W.reshape(self.layer.param_shapes[0]), self.wide.sum(axis=1)]

    def propagate(self, delta: np.ndarray, a: np.ndarray | None = None) -> np.ndarray:
        self._widen(delta)
        np.matmul(self.layer.W_matrix.T, self.wide, out=self.shares)
        images.fold(self.shares, *self.geometry, self.below)
        return self.below

    def _unroll(self, a: np.ndarray) -> None:
        """The columns of ``a``, unless the last forward pass made them: within a step, a layer's input
        does not change between its forward and backward passes (across steps it may be the same buffer
        with new values, which is why the forward pass always unrolls)."""
        if a is not self.unrolled:
            images.unroll(np.ascontiguousarray(a), *self.geometry, self.columns)
            self.unrolled = a

    def _widen(self, delta: np.ndarray) -> None:
        if delta is not self.widened:
            images.to_wide(np.ascontiguousarray(delta), self.wide)
            self.widened = delta


class CompiledMaxPool:
    """A ``MaxPool``'s forms for batches of m: one pass finds each window's maximum and its place, and the
    error goes back to that place."""

    def __init__(self, layer: MaxPool, m: int, dtype) -> None:
        C, H, W = layer.in_shape
        Ho, Wo = layer.out_hw
        self.geometry = (C, H, W, layer.size, layer.stride, Ho, Wo)
        self.z = np.empty((m, layer.sizes[1]), dtype)
        self.where = np.empty((m, layer.sizes[1]), np.intp)
        self.below = np.empty((m, layer.sizes[0]), dtype)
        self.pooled = None  # the input whose maxima's places ``where`` holds

    def forward(self, a: np.ndarray) -> np.ndarray:
        images.max_pool(np.ascontiguousarray(a), *self.geometry, self.z, self.where)
        self.pooled = a
        return self.z

    def gradient_sums(self, delta: np.ndarray, a: np.ndarray) -> list[np.ndarray]:
        return []

    def propagate(self, delta: np.ndarray, a: np.ndarray) -> np.ndarray:
        if a is not self.pooled:
            self.forward(a)
        images.max_unpool(np.ascontiguousarray(delta), self.where, *self.geometry, self.below)
        return self.below


FORMS = {Convolution: UnrolledConvolution, MaxPool: CompiledMaxPool}


def serves(net) -> bool:
    """Whether the network has a layer this path has compiled forms for."""
    return any(type(layer) in FORMS for layer in net.layers)


# A step of at least this many multiply-adds in one product pass (m × ``Network.multiply_adds``) is cut
# into one chunk of examples per core, each chunk's forward and backward passes on a thread of its own with
# BLAS held to that thread; a smaller step would spend more on handing chunks to threads than it saves.
MIN_WORK_TO_SPLIT = 1 << 22


class ImageStep(LayerStep):
    """``LayerStep`` with the compiled forms of ``FORMS`` for the layers that have them. On more than one
    core, a step of ``MIN_WORK_TO_SPLIT`` multiply-adds or more is cut into as many chunks of examples, each
    propagated on its own thread with forms of its own; the chunks' sums are added in chunk order, so a
    step's result depends on the number of cores, never on the threads' timing."""

    def __init__(self, net, optimizer, lambda_: float, metric, m: int, shared, clip_norm, cores: int) -> None:
        super().__init__(net, optimizer, lambda_, metric, m, shared, clip_norm)
        split = cores > 1 and m > 1 and m * net.multiply_adds >= MIN_WORK_TO_SPLIT
        self.spans = even_spans(m, min(cores, m) if split else 1)
        self.forms = [self._forms(span.stop - span.start) for span in self.spans]
        self.pool = None
        if len(self.spans) > 1:
            shared.hold_blas_to_one_thread()
            self.pool = shared.pool()

    def _forms(self, rows: int) -> list:
        return [
            FORMS[type(layer)](layer, rows, self.net.dtype) if type(layer) in FORMS else layer
            for layer in self.net.layers
        ]

    def sums(self, X_batch: np.ndarray, Y_batch: np.ndarray, forms=None):
        chunk_sums = super().sums  # one chunk's (Σ loss, Σ ∂loss/∂Θ, the metric's sum)
        if self.pool is None:
            return chunk_sums(X_batch, Y_batch, self.forms[0])
        chunks = zip(self.spans, self.forms, strict=True)
        parts = [(X_batch[span], Y_batch[span], forms) for span, forms in chunks]
        futures = [self.pool.submit(chunk_sums, *part) for part in parts[1:]]
        results = [chunk_sums(*parts[0])] + [future.result() for future in futures]
        loss, grads, metric_sum = results[0]
        for part_loss, part_grads, part_metric in results[1:]:
            loss += part_loss
            metric_sum += part_metric
            grads = [a + b for a, b in zip(grads, part_grads, strict=True)]
        return loss, grads, metric_sum

"""The forward/backpropagation engine: ``Network``, h_Θ(x), J(Θ) and its exact gradient.

Rows are examples: X is (m, s_1), every a^(l) is (m, s_l), Y is (m, K). No loop runs over examples; the
lecture's accumulation Δ^(l) := Δ^(l) + δ^(l+1)(a^(l))ᵀ over i = 1..m is one matrix product per layer.

    J(Θ) = (1/m) Σ_i loss(h_Θ(x^(i)), y^(i)) + λ/(2m) Σ_l Σ (Θ^(l) without bias column)²
    D^(l) = (1/m) Δ^(l) + (λ/m) Θ^(l)        (bias column: (1/m) Σ_i δ^(l+1))

The gradient is the exact derivative of the J that is reported, hence (λ/m)·Θ.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from nncli.cores import blas_controller
from nncli.errors import NncliError, lookup
from nncli.model.activations import ACTIVATIONS, Activation
from nncli.model.initializers import INITIALIZERS, RELU_BIAS, initial_bias
from nncli.model.layers import Dense, Layer, build_layers, input_shape_of
from nncli.model.losses import OUTPUTS, OutputLoss

DTYPES = {"float64": np.float64, "float32": np.float32}


@dataclass
class GradientSums:
    """What one batch, or one partition of it, contributes to J and D before dividing by m.

    ``loss`` is Σ_i loss^(i); ``grads`` holds, for each parameter array in ``Network.params`` order,
    Σ_i ∂loss^(i)/∂param. Sums from disjoint partitions add up (``a + b``) to the sums of their union.
    """

    m: int
    loss: float
    grads: list[np.ndarray]

    def __add__(self, other: GradientSums) -> GradientSums:
        return GradientSums(
            self.m + other.m,
            self.loss + other.loss,
            [mine + theirs for mine, theirs in zip(self.grads, other.grads, strict=True)],
        )


class Network:
    """A network of layer sizes [s_1, …, s_L]: fully connected (``Network(sizes)``), or of any layers —
    convolution, pooling, dense — built from their specifications (``Network.from_layers``).

    Hidden units use ``activation`` (a key of ``ACTIVATIONS``); the output units and their loss are
    ``output`` (a key of ``OUTPUTS``). Weights come from ``initializer`` (a key of ``INITIALIZERS``,
    with ``init_scale`` as ε for ``uniform`` or σ for ``normal``), drawn from ``default_rng(seed)``.
    """

    def __init__(
        self,
        layer_sizes: list[int],
        activation: str = "sigmoid",
        output: str = "softmax",
        initializer: str = "xavier",
        seed: int | None = 0,
        dtype: type | str = np.float64,
        init_scale: float | None = None,
        relu_bias: float = RELU_BIAS,
    ) -> None:
        sizes = _check_layer_sizes(layer_sizes)
        specs = [{"type": "dense", "units": units} for units in sizes[1:-1]]
        self._build(
            (sizes[0],), specs, sizes[-1], activation, output, initializer, seed, dtype, init_scale, relu_bias
        )

    @classmethod
    def from_layers(
        cls,
        n_in: int | None = None,
        layers: list[dict] | None = None,
        n_out: int = 1,
        output: str = "softmax",
        activation: str = "sigmoid",
        initializer: str = "xavier",
        seed: int | None = 0,
        dtype: type | str = np.float64,
        init_scale: float | None = None,
        relu_bias: float = RELU_BIAS,
        input_shape: tuple[int, ...] | None = None,
    ) -> Network:
        """A network of the hidden layers ``layers`` describes — mappings such as ``{type: dense, units: N}``,
        ``{type: conv, filters: F, kernel: k, stride: 1, padding: same}``, ``{type: maxpool, size: 2}``
        (``nncli.model.layers.LAYERS``), each layer's activation ``activation`` unless it names its own —
        and n_out output units ``output``. It reads n_in values, or images of ``input_shape`` (C, H, W) or
        (H, W) given as rows of C·H·W values, channels first and row-major."""
        if input_shape is None:
            if isinstance(n_in, bool) or not isinstance(n_in, int) or n_in < 1:
                raise NncliError(f"n_in should be a whole number ≥ 1, got {n_in!r}")
            input_shape = (n_in,)
        input_shape = input_shape_of(list(input_shape) if isinstance(input_shape, tuple) else input_shape)
        if n_in is not None and n_in != math.prod(input_shape):
            raise NncliError(f"n_in {n_in!r} is not the size of input_shape {list(input_shape)}")
        if isinstance(n_out, bool) or not isinstance(n_out, int) or n_out < 1:
            raise NncliError(f"n_out should be a whole number ≥ 1, got {n_out!r}")
        net = cls.__new__(cls)
        net._build(
            input_shape,
            [] if layers is None else layers,
            n_out,
            activation,
            output,
            initializer,
            seed,
            dtype,
            init_scale,
            relu_bias,
        )
        return net

    def _build(
        self, in_shape, specs, n_out, activation, output, initializer, seed, dtype, init_scale, relu_bias
    ):
        """Build the layers the specs describe and draw their parameters from ``default_rng(seed)``, layer by
        layer: the weights (or kernels) from the initializer with the layer's fans, the biases as
        ``initial_bias`` says."""
        hidden = lookup(ACTIVATIONS, activation, "activation")
        out = lookup(OUTPUTS, output, "output")
        init = lookup(INITIALIZERS, initializer, "initializer")
        dtype = _check_dtype(dtype)
        rng = np.random.default_rng(seed)
        layers = build_layers(in_shape, specs, n_out, hidden)
        self._setup(layers, out, dtype, hidden)
        for layer in layers:
            if not layer.params:
                continue
            fan_in, fan_out = layer.fans
            feeds_relu = layer.activation is not None and layer.activation.relu_family
            layer.params[0][...] = init(rng, fan_in, fan_out, init_scale, layer.param_shapes[0])
            layer.params[1][...] = initial_bias(layer.param_shapes[1][0], feeds_relu, relu_bias)

    @classmethod
    def from_weights(
        cls,
        weights: list[np.ndarray],
        biases: list[np.ndarray],
        activation: str = "sigmoid",
        output: str = "softmax",
        dtype: type | str | None = None,
    ) -> Network:
        """A network whose Θ^(l) are the given arrays: W^(l) (s_{l+1}, s_l) and b^(l) (s_{l+1},).

        The arrays are copied. ``dtype`` defaults to that of the first weight array when it is
        float32 or float64, else float64.
        """
        hidden = lookup(ACTIVATIONS, activation, "activation")
        out = lookup(OUTPUTS, output, "output")
        if len(weights) == 0 or len(weights) != len(biases):
            raise NncliError(
                f"expected as many bias vectors as weight matrices (at least one), "
                f"got {len(weights)} weights and {len(biases)} biases"
            )
        if dtype is None:
            first = np.asarray(weights[0]).dtype
            dtype = first if first in (np.float32, np.float64) else np.float64
        dtype = _check_dtype(dtype)
        arrays = []
        s_in = None
        for number, (W, b) in enumerate(zip(weights, biases, strict=True), start=1):
            W = np.asarray(W)
            b = np.asarray(b)
            if W.ndim != 2 or (s_in is not None and W.shape[1] != s_in):
                expected = f"(s_{number + 1}, {s_in})" if s_in is not None else "(s_out, s_in)"
                raise NncliError(f"W{number} should have shape {expected}, got {W.shape}")
            if b.shape != (W.shape[0],):
                raise NncliError(f"b{number} should have shape ({W.shape[0]},), got {b.shape}")
            if not (np.isfinite(W).all() and np.isfinite(b).all()):
                raise NncliError(f"W{number} and b{number} must be finite, got nan or inf")
            arrays.append((W, b))
            s_in = W.shape[0]
        net = cls.__new__(cls)
        layers = [Dense(W.shape[1], W.shape[0], hidden) for W, _ in arrays]
        layers[-1].activation = None  # the output layer's units are the output's
        net._setup(layers, out, dtype, hidden)
        for layer, (W, b) in zip(net.layers, arrays, strict=True):
            layer.W[...] = W
            layer.b[...] = b
        return net

    def _setup(self, layers: list[Layer], output: OutputLoss, dtype, activation: Activation) -> None:
        """Lay every parameter out in one flat vector θ, regularized arrays first, and bind the views.
        ``activation`` names the hidden units of a network that has none (as its model file records)."""
        self.layers = layers
        shared = {
            layer.activation.name: layer.activation for layer in layers[:-1] if layer.activation is not None
        } or {None: activation}
        # the hidden layers' one activation, where they share one (the fast paths need it); else None
        self.hidden = next(iter(shared.values())) if len(shared) == 1 else None
        self.output = output
        self.dtype = np.dtype(dtype)
        entries = [
            (layer, index, shape, reg)
            for layer in layers
            for index, (shape, reg) in enumerate(zip(layer.param_shapes, layer.regularized, strict=True))
        ]
        ordered = [e for e in entries if e[3]] + [e for e in entries if not e[3]]
        self.theta = np.zeros(sum(int(np.prod(e[2])) for e in entries), dtype=self.dtype)
        self.n_regularized = sum(int(np.prod(e[2])) for e in entries if e[3])
        self.regularized_theta = self.theta[: self.n_regularized]  # a view: the entries λ covers
        self.slices = {}
        start = 0
        for layer, index, shape, _ in ordered:
            size = int(np.prod(shape))
            self.slices[(id(layer), index)] = slice(start, start + size)
            start += size
        for layer in layers:
            layer.bind(self.views(self.theta, layer))

    def views(self, flat: np.ndarray, layer) -> list[np.ndarray]:
        """``layer``'s parameter arrays as views into a vector laid out like θ (the gradient's, say)."""
        return [
            flat[self.slices[(id(layer), index)]].reshape(shape)
            for index, shape in enumerate(layer.param_shapes)
        ]

    # ----------------------------------------------------------------- structure

    @property
    def activation(self) -> str | None:
        """The hidden layers' activation, where they share one; None where they differ."""
        return None if self.hidden is None else self.hidden.name

    @property
    def layer_specs(self) -> list[dict]:
        """The hidden layers' specifications, each naming its activation (``Network.from_layers``)."""
        return [layer.spec() for layer in self.layers[:-1]]

    @property
    def input_shape(self) -> tuple[int, ...]:
        """The shape of one example as the first layer reads it: (n,), or an image's (C, H, W)."""
        return self.layers[0].in_shape

    @property
    def parameterized(self) -> list[Layer]:
        """The layers that have parameters, in order (pooling and flatten have none)."""
        return [layer for layer in self.layers if layer.params]

    @property
    def output_name(self) -> str:
        return self.output.name

    @property
    def multiply_adds(self) -> int:
        """The multiply-adds of one example's forward pass through every layer (``Layer.multiply_adds``):
        the number of weights for a stack of dense layers, far more for a convolution's shared ones."""
        return sum(layer.multiply_adds for layer in self.layers)

    @property
    def image_layers(self) -> int:
        """How many layers read images (C, H, W): convolutions, pooling, flatten."""
        return sum(len(layer.in_shape) == 3 for layer in self.layers)

    @property
    def layer_sizes(self) -> list[int]:
        return [self.layers[0].sizes[0], *(layer.sizes[1] for layer in self.layers)]

    @property
    def weights(self) -> list[np.ndarray]:
        """W^(l) of each layer with parameters, in order: Θ^(l) without its bias column, (s_{l+1}, s_l) for a
        dense layer and (F, C, kh, kw) for a convolution's kernels. Writable views into θ."""
        return [layer.params[0] for layer in self.parameterized]

    @property
    def biases(self) -> list[np.ndarray]:
        """b^(l) of each layer with parameters, in order: (s_{l+1},), or (F,) for a convolution."""
        return [layer.params[1] for layer in self.parameterized]

    @property
    def params(self) -> list[np.ndarray]:
        """Every parameter array in a fixed order (W1, b1, W2, b2, …); optimizers update them in place."""
        return [p for layer in self.layers for p in layer.params]

    @property
    def regularized(self) -> list[bool]:
        """For each array of ``params``, whether λ/(2m)·Σ Θ² covers it."""
        return [flag for layer in self.layers for flag in layer.regularized]

    def param_names(self) -> list[str]:
        """W1, b1, W2, b2, …, numbering the layers that have parameters."""
        return [f"{kind}{number}" for number in range(1, len(self.parameterized) + 1) for kind in "Wb"]

    def copy_params(self) -> np.ndarray:
        """A copy of θ, every parameter in one vector."""
        return self.theta.copy()

    def set_params(self, theta: np.ndarray) -> None:
        """Copy a vector laid out like θ into the parameters, in place."""
        self.theta[...] = theta

    # ----------------------------------------------------------------- public, checked API

    def forward(self, X: np.ndarray) -> np.ndarray:
        """h_Θ(X): the output activations a^(L), shape (m, K)."""
        return self.output.activate(self.output_z(self.check_inputs(X)))

    def cost(self, X: np.ndarray, Y: np.ndarray, lambda_: float = 0.0) -> float:
        """J(Θ) = (1/m) Σ_i loss^(i) + λ/(2m) Σ W²."""
        X, Y = self.check_inputs(X, Y)
        _check_lambda(lambda_)
        _, loss = self.output.activate_and_loss(self.output_z(X), Y)
        return loss / len(X) + self.penalty(lambda_, len(X))

    def gradients(
        self, X: np.ndarray, Y: np.ndarray, lambda_: float = 0.0
    ) -> tuple[float, list[np.ndarray], list[np.ndarray]]:
        """(J, [D^(1) for W, …], [D^(1) for b, …]) with the shapes of ``weights`` and ``biases``."""
        X, Y = self.check_inputs(X, Y)
        _check_lambda(lambda_)
        J, grads = self.finish(self.gradient_sums(X, Y), lambda_)
        return J, grads[0::2], grads[1::2]

    def check_inputs(self, X: np.ndarray, Y: np.ndarray | None = None):
        """X (m, s_1) and Y (m, K) as finite arrays of this network's dtype; a clear error otherwise."""
        X = _as_matrix(X, "X", self.layer_sizes[0], self.dtype)
        if Y is None:
            return X
        Y = _as_matrix(Y, "Y", self.layer_sizes[-1], self.dtype)
        if len(Y) != len(X):
            raise NncliError(f"X and Y should have the same number of rows, got {len(X)} and {len(Y)}")
        problem = self.output.targets_problem(Y)
        if problem is not None:
            raise NncliError(problem)
        return X, Y

    # ----------------------------------------------------------------- engine (inputs trusted)

    def hidden_activations(self, X: np.ndarray, forms=None) -> list[np.ndarray]:
        """[a^(1), …, a^(L−1)]: a^(1) = X, a^(l+1) = g(z^(l+1)) with z^(l+1) the layer's forward of a^(l)
        (a^(l) Θ^(l)ᵀ + b^(l) for a dense layer); a layer without units passes z^(l+1) on as it is.
        ``forms``: an object per layer with its ``forward`` (and ``gradient_sums``, ``propagate``), where
        an engine computes a layer otherwise than the layer itself; the layers by default."""
        activations = [X]
        for layer, form in zip(self.layers[:-1], forms or self.layers, strict=False):
            z = form.forward(activations[-1])
            activations.append(z if layer.activation is None else layer.activation.g(z))
        return activations

    def output_z(self, X: np.ndarray) -> np.ndarray:
        """z^(L), the output units' input, shape (m, K)."""
        return self.layers[-1].forward(self.hidden_activations(X)[-1])

    def gradient_sums(self, X: np.ndarray, Y: np.ndarray) -> GradientSums:
        """Σ_i loss^(i) and, per parameter, Σ_i ∂loss^(i)/∂param, by forward then back propagation."""
        loss, grads, _ = self.backprop(X, Y)
        return GradientSums(len(X), loss, grads)

    def backprop(
        self, X: np.ndarray, Y: np.ndarray, forms=None
    ) -> tuple[float, list[np.ndarray], np.ndarray]:
        """One FP/BP pass: (Σ_i loss^(i), per-parameter gradient sums, a^(L)).

        δ^(L) = a^(L) − y;  δ^(l) = (Θ^(l))ᵀ δ^(l+1) .* g′(z^(l));  Δ^(l) = Σ_i δ^(l+1) (a^(l))ᵀ, each layer
        computing its own Δ and its own error passed down (``Layer.gradient_sums``, ``Layer.propagate``),
        or its form in ``forms`` (``hidden_activations``).
        """
        forms = forms or self.layers
        activations = self.hidden_activations(X, forms)
        a_out, loss = self.output.activate_and_loss(forms[-1].forward(activations[-1]), Y)
        delta = a_out - Y
        grads: list[list[np.ndarray]] = [[] for _ in self.layers]
        for index in range(len(self.layers) - 1, -1, -1):
            form, a = forms[index], activations[index]
            grads[index] = form.gradient_sums(delta, a)
            if index > 0:
                delta = form.propagate(delta, a)
                below = self.layers[index - 1].activation
                if below is not None:
                    delta *= below.g_prime(a)
        return loss, [g for layer_grads in grads for g in layer_grads], a_out

    def penalty(self, lambda_: float, m: int) -> float:
        """λ/(2m) Σ_l Σ (Θ^(l))² over the regularized arrays (never the biases)."""
        if lambda_ == 0.0:
            return 0.0
        weights = self.regularized_theta
        return lambda_ / (2.0 * m) * float(np.vdot(weights, weights))

    def finish(self, sums: GradientSums, lambda_: float) -> tuple[float, list[np.ndarray]]:
        """J and D from the sums: J = loss/m + λ/(2m) Σ Θ², D = Δ/m + (λ/m) Θ (bias: Σδ/m)."""
        m = sums.m
        grads = []
        for grad_sum, param, reg in zip(sums.grads, self.params, self.regularized, strict=True):
            grad = grad_sum / m
            if reg and lambda_ != 0.0:
                grad += (lambda_ / m) * param
            grads.append(grad)
        return sums.loss / m + self.penalty(lambda_, m), grads

    def describe(self) -> str:
        """One line: the sizes and units of a dense stack (64-32-10 relu/softmax), or the input's shape and
        each layer's specification ([1, 8, 8] → conv 16 3×3 same relu → maxpool 2 → softmax 10)."""
        if all(type(layer) is Dense for layer in self.layers) and self.hidden is not None:
            return f"{'-'.join(map(str, self.layer_sizes))} {self.activation}/{self.output_name}"
        parts = ["[" + ", ".join(map(str, self.input_shape)) + "]"]
        for layer in self.layers[:-1]:
            spec = layer.spec()
            details = [
                "×".join(map(str, value)) if isinstance(value, list) else str(value)
                for key, value in spec.items()
                if key != "type" and not (key == "stride" and value in (1, spec.get("size")))
            ]
            parts.append(" ".join([spec["type"], *details]))
        parts.append(f"{self.output_name} {self.layer_sizes[-1]}")
        return " → ".join(parts)

    def __getstate__(self) -> dict:
        """What rebuilds this network elsewhere (a copy, another process, a Dask worker): its layers' specs
        and θ. The layers' parameters are views into θ, which pickling array by array would cut apart."""
        return {
            "input_shape": list(self.input_shape),
            "layers": self.layer_specs,
            "n_out": self.layer_sizes[-1],
            "output": self.output_name,
            "dtype": str(self.dtype),
            "theta": self.theta.copy(),
        }

    def __setstate__(self, state: dict) -> None:
        built = Network.from_layers(
            input_shape=tuple(state["input_shape"]),
            layers=state["layers"],
            n_out=state["n_out"],
            output=state["output"],
            initializer="zeros",
            dtype=state["dtype"],
        )
        self.__dict__.update(built.__dict__)
        self.set_params(state["theta"])

    def __repr__(self) -> str:
        sizes = "-".join(map(str, self.layer_sizes))
        return f"Network({sizes}, activation={self.activation!r}, output={self.output_name!r})"


def _check_layer_sizes(layer_sizes) -> list[int]:
    try:
        sizes = [int(s) for s in layer_sizes]
        exact = all(int(s) == s and not isinstance(s, bool) for s in layer_sizes)
    except (TypeError, ValueError):
        sizes, exact = [], False
    if len(sizes) < 2 or not exact or min(sizes) < 1:
        raise NncliError(
            f"layer sizes should be a list of at least two whole numbers ≥ 1 "
            f"([inputs, *hidden, outputs]), got {layer_sizes!r}"
        )
    return sizes


def _check_dtype(dtype) -> np.dtype:
    try:
        resolved = np.dtype(dtype)
    except TypeError:
        resolved = None
    if resolved not in (np.float32, np.float64):
        raise NncliError(f"dtype should be float64 or float32, got {dtype!r}")
    return resolved


def _check_lambda(lambda_: float) -> None:
    if not (isinstance(lambda_, int | float) and np.isfinite(lambda_) and lambda_ >= 0):
        raise NncliError(f"lambda_ should be a finite number ≥ 0, got {lambda_!r}")


def _as_matrix(values, name: str, columns: int, dtype) -> np.ndarray:
    array = np.asarray(values)
    if array.ndim != 2 or array.shape[1] != columns:
        hint = " (use .reshape(-1, 1) for a single column)" if array.ndim == 1 else ""
        raise NncliError(f"{name} should have shape (m, {columns}), got {array.shape}{hint}")
    if len(array) == 0:
        raise NncliError(f"{name} should have at least one row, got shape {array.shape}")
    if array.dtype.kind not in "fiub":
        raise NncliError(f"{name} should hold numbers, got dtype {array.dtype}")
    array = array.astype(dtype, copy=False)
    if not _all_finite(array):
        raise NncliError(f"{name} must be finite, but it holds nan or inf")
    return array


def _all_finite(array: np.ndarray) -> bool:
    """Whether no entry is nan or ±inf, with no boolean array as large as ``array``.

    The row sums (one pass, by BLAS) are all finite unless an entry is nan or ±inf, or a sum of finite
    entries overflows; only then are the minimum and maximum taken (two passes), which are nan or ±inf
    exactly when some entry is. BLAS runs on one thread here: waking its other threads would leave them
    spinning for a while against the training that follows.
    """
    with np.errstate(over="ignore", invalid="ignore"), blas_controller().limit(limits=1, user_api="blas"):
        row_sums = array @ np.ones(array.shape[1], dtype=array.dtype)
    if np.isfinite(row_sums).all():
        return True
    return bool(
        np.isfinite(np.minimum.reduce(array, axis=None)) and np.isfinite(np.maximum.reduce(array, axis=None))
    )

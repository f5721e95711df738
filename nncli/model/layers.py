"""Layer types of the engine. A layer maps a^(l) to z^(l+1) and, going back, turns δ^(l+1) into the sums
that make up its gradient and into the error it passes on.

The interface a layer offers the network (so that a new layer type — for instance one whose units share
weights — slots in without touching backpropagation):

- ``param_shapes`` and ``regularized``: the shapes of its parameter arrays, in a fixed order, and whether
  the L2 term λ/(2m)·Σ Θ² covers each (never a bias);
- ``bind(arrays)``: the network hands the layer views into its one flat parameter vector θ;
- ``forward(a)``: z^(l+1) from a^(l), (m, s_l) -> (m, s_{l+1});
- ``gradient_sums(delta, a)``: per parameter, Σ over the m examples of ∂loss/∂param (the lecture's Δ);
- ``propagate(delta)``: (Θ^(l))ᵀ δ^(l+1), in rows: (m, s_{l+1}) -> (m, s_l), before the .* g′(z^(l)).

These plain forms take examples as rows, as X has them, and allocate their results. The training loop's
forms ``forward_columns(a, out)``, ``gradient_sums_columns(delta, a, outs, ones)`` and
``propagate_columns(delta, out)`` compute the same into preallocated arrays, with examples as columns:
a^(l) is (s_l, m), the lecture's layout of a batch, column i being a^(l) of example i. OpenBLAS runs
some of a mini-batch's products faster in that layout (``docs/performance.md``).

Gradients are sums over examples, not means, so that sums from separate partitions of a batch can be
added.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from nncli.errors import NncliError, shown
from nncli.model.activations import ACTIVATIONS, Activation


class Layer:
    """The protocol every layer type implements; the network, the optimizers and the engines' general path
    use nothing else of a layer.

    - ``kind``: its name in ``LAYERS`` and in layer specifications;
    - ``param_shapes`` and ``regularized``: its parameter arrays' shapes, and whether λ covers each;
    - ``sizes``: (units it reads, units it feeds), a^(l) flattened;
    - ``fans``: (fan-in, fan-out) for the initializers;
    - ``activation``: g of its units, or None on the output layer (whose units are the output's);
    - ``bind(arrays)``, ``params``; ``forward(a)``; ``gradient_sums(delta, a)``; ``propagate(delta)``;
    - ``spec()``: the layer specification that builds it again.
    """

    kind = ""
    activation: Activation | None = None


class Dense(Layer):
    """A fully connected layer: z^(l+1) = a^(l) Θ^(l)ᵀ + b^(l), with W = Θ^(l) minus its bias column.

    W has shape (s_{l+1}, s_l) and b has shape (s_{l+1},).
    """

    kind = "dense"
    regularized = (True, False)

    def __init__(self, s_in: int, s_out: int, activation: Activation | None = None) -> None:
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
    def sizes(self) -> tuple[int, int]:
        """(s_l, s_{l+1}): the number of units this layer reads and the number it feeds."""
        s_out, s_in = self.param_shapes[0]
        return s_in, s_out

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
    def from_spec(cls, spec: dict, s_in: int, activation: Activation | None, where: str) -> Dense:
        """A dense layer of ``spec['units']`` units reading ``s_in``; ``activation`` is its g unless the
        spec names one."""
        _known_keys(spec, {"type", "units", "activation"}, where)
        units = spec.get("units")
        if isinstance(units, bool) or not isinstance(units, int) or units < 1:
            raise NncliError(f"{where} (dense) should have units, a whole number ≥ 1, got {shown(units)}")
        return cls(s_in, units, _activation(spec, activation, where))

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

    # The training loop's forms, examples as columns. np.matmul, not np.dot: np.dot runs δ aᵀ (a
    # transposed view) slower.

    def forward_columns(self, a: np.ndarray, out: np.ndarray) -> None:
        """z^(l+1) = W a^(l) + b, (s_l, m) -> (s_{l+1}, m), into out."""
        np.matmul(self.W, a, out=out)
        out += self.b_column

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


def _known_keys(spec: dict, allowed: set[str], where: str) -> None:
    unknown = sorted(set(spec) - allowed, key=str)
    if unknown:
        raise NncliError(
            f"{where} has an unknown key {shown(unknown[0])}; allowed: {', '.join(sorted(allowed))}"
        )


def _activation(spec: dict, default: Activation | None, where: str) -> Activation | None:
    name = spec.get("activation")
    if name is None:
        return default
    if not isinstance(name, str) or name not in ACTIVATIONS:
        raise NncliError(f"{where}'s activation should be one of {', '.join(ACTIVATIONS)}, got {shown(name)}")
    return ACTIVATIONS[name]


# Every layer type, by the name a layer specification gives in ``type``: a new type is one module with a
# class implementing ``Layer`` and one entry here.
LAYERS: dict[str, Callable[..., Layer]] = {"dense": Dense.from_spec}


def build_layers(n_in: int, specs: list, n_out: int, activation: Activation) -> list[Layer]:
    """The hidden layers ``specs`` describe (a list of mappings ``{type: …, …}``), reading n_in inputs, and
    a dense output layer of n_out units; hidden layers use ``activation`` unless their spec names another."""
    if not isinstance(specs, list | tuple):
        raise NncliError(f"layers should be a list of layer specifications, got {shown(specs)}")
    layers: list[Layer] = []
    size = n_in
    for number, spec in enumerate(specs, start=1):
        where = f"layer {number}"
        if not isinstance(spec, dict):
            raise NncliError(
                f"{where} should be a mapping such as {{type: dense, units: 16}}, got {shown(spec)}"
            )
        kind = spec.get("type", "dense")
        if not isinstance(kind, str) or kind not in LAYERS:
            raise NncliError(f"{where}'s type should be one of {', '.join(LAYERS)}, got {shown(kind)}")
        layer = LAYERS[kind](spec, size, activation, where)
        layers.append(layer)
        size = layer.sizes[1]
    layers.append(Dense(size, n_out))
    return layers

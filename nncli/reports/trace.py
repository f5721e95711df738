"""Backpropagation for one example, number by number, in the lecture's notation — the lecture's loop over
examples written out, for a student to follow (``nncli trace``).

For a stack of dense layers l = 1 … L (layer 1 the input, Θ^(l) = [b^(l) W^(l)] mapping layer l to l+1):

    a^(1) = x;  z^(l+1) = W^(l) a^(l) + b^(l);  a^(l+1) = g(z^(l+1)), the output's unit at l+1 = L
    δ^(L) = a^(L) − y
    δ^(l) = (W^(l))ᵀ δ^(l+1) .* g′(z^(l))        for l = L−1 … 2 (no δ^(1): the input has no error)
    Δ^(l) += δ^(l+1) (a^(l))ᵀ,  Δ_b^(l) += δ^(l+1)  for every example i = 1 … m of the batch
    D^(l) = (1/m) Δ^(l) + (λ/m) W^(l),  D_b^(l) = (1/m) Δ_b^(l)

so that D^(l) = ∂J/∂Θ^(l) for J = (1/m) Σ_i loss(i) + λ/(2m) Σ W². Each vector here is one example's
column; a few entries of D are set beside the centred difference (J(Θ+ε) − J(Θ−ε)) / 2ε.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nncli.errors import NncliError
from nncli.model.layers.dense import Dense


@dataclass
class LayerTrace:
    """Layer l of the example: z^(l) (None for the input), a^(l), δ^(l) (None for the input)."""

    l: int
    z: np.ndarray | None
    a: np.ndarray
    delta: np.ndarray | None


@dataclass
class Check:
    """One entry of D beside its centred-difference estimate."""

    name: str  # W^(1) or b^(2)
    index: tuple[int, ...]  # 1-based, as the lecture counts
    D: float
    numeric: float


@dataclass
class Trace:
    example: int  # i, 1-based
    m: int
    lambda_: float
    epsilon: float
    x: np.ndarray
    y: np.ndarray
    layers: list[LayerTrace]
    Delta_W: list[np.ndarray]  # what example i adds to Δ^(l), l = 1 … L−1
    Delta_b: list[np.ndarray]
    D_W: list[np.ndarray]  # the batch's D^(l)
    D_b: list[np.ndarray]
    cost: float  # J(Θ) of the batch
    checks: list[Check]


def _dense_stack(net) -> list[Dense]:
    if not all(isinstance(layer, Dense) for layer in net.layers):
        raise NncliError(
            "nncli trace follows the lecture's fully connected layers; this network has convolution or "
            "pooling layers, so trace a config with model.hidden"
        )
    return net.layers


def forward_backward(net, x: np.ndarray, y: np.ndarray) -> tuple[list[LayerTrace], list, list]:
    """One example through the lecture's loop body: (the layers' z, a, δ; Δ^(l) and Δ_b^(l) it adds)."""
    layers = _dense_stack(net)
    traces = [LayerTrace(1, None, x.copy(), None)]
    a = x
    for number, layer in enumerate(layers, start=2):
        W, b = layer.params
        z = W @ a + b
        last = number == len(layers) + 1
        a = net.output.activate(z[None, :])[0] if last else layer.activation.g(z)
        traces.append(LayerTrace(number, z, a, None))
    traces[-1].delta = traces[-1].a - y  # δ^(L) = a^(L) − y
    for l in range(len(layers), 1, -1):  # δ^(l) for l = L−1 … 2
        W = layers[l - 1].params[0]
        below = traces[l - 1]
        g_prime = layers[l - 2].activation.g_prime(below.a)
        below.delta = (W.T @ traces[l].delta) * g_prime
    Delta_W = [np.outer(traces[l].delta, traces[l - 1].a) for l in range(1, len(traces))]
    Delta_b = [traces[l].delta.copy() for l in range(1, len(traces))]
    return traces, Delta_W, Delta_b


def trace(net, X: np.ndarray, Y: np.ndarray, example: int, lambda_: float, epsilon: float = 1e-4) -> Trace:
    """The trace of example ``example`` (1-based) of the batch X, Y, and the batch's D by the lecture's
    loop over all m examples."""
    m = len(X)
    if not 1 <= example <= m:
        raise NncliError(f"--example {example} is not a row of the batch; choose 1 to {m}")
    layers = _dense_stack(net)
    sum_W = [np.zeros_like(layer.params[0]) for layer in layers]
    sum_b = [np.zeros_like(layer.params[1]) for layer in layers]
    for i in range(m):
        traces, Delta_W, Delta_b = forward_backward(net, X[i], Y[i])
        for total, part in zip(sum_W + sum_b, Delta_W + Delta_b, strict=True):
            total += part
        if i == example - 1:
            shown = (traces, Delta_W, Delta_b)
    D_W = [total / m + (lambda_ / m) * layer.params[0] for total, layer in zip(sum_W, layers, strict=True)]
    D_b = [total / m for total in sum_b]
    return Trace(
        example=example,
        m=m,
        lambda_=lambda_,
        epsilon=epsilon,
        x=X[example - 1].copy(),
        y=Y[example - 1].copy(),
        layers=shown[0],
        Delta_W=shown[1],
        Delta_b=shown[2],
        D_W=D_W,
        D_b=D_b,
        cost=net.cost(X, Y, lambda_),
        checks=_checks(net, X, Y, lambda_, epsilon, D_W, D_b),
    )


def _checks(net, X, Y, lambda_, epsilon, D_W, D_b) -> list[Check]:
    """The centred difference beside D for the first and last weight and the first bias of each layer."""
    checks = []
    for number, layer in enumerate(net.layers, start=1):
        W, b = layer.params
        corners = dict.fromkeys([(0, 0), (W.shape[0] - 1, W.shape[1] - 1)])  # one, for a 1×1 W
        places = [("W", W, D_W[number - 1], index) for index in corners] + [("b", b, D_b[number - 1], (0,))]
        for kind, array, D, index in places:
            saved = array[index]
            array[index] = saved + epsilon
            plus = net.cost(X, Y, lambda_)
            array[index] = saved - epsilon
            minus = net.cost(X, Y, lambda_)
            array[index] = saved
            one_based = tuple(k + 1 for k in index)
            checks.append(
                Check(f"{kind}^({number})", one_based, float(D[index]), (plus - minus) / (2 * epsilon))
            )
    return checks

"""A slow, independent reference written as the lecture writes backpropagation: one example at a time,
column vectors, Θ^(l) with its bias column, and Δ^(l) := Δ^(l) + δ^(l+1) (a^(l))ᵀ accumulated over i."""

import numpy as np

G = {
    "sigmoid": (
        lambda z: 1 / (1 + np.exp(-z)),
        lambda z: (1 / (1 + np.exp(-z))) * (1 - 1 / (1 + np.exp(-z))),
    ),
    "tanh": (np.tanh, lambda z: 1 - np.tanh(z) ** 2),
    "relu": (lambda z: np.maximum(z, 0), lambda z: (z > 0).astype(float)),
    "leaky_relu": (lambda z: np.where(z > 0, z, 0.01 * z), lambda z: np.where(z > 0, 1.0, 0.01)),
}


def output_unit(name, z):
    if name == "sigmoid":
        return 1 / (1 + np.exp(-z))
    if name == "softmax":
        e = np.exp(z - z.max())
        return e / e.sum()
    return z


def example_loss(name, h, y):
    if name == "sigmoid":
        return -np.sum(y * np.log(h) + (1 - y) * np.log(1 - h))
    if name == "softmax":
        return -np.sum(y * np.log(h))
    return 0.5 * np.sum((h - y) ** 2)


def lecture_gradients(weights, biases, activation, output, X, Y, lambda_):
    """(J, [D^(l) with bias column first]) by the lecture's loop over i = 1..m."""
    g, g_prime = G[activation]
    thetas = [np.column_stack([b, W]) for W, b in zip(weights, biases, strict=True)]
    Deltas = [np.zeros_like(t) for t in thetas]
    m = len(X)
    J = 0.0
    for i in range(m):
        a = [np.concatenate([[1.0], X[i]])]
        zs = []
        for l, theta in enumerate(thetas):
            z = theta @ a[-1]
            zs.append(z)
            if l < len(thetas) - 1:
                a.append(np.concatenate([[1.0], g(z)]))
            else:
                a.append(output_unit(output, z))
        J += example_loss(output, a[-1], Y[i])
        delta = a[-1] - Y[i]
        for l in range(len(thetas) - 1, -1, -1):
            Deltas[l] += np.outer(delta, a[l])
            if l > 0:
                delta = (thetas[l].T @ delta)[1:] * g_prime(zs[l - 1])
    D = []
    for theta, Delta in zip(thetas, Deltas, strict=True):
        reg = lambda_ / m * theta
        reg[:, 0] = 0.0
        D.append(Delta / m + reg)
    J = J / m + lambda_ / (2 * m) * sum(np.sum(t[:, 1:] ** 2) for t in thetas)
    return J, D

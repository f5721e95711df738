"""Optimizer updates, compiled: each one fused pass over θ (``nncli.optim`` holds their formulas).

Every update adds the lecture's coupled L2 term on the weights only (the first ``n_weights`` entries of θ,
``nncli.model.network``) and returns Σ Θ² over them, of Θ as it was before the update: the L2 term of J.
"""

from __future__ import annotations

from nncli.engines.compiled.jit import fast


@fast
def momentum_update(S, theta, G, n_weights, beta, decay):
    """S := β S + G + decay·Θ on the first ``n_weights`` entries (β S + G on the rest), Θ := Θ − S;
    returns Σ Θ² over those entries, of Θ as it was before the update."""
    squares = 0.0
    for p in range(n_weights):
        t = theta[p]
        squares += t * t
        s = beta * S[p] + G[p] + decay * t
        S[p] = s
        theta[p] = t - s
    for p in range(n_weights, theta.size):
        s = beta * S[p] + G[p]
        S[p] = s
        theta[p] = theta[p] - s
    return squares

"""Gradient clipping by the global norm: the whole gradient D, every parameter array at once, is scaled
down to norm ``clip_norm`` when it is longer, and left alone otherwise:

    s = min(1, clip_norm / ‖D‖),   D := s·D,   ‖D‖ = √(Σ over all of θ of D²)

(``torch.nn.utils.clip_grad_norm_``'s rule, taken on D with its L2 term). Engines that clip compute ‖D‖ from
their pre-scaled gradient κD (``nncli.optim.optimizers``) and hand s to the optimizer's update.
"""

from __future__ import annotations

import math


def clip_factor(norm_of_scaled: float, scale: float, clip_norm: float | None) -> float:
    """s for a gradient whose pre-scaled form κD has norm ``norm_of_scaled`` (κ = ``scale``): 1 when
    ``clip_norm`` is None or ‖D‖ is within it."""
    if clip_norm is None:
        return 1.0
    norm = norm_of_scaled / scale
    if not math.isfinite(norm) or norm <= clip_norm:
        return 1.0
    return clip_norm / norm

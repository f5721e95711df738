"""The decisions around the epoch loop, each a callback of its own: the divergence guard, early stopping, a
request to stop (a signal), and whatever the caller wants to hear of each epoch (progress, checkpoints).

The loop asks its callbacks, in order, at four moments, and stops at the first stop reason one answers:

- ``on_start(state)``, before the first step of a run (or of a resumed run);
- ``before_step()``, before each step; ``after_step(J)``, with the step's J_i;
- ``epoch_ending(record)``, before an epoch is counted: an epoch it refuses is not recorded;
- ``epoch_ended(record, state)``, after the epoch is recorded, with the run's state (its best monitored J
  and the epochs since it improved).

``keeps_best(reason)`` says whether a run that stopped for ``reason`` ends on the best weights so far (the
monitored J's best, ``nncli.training.loop``) rather than the last.
"""

from __future__ import annotations

import math
from collections.abc import Callable

COMPLETED, EARLY_STOPPING, DIVERGED, INTERRUPTED = "completed", "early_stopping", "diverged", "interrupted"


class Callback:
    """Answers None (go on) at every moment, and keeps the last weights."""

    def on_start(self, state) -> str | None:
        return None

    def before_step(self) -> str | None:
        return None

    def after_step(self, J: float) -> str | None:
        return None

    def epoch_ending(self, record) -> str | None:
        return None

    def epoch_ended(self, record, state) -> str | None:
        return None

    def keeps_best(self, reason: str) -> bool:
        return False


class DivergenceGuard(Callback):
    """A step's J_i, or an epoch's monitored J, that is nan or ±inf stops the run, which ends on the best
    weights so far."""

    def after_step(self, J: float) -> str | None:
        return None if math.isfinite(J) else DIVERGED

    def epoch_ending(self, record) -> str | None:
        return None if math.isfinite(record.monitored_cost) else DIVERGED

    def keeps_best(self, reason: str) -> bool:
        return reason == DIVERGED


class EarlyStopping(Callback):
    """Stop once the monitored J has not improved for ``patience`` epochs, and end on the best weights
    (unless the run was interrupted, which keeps its last weights so that it can be resumed)."""

    def __init__(self, patience: int) -> None:
        self.patience = patience

    def on_start(self, state) -> str | None:
        return EARLY_STOPPING if state.stale >= self.patience else None

    def epoch_ended(self, record, state) -> str | None:
        return EARLY_STOPPING if state.stale >= self.patience else None

    def keeps_best(self, reason: str) -> bool:
        return reason != INTERRUPTED


class StopRequest(Callback):
    """Stop between two steps, or after an epoch, once ``requested()`` answers True (a signal)."""

    def __init__(self, requested: Callable[[], bool]) -> None:
        self.requested = requested

    def before_step(self) -> str | None:
        return INTERRUPTED if self.requested() else None

    def epoch_ended(self, record, state) -> str | None:
        return INTERRUPTED if self.requested() else None


class EachEpoch(Callback):
    """Hands each recorded epoch to a function (progress, checkpoints); never stops the run."""

    def __init__(self, function: Callable) -> None:
        self.function = function

    def epoch_ended(self, record, state) -> str | None:
        self.function(record)
        return None


def first_reason(answers) -> str | None:
    """The first stop reason of an iterable of answers (evaluated in order, no further)."""
    return next((answer for answer in answers if answer is not None), None)


def overriding(callbacks: list[Callback], moment: str) -> list[Callable]:
    """The bound ``moment`` methods of the callbacks that do something there: the loop asks only these at
    every step, where a call to a method that answers None would cost as much as the step itself."""
    return [
        getattr(c, moment) for c in callbacks if getattr(type(c), moment) is not getattr(Callback, moment)
    ]

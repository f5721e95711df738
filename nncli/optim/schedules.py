"""Learning-rate schedules: α_e, the learning rate of epoch e (counted from 0), from the configured α.

- ``constant``:    α_e = α;
- ``step``:        α_e = α · γ^⌊e / every⌋  (γ = ``gamma``, default 0.1; ``every`` epochs, default 10);
- ``exponential``: α_e = α · γ^e  (γ default 0.95);
- ``cosine``:      with W = ``warmup`` epochs (default 0) and E epochs in all: α_e = α (e + 1) / W during the
                   warm-up, then α_e = α_min + ½ (α − α_min) (1 + cos(π (e − W) / (E − W))), α_min = ``floor``
                   (default 0);
- ``invscaling``:  α_e = α / (t + 1)^p with t the examples seen before epoch e and p = ``power`` (default
                   0.5): scikit-learn's ``invscaling``, which it too updates once an epoch;
- ``plateau``:     α is divided by ``factor`` (default 10) each time the monitored J (validation J, or the
                   epoch's training J without a validation set) has not improved for ``patience`` epochs
                   (default 5) since the best or the last reduction, and never goes below ``floor``
                   (default 0); the only schedule with state (its α, best J and count), checkpointed by name.

A schedule sets α once an epoch, before the epoch's first step.
"""

from __future__ import annotations

import difflib
import math
from dataclasses import dataclass


@dataclass
class Schedule:
    """α_e for every epoch e: ``alpha(e)``; ``observe`` hears each epoch's monitored J."""

    alpha0: float
    epochs: int = 1  # the run's epochs E, for schedules that end somewhere (cosine)
    rows: int = 1  # examples per epoch, for invscaling

    name = "constant"

    def alpha(self, epoch: int) -> float:
        return self.alpha0

    def observe(self, monitored_cost: float) -> None:
        """The monitored J of the epoch just finished."""

    def state(self) -> dict:
        return {}

    def restore(self, record: dict) -> None:
        """Continue from ``state()``'s record; a ValueError naming the field if it is not one."""


@dataclass
class Constant(Schedule):
    name = "constant"


@dataclass
class StepDecay(Schedule):
    gamma: float = 0.1
    every: int = 10
    name = "step"

    def alpha(self, epoch: int) -> float:
        return self.alpha0 * self.gamma ** (epoch // self.every)


@dataclass
class Exponential(Schedule):
    gamma: float = 0.95
    name = "exponential"

    def alpha(self, epoch: int) -> float:
        return self.alpha0 * self.gamma**epoch


@dataclass
class Cosine(Schedule):
    warmup: int = 0
    floor: float = 0.0
    name = "cosine"

    def alpha(self, epoch: int) -> float:
        if epoch < self.warmup:
            return self.alpha0 * (epoch + 1) / self.warmup
        span = max(self.epochs - self.warmup, 1)
        progress = min(epoch - self.warmup, span) / span
        return self.floor + 0.5 * (self.alpha0 - self.floor) * (1.0 + math.cos(math.pi * progress))


@dataclass
class InverseScaling(Schedule):
    power: float = 0.5
    name = "invscaling"

    def alpha(self, epoch: int) -> float:
        return self.alpha0 / (epoch * self.rows + 1) ** self.power


@dataclass
class Plateau(Schedule):
    factor: float = 10.0
    patience: int = 5
    floor: float = 0.0
    name = "plateau"

    def __post_init__(self) -> None:
        self.current = self.alpha0
        self.best = math.inf
        self.stale = 0

    def alpha(self, epoch: int) -> float:
        return self.current

    def observe(self, monitored_cost: float) -> None:
        if monitored_cost < self.best:
            self.best, self.stale = monitored_cost, 0
            return
        self.stale += 1
        if self.stale >= self.patience:
            self.current = max(self.current / self.factor, self.floor)
            self.stale = 0

    def state(self) -> dict:
        return {
            "alpha": self.current,
            "best": None if math.isinf(self.best) else self.best,
            "stale": self.stale,
        }

    def restore(self, record: dict) -> None:
        ok = (
            isinstance(record, dict)
            and _number(0, low_open=True)(record.get("alpha"))
            and (record.get("best") is None or _number(-math.inf)(record.get("best")))
            and _whole(0)(record.get("stale"))
        )
        if not ok:
            raise ValueError(
                "its schedule record should hold alpha > 0, best (null or a number) and stale ≥ 0"
            )
        self.current = float(record["alpha"])
        self.best = math.inf if record["best"] is None else float(record["best"])
        self.stale = record["stale"]


SCHEDULES: dict[str, type[Schedule]] = {
    kind.name: kind for kind in (Constant, StepDecay, Exponential, Cosine, InverseScaling, Plateau)
}


def _number(low: float, high: float | None = None, low_open: bool = False):
    def check(value) -> bool:
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            return False
        above = value > low if low_open else value >= low
        return above and (high is None or value <= high)

    return check


def _whole(low: int):
    return lambda value: isinstance(value, int) and not isinstance(value, bool) and value >= low


# Each schedule's own keys: the check its value must pass, and what it should be.
SCHEDULE_KEYS: dict[str, dict[str, tuple]] = {
    "constant": {},
    "step": {
        "gamma": (_number(0, 1, low_open=True), "a number in (0, 1]: the factor γ"),
        "every": (_whole(1), "a whole number ≥ 1: the epochs between reductions"),
    },
    "exponential": {"gamma": (_number(0, 1, low_open=True), "a number in (0, 1]: the factor γ")},
    "cosine": {
        "warmup": (_whole(0), "a whole number ≥ 0: the warm-up epochs"),
        "floor": (_number(0), "a number ≥ 0: the smallest α"),
    },
    "invscaling": {"power": (_number(0), "a number ≥ 0: the power p")},
    "plateau": {
        "factor": (_number(1, low_open=True), "a number > 1: α is divided by it"),
        "patience": (_whole(1), "a whole number ≥ 1: epochs without improvement"),
        "floor": (_number(0), "a number ≥ 0: the smallest α"),
    },
}


def schedule_problem(spec, where: str = "schedule") -> str | None:
    """Why ``spec`` (None, or a mapping {type: name, key: value, …}) is not a schedule, as a sentence naming
    ``where`` and the key; None when it is one."""
    if spec is None:
        return None
    if not isinstance(spec, dict):
        return f"{where} should be a mapping such as {{type: cosine, warmup: 5}}"
    kind = spec.get("type", "constant")
    if not isinstance(kind, str) or kind not in SCHEDULES:
        return f"{where}.type should be one of {', '.join(SCHEDULES)}"
    for key, value in spec.items():
        if key == "type":
            continue
        keys = SCHEDULE_KEYS[kind]
        if key not in keys:
            allowed = ", ".join(["type", *keys])
            close = difflib.get_close_matches(str(key), [*keys], n=1)
            hint = f"; did you mean {where}.{close[0]}?" if close else f"; allowed: {allowed}"
            return f"unknown key {where}.{key} for a {kind} schedule{hint}"
        check, expected = keys[key]
        if not check(value):
            return f"{where}.{key} should be {expected}, got {value!r:.60}"
    return None


def checked_schedule(spec, alpha: float, rows: int) -> Schedule:
    """The schedule ``spec`` describes (None: constant), for a run whose epochs hold ``rows`` examples; a
    ValueError with a sentence when it is not one."""
    problem = schedule_problem(spec)
    if problem is not None:
        raise ValueError(problem)
    spec = dict(spec or {"type": "constant"})
    kind = SCHEDULES[spec.pop("type", "constant")]
    return kind(alpha, 1, rows, **spec)

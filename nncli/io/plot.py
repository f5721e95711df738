"""Plots: J(Θ) against iterations, for training and (when recorded) validation (``plot-cost``); a confusion
matrix, or predictions against true values (``evaluate --plot``).

Images go through matplotlib (PNG, SVG or PDF, by the file's suffix); curves in the terminal through
plotext. Both libraries are imported only when a plot is asked for.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from nncli.errors import NncliError
from nncli.io.datasets import TRAIN_COST
from nncli.io.files import atomic_write

IMAGE_FORMATS = ("png", "svg", "pdf")
XLABEL = "iteration"
# Training and validation are told apart by marker as well as colour, so that they differ in plain text
# (NO_COLOR, a pipe, a printout) too.
MARKERS = {"training": "•", "validation": "x"}
COLOURS = {"training": "blue", "validation": "orange"}
IMAGE_MARKERS = {"training": "o", "validation": "x"}
IMAGE_LINES = {"training": "-", "validation": "--"}


@dataclass(frozen=True)
class Panel:
    """One plot of a run's history: J, or the metric (accuracy, RMSE), for training and validation."""

    ylabel: str
    curves: list[tuple[str, str, list, list]]  # (training or validation, its label, iterations, values)
    log: bool = False


def panels(history, log: bool = False, metric: bool = False) -> list[Panel]:
    """J(Θ) against iterations and, with ``metric``, the metric the history records beside it. Values
    that are not finite (a diverged J), and on a log axis those ≤ 0, are left out of the curves."""
    labels = ("training: mean batch J", "validation J")
    result = [Panel("J(Θ)", _curves(history, (TRAIN_COST, "val_cost"), labels, log), log)]
    if metric:
        name = next(
            (c[len("train_") :] for c in history.columns if c.startswith("train_") and c != TRAIN_COST),
            None,
        )
        if name is None or history[f"train_{name}"].isna().all():
            raise NncliError("this history records no metric beside J, so --metric has nothing to plot")
        labels = (f"training {name}", f"validation {name}")
        result.append(Panel(name, _curves(history, (f"train_{name}", f"val_{name}"), labels, False)))
    return result


def _curves(history, columns: tuple[str, str], labels: tuple[str, str], log: bool) -> list:
    curves = []
    for which, column, label in zip(("training", "validation"), columns, labels, strict=True):
        if column not in history.columns:
            continue
        values = pd.to_numeric(history[column], errors="coerce")
        keep = np.isfinite(values) & ((values > 0) if log else True)
        if keep.any():
            curves.append((which, label, history["iteration"][keep].tolist(), values[keep].tolist()))
    return curves


def whole_ticks(low: float, high: float, count: int = 6) -> list[int]:
    """Up to ``count`` distinct whole numbers spread from ``low`` to ``high``, for an iterations axis."""
    return sorted({round(v) for v in np.linspace(low, high, count)})


def _figure(path: Path, size=(7, 4.5), panels: int = 1):
    """A matplotlib figure and axes for an image to be written to ``path``, whose suffix is checked first."""
    if Path(path).suffix.lower().lstrip(".") not in IMAGE_FORMATS:
        raise NncliError(f"cannot write '{path}': the file name should end in .png, .svg or .pdf")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(1, panels, figsize=size, layout="constrained")


def _save(figure, path: Path) -> None:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    figure.savefig(buffer, format=Path(path).suffix.lower().lstrip("."), dpi=120)
    plt.close(figure)
    atomic_write(path, lambda handle: handle.write(buffer.getvalue()))


def plot_image(history, path: Path, title: str, log: bool = False, metric: bool = False) -> None:
    """Write the cost curves (and the metric's, beside them) to ``path``; its suffix picks the format."""
    shown = panels(history, log, metric)
    figure, axes = _figure(path, (7 * len(shown), 4.5), len(shown))
    for panel, ax in zip(shown, np.atleast_1d(axes), strict=True):
        for which, label, iterations, values in panel.curves:
            ax.plot(
                iterations,
                values,
                label=label,
                color=f"tab:{COLOURS[which]}",
                marker=IMAGE_MARKERS[which],
                linestyle=IMAGE_LINES[which],
                markersize=3 if len(values) < 60 else 0,
            )
        ax.set_xlabel(XLABEL)
        ax.set_ylabel(panel.ylabel)
        ax.xaxis.get_major_locator().set_params(integer=True)
        if panel.log:
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
        ax.legend()
    figure.suptitle(title)
    _save(figure, path)


def plot_confusion(panels: list[tuple[str, list, list]], path: Path, title: str) -> None:
    """Confusion matrices as grids of counts, true classes as rows and predicted classes as columns: one
    panel per (its title, labels, counts) — one target, or each of several labels."""
    side = min(4 + 0.45 * max(len(labels) for _, labels, _ in panels), 16)
    figure, axes = _figure(path, ((side + 1) * len(panels), side), len(panels))
    for (name, labels, counts), ax in zip(panels, np.atleast_1d(axes), strict=True):
        counts = np.asarray(counts)
        shown = ax.imshow(counts, cmap="Blues")
        figure.colorbar(shown, ax=ax, shrink=0.8, label="rows")
        ticks = range(len(labels))
        ax.set_xticks(ticks, [str(label) for label in labels], rotation=90 if len(labels) > 12 else 0)
        ax.set_yticks(ticks, [str(label) for label in labels])
        ax.set_xlabel("predicted class")
        ax.set_ylabel("true class")
        ax.set_title(name)
        if len(labels) <= 30:  # the counts themselves, where they fit
            dark = counts.max() / 2 if counts.size else 0
            for i in ticks:
                for j in ticks:
                    colour = "white" if counts[i, j] > dark else "black"
                    ax.text(j, i, str(counts[i, j]), ha="center", va="center", color=colour, fontsize=8)
    figure.suptitle(title)
    _save(figure, path)


def plot_predictions(panels: list[tuple[str, list, list]], path: Path, title: str) -> None:
    """Predicted against true values, with the line where they are equal: one panel per (its title, true
    values, predictions) — one target, or each of several."""
    figure, axes = _figure(path, (5.5 * len(panels), 5.5), len(panels))
    for (name, truth, predicted), ax in zip(panels, np.atleast_1d(axes), strict=True):
        ax.scatter(truth, predicted, s=8, alpha=0.5)
        low, high = min(min(truth), min(predicted)), max(max(truth), max(predicted))
        ax.plot([low, high], [low, high], color="grey", linewidth=1, label="prediction = true value")
        ax.set_xlabel("true value")
        ax.set_ylabel("prediction")
        ax.set_title(name)
        ax.grid(alpha=0.3)
        ax.legend()
    figure.suptitle(title)
    _save(figure, path)


# plotext draws nothing at all once a value passes about 1e30; larger values are drawn in units of a power
# of ten (a linear axis) or as their logarithms (a log axis), with the ticks labelled in the values' terms.
TERMINAL_LARGEST = 1e15


def _terminal_axis(values: list, panel: Panel):
    """(transform of the values, y label, (ticks, labels) or None) for one terminal panel."""
    if not values:
        return (lambda ys: ys), panel.ylabel, None
    if panel.log:
        low, high = math.floor(math.log10(min(values))), math.ceil(math.log10(max(values)))
        powers = sorted({round(k) for k in np.linspace(low, high, min(6, high - low + 1))})
        labels = [f"1e{k}" if abs(k) > 2 else f"{10.0**k:g}" for k in powers]
        return (lambda ys: np.log10(ys).tolist()), f"{panel.ylabel} (log scale)", (powers, labels)
    top = max(abs(v) for v in values)
    if top <= TERMINAL_LARGEST:
        return (lambda ys: ys), panel.ylabel, None
    power = math.floor(math.log10(top))
    return (lambda ys: (np.asarray(ys) / 10.0**power).tolist()), f"{panel.ylabel} (× 1e{power})", None


def plot_terminal(
    history,
    title: str,
    width: int = 100,
    height: int = 22,
    log: bool = False,
    metric: bool = False,
    colour: bool = False,
) -> str:
    """The curves drawn with text characters, ``width`` columns wide and ``height`` rows per panel;
    training as •, validation as x, in colour only when ``colour``."""
    import plotext

    shown = panels(history, log, metric)
    plotext.main()  # back to the whole figure: clear_figure clears only the active panel
    plotext.clear_figure()
    plotext.theme("clear")
    plotext.limit_size(False, False)  # the size asked for, not the size of a terminal plotext guesses
    plotext.plotsize(width, height * len(shown))
    plotext.subplots(len(shown), 1)
    for row, panel in enumerate(shown, start=1):
        plotext.subplot(row, 1)
        iterations = [x for _, _, xs, _ in panel.curves for x in xs]
        values = [v for _, _, _, vs in panel.curves for v in vs]
        transform, ylabel, yticks = _terminal_axis(values, panel)
        for which, label, xs, ys in panel.curves:
            plotext.plot(
                xs,
                transform(ys),
                label=label,
                marker=MARKERS[which],
                color=COLOURS[which],
            )
        if iterations:
            ticks = whole_ticks(min(iterations), max(iterations))
            plotext.xticks(ticks, [str(t) for t in ticks])
        if yticks:
            plotext.yticks(*yticks)
        plotext.title(title if row == 1 else f"{panel.ylabel} over iterations")
        plotext.xlabel(XLABEL)
        plotext.ylabel(ylabel)
    text = plotext.build()
    return text if colour else plotext.uncolorize(text)

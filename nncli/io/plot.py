"""Plots: J(Θ) against iterations, for training and (when recorded) validation (``plot-cost``); a confusion
matrix, or predictions against true values (``evaluate --plot``).

Images go through matplotlib (PNG, SVG or PDF, by the file's suffix); curves in the terminal through
plotext. Both libraries are imported only when a plot is asked for.
"""

from __future__ import annotations

import io
from pathlib import Path

from nncli.errors import NncliError
from nncli.io.files import atomic_write

IMAGE_FORMATS = ("png", "svg", "pdf")
XLABEL, YLABEL = "iteration", "J(Θ)"


def _curves(history) -> list[tuple[str, list, list]]:
    """(label, iterations, costs) for the training curve and, if recorded, the validation curve."""
    curves = [("training J", history["iteration"].tolist(), history["train_cost"].tolist())]
    if "val_cost" in history.columns and history["val_cost"].notna().any():
        rows = history[history["val_cost"].notna()]
        curves.append(("validation J", rows["iteration"].tolist(), rows["val_cost"].tolist()))
    return curves


def _figure(path: Path, size=(7, 4.5)):
    """A matplotlib figure and axes for an image to be written to ``path``, whose suffix is checked first."""
    if Path(path).suffix.lower().lstrip(".") not in IMAGE_FORMATS:
        raise NncliError(f"cannot write '{path}': the file name should end in .png, .svg or .pdf")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=size, layout="constrained")


def _save(figure, path: Path) -> None:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    figure.savefig(buffer, format=Path(path).suffix.lower().lstrip("."), dpi=120)
    plt.close(figure)
    atomic_write(path, lambda handle: handle.write(buffer.getvalue()))


def plot_image(history, path: Path, title: str) -> None:
    """Write the cost curves to ``path``; its suffix (.png, .svg, .pdf) picks the format."""
    figure, axes = _figure(path)
    for label, iterations, costs in _curves(history):
        axes.plot(iterations, costs, label=label, marker="." if len(costs) < 30 else None)
    axes.set_xlabel(XLABEL)
    axes.set_ylabel(YLABEL)
    axes.set_title(title)
    axes.grid(alpha=0.3)
    axes.legend()
    _save(figure, path)


def plot_confusion(labels: list, counts, path: Path, title: str) -> None:
    """The confusion matrix as a grid of counts: true classes as rows, predicted classes as columns."""
    import numpy as np

    counts = np.asarray(counts)
    side = min(4 + 0.45 * len(labels), 16)
    figure, axes = _figure(path, (side + 1, side))
    shown = axes.imshow(counts, cmap="Blues")
    figure.colorbar(shown, ax=axes, shrink=0.8, label="rows")
    ticks = range(len(labels))
    axes.set_xticks(ticks, [str(label) for label in labels], rotation=90 if len(labels) > 12 else 0)
    axes.set_yticks(ticks, [str(label) for label in labels])
    axes.set_xlabel("predicted class")
    axes.set_ylabel("true class")
    axes.set_title(title)
    if len(labels) <= 30:  # the counts themselves, where they fit
        dark = counts.max() / 2 if counts.size else 0
        for i in ticks:
            for j in ticks:
                colour = "white" if counts[i, j] > dark else "black"
                axes.text(j, i, str(counts[i, j]), ha="center", va="center", color=colour, fontsize=8)
    _save(figure, path)


def plot_predictions(truth: list, predicted: list, path: Path, title: str) -> None:
    """Predicted against true values, with the line where they are equal."""
    figure, axes = _figure(path, (5.5, 5.5))
    axes.scatter(truth, predicted, s=8, alpha=0.5)
    low, high = min(min(truth), min(predicted)), max(max(truth), max(predicted))
    axes.plot([low, high], [low, high], color="grey", linewidth=1, label="prediction = true value")
    axes.set_xlabel("true value")
    axes.set_ylabel("prediction")
    axes.set_title(title)
    axes.grid(alpha=0.3)
    axes.legend()
    _save(figure, path)


def plot_terminal(history, title: str, width: int = 80, height: int = 22) -> str:
    """The cost curves drawn with text characters, without colour codes."""
    import plotext

    plotext.clear_figure()
    plotext.plotsize(width, height)
    plotext.theme("clear")
    for label, iterations, costs in _curves(history):
        plotext.plot(iterations, costs, label=label)
    plotext.title(title)
    plotext.xlabel(XLABEL)
    plotext.ylabel(YLABEL)
    return plotext.uncolorize(plotext.build())

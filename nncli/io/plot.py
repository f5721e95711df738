"""plot-cost: J(Θ) against iterations, for training and (when recorded) validation.

An image through matplotlib (PNG, SVG or PDF, by the file's suffix), or curves drawn in the terminal
through plotext. Both libraries are imported only when a plot is asked for.
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


def plot_image(history, path: Path, title: str) -> None:
    """Write the cost curves to ``path``; its suffix (.png, .svg, .pdf) picks the format."""
    image_format = Path(path).suffix.lower().lstrip(".")
    if image_format not in IMAGE_FORMATS:
        raise NncliError(f"cannot write '{path}': the file name should end in .png, .svg or .pdf")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7, 4.5), layout="constrained")
    for label, iterations, costs in _curves(history):
        axes.plot(iterations, costs, label=label, marker="." if len(costs) < 30 else None)
    axes.set_xlabel(XLABEL)
    axes.set_ylabel(YLABEL)
    axes.set_title(title)
    axes.grid(alpha=0.3)
    axes.legend()
    buffer = io.BytesIO()
    figure.savefig(buffer, format=image_format, dpi=120)
    plt.close(figure)
    atomic_write(path, lambda handle: handle.write(buffer.getvalue()))


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

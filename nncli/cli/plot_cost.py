"""``nncli plot-cost``: J(Θ) against iterations, in the terminal or as an image."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import click

from nncli.cli.common import CONTEXT, reports_errors
from nncli.errors import NncliError


@click.command("plot-cost", context_settings=CONTEXT)
@click.argument("history", type=click.Path(path_type=Path))
@click.option("-o", "--output", type=click.Path(path_type=Path), help="Write an image (.png, .svg or .pdf).")
@click.option("--title", help="The plot's title.")
@click.option("--log", is_flag=True, help="A log scale for J (a diverged run's huge J flattens the rest).")
@click.option("--metric", is_flag=True, help="Plot the accuracy (or RMSE) beside J.")
@reports_errors
def plot_cost(history, output, title, log, metric):
    """Plot J(Θ) against iterations from HISTORY.csv or a run folder holding one.

    With no -o, the curves are drawn in the terminal.

    \b
    Example:
      nncli plot-cost runs/digits
      nncli plot-cost runs/digits/history.csv -o cost.png
      nncli plot-cost runs/digits --log --metric
    """
    from nncli.io.datasets import read_history
    from nncli.io.plot import plot_image, plot_terminal

    path = history / "history.csv" if history.is_dir() else history
    frame = read_history(path)
    if len(frame) == 0:
        raise NncliError(f"'{path}' holds no epochs yet, so there is nothing to plot")
    title = title or f"J(Θ) over iterations — {path.parent.name or path.stem}"
    if output is None:
        width = min(max(shutil.get_terminal_size((100, 24)).columns, 40), 240)
        colour = sys.stdout.isatty() and not os.environ.get("NO_COLOR")
        click.echo(plot_terminal(frame, title, width=width, log=log, metric=metric, colour=colour))
    else:
        plot_image(frame, output, title, log=log, metric=metric)
        click.echo(f"nncli: wrote {output}", err=True)

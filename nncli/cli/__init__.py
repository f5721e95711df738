"""The command line: one module per command, each a thin click command over the library, registered on
``main`` here. ``nncli.cli.common`` is where errors and signals become exit codes.
"""

from __future__ import annotations

import click

from nncli import __version__
from nncli.cli.common import CONTEXT
from nncli.cli.config_show import config_group
from nncli.cli.evaluate import evaluate
from nncli.cli.gradcheck import gradcheck
from nncli.cli.info import info
from nncli.cli.init import init
from nncli.cli.plot_cost import plot_cost
from nncli.cli.predict import predict
from nncli.cli.trace import trace
from nncli.cli.train import train


@click.group(context_settings=CONTEXT)
@click.version_option(__version__, "-V", "--version", prog_name="nncli")
def main() -> None:
    """Train fully connected neural networks from a YAML config and a CSV file.

    \b
    Example:
      nncli train configs/iris.yaml
      nncli predict runs/iris/model.npz datasets/iris_test.csv --proba
      nncli gradcheck
      nncli plot-cost runs/iris -o cost.png

    Exit codes: 0 success, 1 a check failed, 2 bad input or usage, 3 training diverged,
    130 / 143 training stopped by SIGINT / SIGTERM (everything saved; --resume continues).
    """


for command in (init, train, predict, evaluate, info, gradcheck, trace, plot_cost, config_group):
    main.add_command(command)

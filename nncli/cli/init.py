"""``nncli init``: a first, commented config chosen from a CSV file's columns and size."""

from __future__ import annotations

from pathlib import Path

import click

from nncli.cli.common import CONTEXT, reports_errors, standard_output
from nncli.errors import NncliError


@click.command(context_settings=CONTEXT)
@click.argument("data", type=click.Path(path_type=Path))
@click.option(
    "--target", help="The column to predict, or several separated by commas. [default: the last column]"
)
@click.option(
    "-o", "--output", type=click.Path(path_type=Path), help="Write the config here (never over a file)."
)
@reports_errors
def init(data, target, output):
    """Write a commented config for DATA (a CSV file): the task from the target column, the features
    that hold numbers, a first network, Adam's α, the epochs and a validation split.

    \b
    Example:
      nncli init my.csv > my.yaml && nncli train my.yaml
      nncli init houses.csv --target price -o houses.yaml
    """
    from nncli.config import config_from_text
    from nncli.io.files import write_new_text
    from nncli.starter_config import starter_config

    if output is not None and (output.exists() or output.is_symlink()):
        raise NncliError(
            f"'{output}' exists already; nncli init never replaces a file, so choose another name"
        )
    folder = output.parent if output is not None else Path.cwd()
    text = starter_config(data, target, folder)
    config_from_text(text, output or Path("init.yaml"), folder.resolve())  # it loads as it will be read
    if output is None:
        standard_output().write(text)
        return
    try:
        write_new_text(output, text)
    except FileExistsError:
        raise NncliError(f"'{output}' appeared while nncli init ran; it is left as it is") from None
    click.echo(f"nncli: wrote {output}; train with: nncli train {output}", err=True)

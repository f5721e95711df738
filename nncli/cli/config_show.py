"""``nncli config show``: the config as training would read it, every default filled in and every path
resolved, so that what a run will do can be seen before it runs."""

from __future__ import annotations

from pathlib import Path

import click

from nncli.cli.common import CONTEXT, reports_errors


@click.group("config", context_settings=CONTEXT)
def config_group() -> None:
    """Look at configs."""


@config_group.command("show", context_settings=CONTEXT)
@click.argument("config", type=click.Path(path_type=Path, allow_dash=True))
@click.option(
    "--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a config key (repeatable)."
)
@reports_errors
def show(config, overrides):
    """Print CONFIG (or - for stdin) resolved, as YAML: every key with its value or default, paths made
    absolute, --set applied. The output is itself a config that trains the same run.

    \b
    Example:
      nncli config show configs/digits.yaml --set training.alpha=0.1
      nncli init my.csv | nncli config show -
    """
    from nncli.config import as_yaml, load_config

    resolved = load_config(config, list(overrides)).to_dict()
    resolved["output"]["dir"] = str(Path(resolved["output"]["dir"]).resolve())
    click.echo(as_yaml(resolved), nl=False)

"""``nncli info``: what a model file holds, readable without NumPy: layers, columns, classes,
standardization and how its training ended."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import click

from nncli.cli.common import CONTEXT, reports_errors

WIDTH = 100  # columns of the text report; lists of names are cut to fit


@click.command(context_settings=CONTEXT)
@click.argument("model", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the record as JSON (every feature and number).")
@reports_errors
def info(model, as_json):
    """Show what MODEL (a model.npz, or a run folder holding one) holds.

    \b
    Example:
      nncli info runs/digits
      nncli info runs/digits/model.npz --json | jq '.training.splits.test'
    """
    from nncli.io.model_file import model_path
    from nncli.pipeline import load_trained_model
    from nncli.reports.model_info import model_info

    path = model_path(model)
    record = model_info(path, load_trained_model(path))
    click.echo(json.dumps(record, indent=2) if as_json else info_text(record))


def listed(prefix: str, values: list) -> str:
    """``prefix`` and as many of ``values`` as fit in ``WIDTH`` columns, then how many there are in all."""
    line = prefix + ", ".join(map(str, values))
    if len(line) <= WIDTH:
        return line
    more = f", … ({len(values)} in all)"
    shown = []
    for value in values:
        if len(prefix + ", ".join([*shown, str(value)]) + more) > WIDTH:
            break
        shown.append(str(value))
    return prefix + ", ".join(shown) + more


def shape(values: list) -> str:
    return "×".join(map(str, values))


def info_text(record: dict) -> str:
    lines = [
        f"model      {record['file']} (format {record['format_version']}, "
        f"written by nncli {record['nncli_version'] or 'unknown'})",
        f"network    {record['summary']}, {record['parameters']:,} parameters, {record['dtype']}",
    ]
    classes, targets = record["classes"], record["targets"]
    if record["task"] == "classification":
        what = f"task       classification of {targets[0]!r} into {len(classes)} classes: "
        lines.append(listed(what, classes))
    elif record["task"] == "multilabel":
        lines.append(listed(f"task       {len(targets)} labels of 0 or 1, one sigmoid unit each: ", targets))
    else:
        lines.append(listed("task       regression of ", [repr(name) for name in targets]))
    lines.append(listed(f"features   {len(record['features'])}: ", record["features"]))
    scale = record["standardization"]
    mean, std = scale["mean"], scale["std"]
    lines.append(
        f"scaling    x ↦ (x − mean) / std per feature: mean {min(mean):.4g} … {max(mean):.4g}, "
        f"std {min(std):.4g} … {max(std):.4g}"
    )
    if record["task"] == "regression":
        for name, mean, std in zip(targets, scale["target_mean"], scale["target_std"], strict=True):
            y = "y" if len(targets) == 1 else f"{name}"
            lines.append(f"           {y} ↦ ({y} − {mean:.6g}) / {std:.6g}")
    lines += [
        "",
        f"{'layer':<6} {'type':<8} {'in':<12} {'out':<12} {'units':<11} {'arrays':<26} {'parameters':>10}",
    ]
    for row in record["layers"]:
        arrays = ", ".join(f"{name} {shape(dims)}" for name, dims in row["arrays"].items()) or "—"
        lines.append(
            f"{row['layer']:<6} {row['type']:<8} {shape(row['in']):<12} {shape(row['out']):<12} "
            f"{row['activation'] or '—':<11} {arrays:<26} {row['parameters']:>10,}"
        )
    output = record["output"]
    lines.append(f"output     {output['units']} {output['name']} unit(s); loss {output['loss']}")
    lines += ["", *training_lines(record)]
    return "\n".join(lines)


def training_lines(record: dict) -> list[str]:
    training, settings = record["training"], record["trained_with"]
    if training is None:
        return ["training   not recorded (the file was written by an nncli before 0.2)"]
    how = f"{training['epochs']} epochs on the {training['engine'] or 'unknown'} engine"
    if training["seconds"] is not None:
        how += f" in {training['seconds']:.2f} s"
    if training["stop_reason"] is None:
        how += ", still running when this file was written (a checkpoint's model)"
    else:
        how += f", {training['stop_reason'].replace('_', ' ')}"
    if training["best_epoch"] is not None:
        how += f"; the weights are epoch {training['best_epoch']}'s, the best on validation"
    lines = textwrap.wrap(how, WIDTH, initial_indent="training   ", subsequent_indent=" " * 11)
    given = ", ".join(f"{key} {value}" for key, value in settings.items() if value is not None)
    if given:
        lines += textwrap.wrap(given, WIDTH, initial_indent=" " * 11, subsequent_indent=" " * 11)
    splits = training["splits"] or {}
    metric = training["metric"] or "metric"
    present = {name: figures for name, figures in splits.items() if figures}
    if present:
        lines.append(f"           {'split':<11} {'rows':>7}  {'J':>10}  {metric:>10}")
        for name, figures in present.items():
            cost, value = _number(figures.get("cost")), _number(figures.get(metric))
            lines.append(f"           {name:<11} {figures.get('rows', 0):>7}  {cost:>10}  {value:>10}")
    return lines


def _number(value) -> str:
    return "—" if value is None else f"{value:.4f}"

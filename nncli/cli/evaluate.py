"""``nncli evaluate``: how well a model does on a table holding its target column — per-class precision,
recall, F1 and the confusion matrix, or RMSE, MAE and R²; as text, JSON and a plot."""

from __future__ import annotations

import json
from pathlib import Path

import click

from nncli.cli.common import CONTEXT, refuse_to_destroy, reports_errors

AVERAGES = (("macro avg", "macro_avg"), ("weighted avg", "weighted_avg"))


@click.command(context_settings=CONTEXT)
@click.argument("model", type=click.Path(path_type=Path))
@click.argument("data", type=click.Path(path_type=Path, allow_dash=True))
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON instead of text.")
@click.option(
    "-o", "--output", type=click.Path(path_type=Path), help="Also write the report as JSON to this file."
)
@click.option(
    "--plot",
    type=click.Path(path_type=Path),
    help="Draw the confusion matrix (or, for regression, predictions against true values) to a .png, .svg "
    "or .pdf.",
)
@reports_errors
def evaluate(model, data, as_json, output, plot):
    """Compare MODEL's predictions with the target column of DATA (a CSV file, or - for stdin).

    Classification: accuracy, per-class precision, recall, F1 and support, their macro and weighted
    averages, and the confusion matrix (true classes as rows). Regression: RMSE, MAE and R², in the
    target's own units.

    \b
    Example:
      nncli evaluate runs/digits datasets/digits_test.csv --plot confusion.png
      nncli evaluate runs/diabetes datasets/diabetes_test.csv --json | jq .r2
    """
    from nncli.io.datasets import CsvSource
    from nncli.io.files import atomic_write_text
    from nncli.io.model_file import data_format, model_path
    from nncli.pipeline import evaluate_table, load_trained_model

    path = model_path(model)
    for written in (output, plot):
        refuse_to_destroy(written, ((data, "the input CSV"), (path, "the model file")))
    trained = load_trained_model(path)
    source = CsvSource(None if str(data) == "-" else data, *data_format(trained.meta))
    result = evaluate_table(trained, source)
    report = {"model": str(path), "data": source.name, **result.report}
    text = json.dumps(report, indent=2) + "\n"
    if output is not None:
        atomic_write_text(output, text)
    if plot is not None:
        draw(report, result, plot, f"{path.parent.name or path.stem} on {Path(source.name).name}")
    click.echo(text if as_json else full_text(report), nl=not as_json)
    for written in (output, plot):
        if written is not None:
            click.echo(f"nncli: wrote {written}", err=True)


# Panels drawn by --plot at most: a model with more targets plots its first ones.
MOST_PANELS = 8


def draw(report: dict, result, plot: Path, title: str) -> None:
    """The confusion matrices (or predicted against true values) of the target, or of each target."""
    from nncli.io.plot import plot_confusion, plot_predictions

    per_target = report.get("targets") or {None: report}
    names = list(per_target)[:MOST_PANELS]
    if report["task"] == "regression":
        panels = [(name or "", result.truth[k], result.predicted[k]) for k, name in enumerate(names)]
        plot_predictions(panels, plot, title)
        return
    panels = []
    for name in names:
        matrix = per_target[name]["confusion_matrix"]
        panels.append((name or "", matrix["labels"], matrix["rows_true_columns_predicted"]))
    plot_confusion(panels, plot, title)


def full_text(report: dict) -> str:
    """The report of the target, or each target's under its name."""
    if "targets" not in report:
        return report_text(report)
    parts = []
    for name, part in report["targets"].items():
        parts += [f"target {name!r}", report_text({**part, "data": report["data"]}), ""]
    return "\n".join(parts).rstrip("\n")


def report_text(report: dict) -> str:
    if report["task"] == "regression":
        return "\n".join(
            [
                f"{report['rows']} rows of '{report['data']}', in the target's own units:",
                f"  RMSE  {report['rmse']:.6g}",
                f"  MAE   {report['mae']:.6g}",
                f"  R²    {_figure(report['r2'])}",
            ]
        )
    rows = report["rows"]
    lines = [
        f"accuracy {report['accuracy']:.4f} ({report['correct']} of {rows} rows of '{report['data']}')",
        "",
    ]
    width = max(12, *(len(str(row["class"])) for row in report["classes"]))
    lines.append(f"{'class':<{width}}  {'precision':>9}  {'recall':>9}  {'f1-score':>9}  {'support':>8}")
    for row in report["classes"]:
        lines.append(_row(str(row["class"]), row, width))
    lines.append("")
    for name, key in AVERAGES:
        lines.append(_row(name, report[key], width))
    matrix = report["confusion_matrix"]
    labels = [str(label) for label in matrix["labels"]]
    counts = matrix["rows_true_columns_predicted"]
    cell = max(3, *(len(label) for label in labels), *(len(str(n)) for row in counts for n in row))
    corner = "true \\ predicted"
    first = max(len(corner), *(len(label) for label in labels))
    lines += ["", "confusion matrix: true class in rows, predicted class in columns"]
    lines.append(f"{corner:<{first}}  " + " ".join(f"{label:>{cell}}" for label in labels))
    for label, row in zip(labels, counts, strict=True):
        lines.append(f"{label:<{first}}  " + " ".join(f"{n:>{cell}}" for n in row))
    return "\n".join(lines)


def _row(name: str, figures: dict, width: int) -> str:
    return (
        f"{name:<{width}}  {figures['precision']:>9.4f}  {figures['recall']:>9.4f}  {figures['f1']:>9.4f}  "
        f"{figures['support']:>8}"
    )


def _figure(value) -> str:
    return "— (the target is constant in these rows)" if value is None else f"{value:.4f}"

"""``nncli predict``: apply a model to the rows of a CSV file and write a CSV of predictions."""

from __future__ import annotations

import io
from pathlib import Path

import click

from nncli.cli.common import CONTEXT, refuse_to_destroy, reports_errors, standard_output


@click.command(context_settings=CONTEXT)
@click.argument("model", type=click.Path(path_type=Path))
@click.argument("data", type=click.Path(path_type=Path, allow_dash=True))
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path, allow_dash=True),
    help="Write the CSV here instead of stdout (- for stdout).",
)
@click.option("--proba", is_flag=True, help="Add a p_<class> column per class.")
@click.option(
    "--keep",
    "keep",
    multiple=True,
    metavar="COL[,COL…]",
    help="Copy these input columns (an id) in front of the predictions (repeatable).",
)
@reports_errors
def predict(model, data, output, proba, keep):
    """Apply MODEL to the rows of DATA (a CSV file, or - for stdin) and print a CSV of predictions.

    Features are matched by column name, so extra columns and the target may be present; with the
    target present, the accuracy (or RMSE) goes to stderr.

    \b
    Example:
      nncli predict runs/iris/model.npz datasets/iris_test.csv --proba > predictions.csv
      cat rows.csv | nncli predict runs/iris/model.npz - | cut -d, -f1
      nncli predict runs/iris datasets/iris_test.csv --keep id -o - | join -t, ids.csv -
    """
    from nncli.io.datasets import CsvSource
    from nncli.io.files import atomic_write
    from nncli.io.model_file import data_format, model_path
    from nncli.pipeline import load_trained_model, score
    from nncli.pipeline import predict as predict_rows

    to_stdout = output is None or str(output) == "-"
    refuse_to_destroy(output, ((data, "the input CSV"), (model_path(model), "the model file")))
    kept = [name.strip() for item in keep for name in item.split(",") if name.strip()]
    trained = load_trained_model(model)
    source = CsvSource(None if str(data) == "-" else data, *data_format(trained.meta))
    if to_stdout:
        handle = standard_output()
        scores = predict_rows(trained, source, handle, proba, kept)
        handle.flush()
    else:
        outcome = []

        def write(binary):
            text = io.TextIOWrapper(binary, encoding="utf-8", newline="")
            outcome.append(predict_rows(trained, source, text, proba, kept))
            text.flush()
            text.detach()

        atomic_write(output, write)
        scores = outcome[0]
    if scores.rows == 0:
        click.echo(f"nncli: '{source.name}' has no data rows, so there are no predictions", err=True)
    if scores.unseen:
        click.echo(
            f"nncli: warning: {scores.unseen} of {scores.rows} rows of '{source.name}' have a class the "
            f"model never saw in training (such as {scores.unseen_example!r}); they count as wrong",
            err=True,
        )
    figure = score(trained, scores)
    if figure is not None:
        name, value = figure
        click.echo(f"nncli: {name} {value:.4f} on {scores.rows} rows of '{source.name}'", err=True)

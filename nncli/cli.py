"""The command line: thin click commands over ``pipeline``, and the one place errors become exit codes.

Exit codes: 0 success, 1 a check failed (gradcheck), 2 bad input or usage, 3 training diverged,
130 / 143 training stopped by SIGINT / SIGTERM after saving everything.
stdout carries data (predictions, gradcheck reports, terminal plots); progress and messages go to stderr.
"""

from __future__ import annotations

import contextlib
import functools
import io
import os
import shlex
import signal
import sys
import warnings
from pathlib import Path

import click
import numpy as np

from nncli import __version__
from nncli.errors import EXIT_BAD_INPUT, EXIT_CHECK_FAILED, EXIT_DIVERGED, Interrupted, NncliError
from nncli.model.gradcheck import DEFAULT_EPSILON, DEFAULT_TOLERANCE

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


def fail(message: str, code: int) -> None:
    click.echo(f"nncli: error: {message}", err=True)
    sys.exit(code)


def reports_errors(command):
    """Turn a user's mistake (NncliError), an unwritable file or a signal into one line on stderr and its
    exit code; a reader of stdout that went away (``| head``) ends the command quietly, as Unix tools do.
    NumPy's warnings about a computation (overflow in exp, say) never reach the user: the results they
    concern are checked and explained where it matters."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            with warnings.catch_warnings(), np.errstate(all="ignore"), stopped_by_signals():
                warnings.simplefilter("ignore", RuntimeWarning)
                return command(*args, **kwargs)
        except NncliError as error:
            fail(str(error), error.exit_code)
        except BrokenPipeError:
            _quiet_broken_pipe()
        except OSError as error:
            where = f" '{error.filename}'" if error.filename else ""
            fail(f"cannot read or write{where}: {error.strerror or error}", EXIT_BAD_INPUT)
        except Interrupted as stop:
            detail = f" {stop.detail}" if stop.detail else ""
            fail(f"stopped by {signal.Signals(stop.signum).name}{detail}", 128 + stop.signum)
        except KeyboardInterrupt:
            fail(
                "stopped at once by a second interrupt; files from the last checkpoint are kept",
                128 + signal.SIGINT,
            )

    return wrapper


def _quiet_broken_pipe() -> None:
    """The reader of stdout went away: exit as a process killed by SIGPIPE would, saying nothing (and
    keeping Python from reporting the failed flush of stdout at exit)."""
    with contextlib.suppress(OSError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    sys.exit(128 + signal.SIGPIPE)


@contextlib.contextmanager
def stopped_by_signals():
    """While active, SIGINT and SIGTERM raise Interrupted, so that a command stops at once and cleanly."""

    def handle(signum, frame):
        raise Interrupted(signum)

    previous = {signum: signal.signal(signum, handle) for signum in StopOnSignal.SIGNALS}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def standard_output():
    """sys.stdout, or a NncliError when it is closed (``>&-``): writing nothing and exiting 0 would hide
    that the predictions went nowhere."""
    if sys.stdout is None:
        raise NncliError("standard output is closed; redirect it to a file, or pass -o FILE")
    return sys.stdout


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


# ------------------------------------------------------------------ train


@main.command(context_settings=CONTEXT)
@click.argument("config", type=click.Path(path_type=Path))
@click.option(
    "--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a config key (repeatable)."
)
@click.option("--epochs", type=click.IntRange(min=1), help="Override training.epochs.")
@click.option("--seed", type=click.IntRange(min=0), help="Override training.seed.")
@click.option("--out", type=click.Path(path_type=Path), help="Override output.dir.")
@click.option("--overwrite", is_flag=True, help="Replace a run already in the output folder.")
@click.option("--resume", is_flag=True, help="Continue the output folder's checkpointed run, bit for bit.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar and no summary.")
@reports_errors
def train(config, overrides, epochs, seed, out, overwrite, resume, quiet):
    """Train the network CONFIG describes; write model.npz, history.csv, metrics.json, checkpoint.npz.

    Ctrl-C (or SIGTERM) finishes the current step, saves everything and exits 130 (143); --resume
    continues from there, and ends with the weights an uninterrupted run would have.

    \b
    Example:
      nncli train configs/digits.yaml --set training.alpha=0.05 --epochs 50 --out runs/try1
      nncli train configs/digits.yaml --resume --epochs 120
    """
    from tqdm import tqdm

    from nncli.config import load_config
    from nncli.pipeline import divergence_advice, train_from_config

    values = {
        "training.epochs": epochs,
        "training.seed": seed,
        "output.dir": str(out.resolve()) if out else None,
    }
    cfg = load_config(config, list(overrides), {k: v for k, v in values.items() if v is not None})
    bar = tqdm(total=cfg.training.epochs, unit="epoch", file=sys.stderr, disable=True if quiet else None)
    metric_name = "acc" if cfg.data.task == "classification" else "rmse"

    def show(record):
        figures = {"J": f"{record.train_cost:.4g}"}
        if record.val_cost is not None:
            figures["val J"] = f"{record.val_cost:.4g}"
        if record.val_metric is not None:
            figures["val " + metric_name] = f"{record.val_metric:.4g}"
        bar.set_postfix(figures, refresh=False)
        bar.update()

    def start(done: int, epochs: int) -> None:
        stop.training = True
        bar.reset(total=epochs)
        bar.update(done)  # a resumed run starts part of the way along

    def note(text: str) -> None:
        bar.clear()
        click.echo(text, err=True)

    with bar, StopOnSignal() as stop:
        run = train_from_config(
            cfg, overwrite, resume, on_epoch=show, should_stop=stop.requested, on_note=note, on_start=start
        )
    if not quiet:
        click.echo(summary(run), err=True)
    reason = run.history.stop_reason
    if reason == "interrupted":
        name = signal.Signals(stop.signum).name
        again = resume_command(config, overrides, run.epochs, seed, out, quiet)
        click.echo(
            f"nncli: stopped by {name} after epoch {len(run.history)}; model, history and checkpoint are "
            f"saved in '{run.directory}'; continue with: {again}",
            err=True,
        )
        sys.exit(128 + stop.signum)
    if reason == "diverged":
        fail(
            f"training diverged in epoch {len(run.history) + 1}: J became nan or inf; the best weights "
            f"so far are saved in '{run.directory}'; {divergence_advice(cfg, run.metrics['train']['rows'])}",
            EXIT_DIVERGED,
        )


def resume_command(config, overrides, epochs, seed, out, quiet) -> str:
    """The command that continues an interrupted run: every option it was started with, and its epochs."""
    words = ["nncli", "train", str(config), "--resume", "--epochs", str(epochs)]
    for item in overrides:
        if item.partition("=")[0].strip() != "training.epochs":
            words += ["--set", item]
    if seed is not None:
        words += ["--seed", str(seed)]
    if out is not None:
        words += ["--out", str(out)]
    if quiet:
        words.append("--quiet")
    return shlex.join(words)


class StopOnSignal:
    """While active, SIGINT and SIGTERM ask training to stop after the current step instead of killing
    the process; a second signal stops at once. Before training has started (while the data loads)
    there is nothing to save, and the first signal stops at once (Interrupted)."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.signum: int | None = None
        self.training = False
        self._previous = {}

    def requested(self) -> bool:
        return self.signum is not None

    def _handle(self, signum, frame) -> None:
        if not self.training:
            raise Interrupted(signum, "before training started; nothing was written")
        if self.signum is not None:
            raise KeyboardInterrupt
        self.signum = signum

    def __enter__(self) -> StopOnSignal:
        for signum in self.SIGNALS:
            self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)


def summary(run) -> str:
    m = run.metrics
    name = m["metric"]
    sizes = "-".join(map(str, m["layer_sizes"]))
    lines = [
        f"nncli: trained {sizes} ({m['parameters']:,} parameters) for {m['epochs']} epochs in "
        f"{m['seconds']:.2f} s on the {m['engine']} engine ({m['stop_reason'].replace('_', ' ')})"
    ]
    for split in ("train", "validation", "test"):
        if m[split] is not None:
            figures = m[split]
            lines.append(
                f"  {split:<10}  J {figures['cost']:.4f}   {name} {figures[name]:.4f}"
                f"   ({figures['rows']} rows)"
            )
    lines.append(f"  wrote model.npz, history.csv, metrics.json to {run.directory}")
    return "\n".join(lines)


# ------------------------------------------------------------------ predict


@main.command(context_settings=CONTEXT)
@click.argument("model", type=click.Path(path_type=Path))
@click.argument("data", type=click.Path(path_type=Path, allow_dash=True))
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path, allow_dash=True),
    help="Write the CSV here instead of stdout (- for stdout).",
)
@click.option("--proba", is_flag=True, help="Add a p_<class> column per class.")
@reports_errors
def predict(model, data, output, proba):
    """Apply MODEL to the rows of DATA (a CSV file, or - for stdin) and print a CSV of predictions.

    Features are matched by column name, so extra columns and the target may be present; with the
    target present, the accuracy (or RMSE) goes to stderr.

    \b
    Example:
      nncli predict runs/iris/model.npz datasets/iris_test.csv --proba > predictions.csv
      cat rows.csv | nncli predict runs/iris/model.npz - | cut -d, -f1
    """
    from nncli.io.datasets import CsvSource
    from nncli.io.files import atomic_write, same_file
    from nncli.io.model_file import data_format, model_path
    from nncli.pipeline import load_trained_model, score
    from nncli.pipeline import predict as predict_rows

    to_stdout = output is None or str(output) == "-"
    if not to_stdout:
        for other, what in ((data, "the input CSV"), (model_path(model), "the model file")):
            if str(other) != "-" and same_file(output, other):
                raise NncliError(
                    f"-o '{output}' is {what}; writing there would destroy it, so choose another file"
                )
    trained = load_trained_model(model)
    source = CsvSource(None if str(data) == "-" else data, *data_format(trained.meta))
    if to_stdout:
        handle = standard_output()
        scores = predict_rows(trained, source, handle, proba)
        handle.flush()
    else:
        outcome = []

        def write(binary):
            text = io.TextIOWrapper(binary, encoding="utf-8", newline="")
            outcome.append(predict_rows(trained, source, text, proba))
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


# ------------------------------------------------------------------ gradcheck


@main.command(context_settings=CONTEXT)
@click.argument("config", required=False, type=click.Path(path_type=Path))
@click.option(
    "--epsilon",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help=f"ε of the centred differences. [default: {DEFAULT_EPSILON:g}; with CONFIG, divided by the sample's "
    f"largest |x| where it is above 1, so that ε·x stays {DEFAULT_EPSILON:g}]",
)
@click.option(
    "--tolerance",
    type=click.FloatRange(min=0, min_open=True),
    default=DEFAULT_TOLERANCE,
    show_default=True,
    help="Largest relative difference that passes.",
)
@click.option(
    "--samples",
    type=click.IntRange(min=1),
    default=10,
    show_default=True,
    help="Rows of the config's data to check on.",
)
@click.option(
    "--max-params",
    type=click.IntRange(min=1),
    default=2000,
    show_default=True,
    help="Check a seeded subset of about this many parameters in a larger network.",
)
@reports_errors
def gradcheck(config, epsilon, tolerance, samples, max_params):
    """Check backpropagation against centred differences (J(θ+ε) − J(θ−ε)) / 2ε.

    With no CONFIG, the lecture's check network (3-5-3, m = 5) with λ = 0 and λ = 3; with CONFIG,
    its architecture, output and λ on a seeded sample of its data. Prints the relative difference
    ‖num − bp‖ / ‖num + bp‖ per array and PASS or FAIL; exits 0 on pass, 1 on fail.

    \b
    Example:
      nncli gradcheck && echo "backprop is right"
      nncli gradcheck configs/digits.yaml --samples 20 --tolerance 1e-6
    """
    from nncli import gradcheck as check
    from nncli.config import load_config
    from nncli.model.gradcheck import lecture_check_problem
    from nncli.pipeline import gradcheck_config

    if config is None:
        net, X, Y = lecture_check_problem()
        runs = [
            (f"lecture check network, λ = {lam:g}", net, check(net, X, Y, lam, epsilon or DEFAULT_EPSILON))
            for lam in (0.0, 3.0)
        ]
    else:
        cfg = load_config(config)
        net, report, m = gradcheck_config(cfg, samples, epsilon, max_params)
        runs = [(f"{config}, λ = {cfg.training.lambda_:g}, m = {m}", net, report)]
    passed = True
    for title, net, report in runs:
        ok = report.passed(tolerance)
        passed &= ok
        click.echo(format_report(title, net, report, tolerance, ok))
    click.echo("PASS" if passed else "FAIL")
    sys.exit(0 if passed else EXIT_CHECK_FAILED)


def format_report(title, net, report, tolerance, ok) -> str:
    lines = [
        f"{title}: {net.describe()}, ε = {report.epsilon:.3g}, tolerance {tolerance:g}",
        f"  {'array':<6} {'checked':>12}  relative difference",
    ]
    for a in report.arrays:
        lines.append(f"  {a.name:<6} {a.checked:>5} of {a.size:<5}  {a.relative_difference:.3e}")
    lines.append(
        f"  {'all':<6} {report.checked:>12}  {report.relative_difference:.3e}  {'PASS' if ok else 'FAIL'}"
    )
    if report.at_kinks:
        lines.append(
            f"  {report.at_kinks} parameter(s) left out: their probes crossed a ReLU kink or moved a "
            f"max-pooling window's maximum at every ε tried, where a centred difference means nothing"
        )
    return "\n".join(lines)


# ------------------------------------------------------------------ plot-cost


@main.command("plot-cost", context_settings=CONTEXT)
@click.argument("history", type=click.Path(path_type=Path))
@click.option("-o", "--output", type=click.Path(path_type=Path), help="Write an image (.png, .svg or .pdf).")
@click.option("--title", help="The plot's title.")
@reports_errors
def plot_cost(history, output, title):
    """Plot J(Θ) against iterations from HISTORY.csv or a run folder holding one.

    With no -o, the curves are drawn in the terminal.

    \b
    Example:
      nncli plot-cost runs/digits
      nncli plot-cost runs/digits/history.csv -o cost.png
    """
    from nncli.io.datasets import read_history
    from nncli.io.plot import plot_image, plot_terminal

    path = history / "history.csv" if history.is_dir() else history
    frame = read_history(path)
    if len(frame) == 0:
        raise NncliError(f"'{path}' holds no epochs yet, so there is nothing to plot")
    title = title or f"J(Θ) over iterations — {path.parent.name or path.stem}"
    if output is None:
        click.echo(plot_terminal(frame, title))
    else:
        plot_image(frame, output, title)
        click.echo(f"nncli: wrote {output}", err=True)


if __name__ == "__main__":
    main()

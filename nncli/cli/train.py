"""``nncli train``: train the network a config describes, with a progress bar; stop cleanly on a signal."""

from __future__ import annotations

import shlex
import signal
import sys
from pathlib import Path

import click

from nncli.cli.common import CONTEXT, SIGNALS, fail, reports_errors
from nncli.errors import EXIT_DIVERGED, Interrupted


@click.command(context_settings=CONTEXT)
@click.argument("config", type=click.Path(path_type=Path, allow_dash=True))
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
    several = isinstance(cfg.data.target, tuple)
    metric_name = "rmse" if cfg.data.task == "regression" else ("label acc" if several else "acc")

    def show(record):
        figures = {"mean batch J": f"{record.train_cost:.4g}"}
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
        for signum in SIGNALS:
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
    lines.append(
        "  (J over each whole split, final weights; the bar's mean batch J averages the epoch's batch J)"
    )
    lines.append(f"  wrote model.npz, history.csv, metrics.json to {run.directory}")
    return "\n".join(lines)

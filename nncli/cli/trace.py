"""``nncli trace``: backpropagation for one example in the lecture's notation, number by number."""

from __future__ import annotations

import json
from pathlib import Path

import click

from nncli.cli.common import CONTEXT, reports_errors

WIDTH = 100
CELL = 11  # characters per number
SHOWN = 8  # rows and columns of a matrix shown before "…"


@click.command(context_settings=CONTEXT)
@click.argument("config", required=False, type=click.Path(path_type=Path, allow_dash=True))
@click.option(
    "--example", "example", type=int, default=1, show_default=True, help="i, the example traced (1-based)."
)
@click.option(
    "--rows",
    type=click.IntRange(min=1, max=10_000),
    default=None,
    help="m, the batch's rows, from the start of the training split. [default: 5 (lecture), 10 (CONFIG)]",
)
@click.option(
    "--lambda", "lambda_", type=click.FloatRange(min=0), default=None, help="λ. [default: 0, or CONFIG's]"
)
@click.option("--json", "as_json", is_flag=True, help="Print every number as JSON (for a notebook).")
@reports_errors
def trace(config, example, rows, lambda_, as_json):
    """Follow one example through forward and back propagation in the lecture's notation: a^(1) = x,
    each z^(l) and a^(l), δ^(L) = a^(L) − y, δ^(l) = (Θ^(l))ᵀ δ^(l+1) .* g′(z^(l)), the Δ^(l) it adds, and
    the batch's D^(l), with centred differences beside a few entries of D.

    With no CONFIG, the lecture's check network (3-5-3, sigmoid units, m = 5); with CONFIG, its network
    as training starts (its seed's weights) on the first rows of its training split.

    \b
    Example:
      nncli trace --example 2
      nncli trace configs/iris.yaml --rows 8 --lambda 1 --json > trace.json
    """
    from nncli.reports.trace import trace as trace_example

    net, X, Y, title = _problem(config, rows, lambda_)
    lam = lambda_ if lambda_ is not None else title[1]
    result = trace_example(net, X, Y, example, lam)
    click.echo(json.dumps(trace_record(result), indent=2) if as_json else trace_text(result, net, title[0]))


def _problem(config, rows, lambda_):
    """(network, X, Y, (title, default λ)) of the lecture's check problem or of CONFIG."""
    import numpy as np

    if config is None:
        from nncli.model.gradcheck import lecture_check_problem

        net, X, Y = lecture_check_problem()
        if rows is not None and rows != len(X):
            rng = np.random.default_rng(0)
            X = rng.normal(size=(rows, X.shape[1]))
            Y = np.eye(Y.shape[1])[np.arange(rows) % Y.shape[1]]
        return net, X, Y, ("the lecture's check network", 0.0)
    from nncli.config import load_config
    from nncli.io.datasets import prepare
    from nncli.pipeline import build_network

    cfg = load_config(config)
    prepared = prepare(cfg.data, cfg.model.output, cfg.training.seed)
    net = build_network(cfg, prepared, dtype="float64")
    X, Y = prepared.train
    m = min(rows or 10, len(X))
    return net, X[:m], Y[:m], (str(config), cfg.training.lambda_)


def trace_record(t) -> dict:
    return {
        "example": t.example,
        "m": t.m,
        "lambda": t.lambda_,
        "epsilon": t.epsilon,
        "x": t.x.tolist(),
        "y": t.y.tolist(),
        "layers": [
            {"l": layer.l, "z": _list(layer.z), "a": layer.a.tolist(), "delta": _list(layer.delta)}
            for layer in t.layers
        ],
        "Delta": [
            {"l": l, "W": W.tolist(), "b": b.tolist()}
            for l, (W, b) in enumerate(zip(t.Delta_W, t.Delta_b, strict=True), 1)
        ],
        "D": [
            {"l": l, "W": W.tolist(), "b": b.tolist()}
            for l, (W, b) in enumerate(zip(t.D_W, t.D_b, strict=True), 1)
        ],
        "J": t.cost,
        "checks": [
            {"entry": c.name, "index": list(c.index), "D": c.D, "centred_difference": c.numeric}
            for c in t.checks
        ],
    }


def _list(array):
    return None if array is None else array.tolist()


def number(value: float) -> str:
    return f"{value: .4e}" if value != 0 and not 1e-3 <= abs(value) < 1e4 else f"{value: .6f}"


def vector(label: str, values) -> list[str]:
    """``label = [ … ]``, wrapped under itself to ``WIDTH`` columns."""
    per_line = max(1, (WIDTH - len(label) - 5) // (CELL + 1))
    cells = [f"{number(v):>{CELL}}" for v in values]
    lines = []
    for start in range(0, len(cells), per_line):
        head = f"{label} = [" if start == 0 else " " * (len(label) + 4)
        tail = " ]" if start + per_line >= len(cells) else ""
        lines.append(head + " ".join(cells[start : start + per_line]) + tail)
    return lines or [f"{label} = [ ]"]


def matrix(label: str, values) -> list[str]:
    """``label (r×c) =`` and its rows, at most ``SHOWN`` rows and columns."""
    rows, cols = values.shape
    cut = rows > SHOWN or cols > SHOWN
    lines = [f"{label} ({rows}×{cols}){', the first ' + str(SHOWN) + ' rows and columns' if cut else ''} ="]
    for row in values[:SHOWN]:
        more = " …" if cols > SHOWN else ""
        lines.append("    [" + " ".join(f"{number(v):>{CELL}}" for v in row[:SHOWN]) + more + " ]")
    if rows > SHOWN:
        lines.append("    …")
    return lines


def trace_text(t, net, title: str) -> str:
    L = len(t.layers)
    lines = [
        f"Backpropagation for example i = {t.example} of a batch of m = {t.m}, λ = {t.lambda_:g}: {title},",
        f"{net.describe()}; Θ^(l) = [b^(l) W^(l)] maps layer l to layer l+1, layer 1 is the input.",
        "",
        "Forward propagation",
    ]
    lines += vector("  a^(1) = x", t.x)
    for layer in t.layers[1:]:
        lines += vector(f"  z^({layer.l}) = W^({layer.l - 1}) a^({layer.l - 1}) + b^({layer.l - 1})", layer.z)
        g = f"{net.output_name}" if layer.l == L else "g"
        lines += vector(f"  a^({layer.l}) = {g}(z^({layer.l}))", layer.a)
    lines += vector("  y", t.y)
    lines += ["", "Backpropagation (no δ^(1): the input has no error)"]
    lines += vector(f"  δ^({L}) = a^({L}) − y", t.layers[-1].delta)
    for layer in reversed(t.layers[1:-1]):
        l = layer.l
        lines += vector(f"  δ^({l}) = (W^({l}))ᵀ δ^({l + 1}) .* g′(z^({l}))", layer.delta)
    lines += ["", f"What example {t.example} adds: Δ^(l) += δ^(l+1) (a^(l))ᵀ, Δ_b^(l) += δ^(l+1)"]
    for l, (W, b) in enumerate(zip(t.Delta_W, t.Delta_b, strict=True), start=1):
        lines += matrix(f"  δ^({l + 1}) (a^({l}))ᵀ", W)
        lines += vector(f"  δ^({l + 1})", b)
    lines += [
        "",
        f"The batch's gradient, Δ summed over all m = {t.m} examples; J(Θ) = {t.cost:.10g}",
        "D^(l) = (1/m) Δ^(l) + (λ/m) W^(l),  D_b^(l) = (1/m) Δ_b^(l)  (λ never covers a bias)",
    ]
    for l, (W, b) in enumerate(zip(t.D_W, t.D_b, strict=True), start=1):
        lines += matrix(f"  D^({l})", W)
        lines += vector(f"  D_b^({l})", b)
    lines += [
        "",
        f"Centred differences (J(Θ + ε) − J(Θ − ε)) / 2ε with ε = {t.epsilon:g}, beside D:",
        f"  {'entry':<16} {'D':>18} {'centred difference':>20} {'relative difference':>20}",
    ]
    for c in t.checks:
        scale = abs(c.D) + abs(c.numeric)
        relative = abs(c.D - c.numeric) / scale if scale else 0.0
        entry = f"{c.name}[{','.join(map(str, c.index))}]"
        lines.append(f"  {entry:<16} {c.D:>18.10e} {c.numeric:>20.10e} {relative:>20.2e}")
    return "\n".join(lines)

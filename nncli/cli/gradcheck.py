"""``nncli gradcheck``: backpropagation against centred differences; the exit code says which won."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from nncli.cli.common import CONTEXT, reports_errors
from nncli.errors import EXIT_CHECK_FAILED
from nncli.model.gradcheck import DEFAULT_EPSILON, DEFAULT_TOLERANCE


@click.command(context_settings=CONTEXT)
@click.argument("config", required=False, type=click.Path(path_type=Path, allow_dash=True))
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

"""nncli trace: the lecture's loop for one example agrees with the engine's own gradients."""

import json

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import ROOT

from nncli.cli import main
from nncli.model.gradcheck import lecture_check_problem
from nncli.model.network import Network
from nncli.reports.trace import trace


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.mark.parametrize("lambda_", [0.0, 3.0])
def test_the_traced_gradient_is_the_engines_on_the_lectures_network(lambda_):
    net, X, Y = lecture_check_problem()
    t = trace(net, X, Y, 2, lambda_)
    J, D_W, D_b = net.gradients(X, Y, lambda_)
    assert t.cost == J
    for ours, theirs in zip(t.D_W + t.D_b, D_W + D_b, strict=True):
        np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=1e-15)
    sums = net.gradient_sums(X[1:2], Y[1:2])  # what example 2 alone adds: Δ of a batch of one
    np.testing.assert_allclose(t.Delta_W[0], sums.grads[0], rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(t.Delta_b[1], sums.grads[3], rtol=1e-12, atol=1e-15)
    a = net.hidden_activations(X[1:2])
    np.testing.assert_allclose(t.layers[1].a, a[1][0], rtol=1e-12)
    np.testing.assert_allclose(t.layers[-1].delta, net.forward(X[1:2])[0] - Y[1], rtol=1e-12)
    for check in t.checks:
        assert abs(check.D - check.numeric) <= 1e-7 * max(1.0, abs(check.D))


@pytest.mark.parametrize(
    "activation,output", [("tanh", "softmax"), ("relu", "linear"), ("leaky_relu", "sigmoid")]
)
def test_the_trace_holds_for_other_units_and_depths(activation, output, rng):
    net = Network([4, 6, 5, 3], activation=activation, output=output, seed=1)
    X = rng.normal(size=(7, 4))
    Y = np.eye(3)[rng.integers(0, 3, 7)] if output != "linear" else rng.normal(size=(7, 3))
    t = trace(net, X, Y, 7, 0.5)
    _, D_W, D_b = net.gradients(X, Y, 0.5)
    for ours, theirs in zip(t.D_W + t.D_b, D_W + D_b, strict=True):
        np.testing.assert_allclose(ours, theirs, rtol=1e-11, atol=1e-14)


def test_the_trace_command_prints_the_lectures_quantities():
    result = invoke("trace", "--example", "2")
    assert result.exit_code == 0, result.output
    text = result.stdout
    for words in ("a^(1) = x", "z^(2) = W^(1) a^(1) + b^(1)", "δ^(3) = a^(3) − y",
                  "δ^(2) = (W^(2))ᵀ δ^(3) .* g′(z^(2))", "Centred differences"):  # fmt: skip
        assert words in text
    assert max(map(len, text.splitlines())) <= 100
    record = json.loads(invoke("trace", "--example", "2", "--json").stdout)
    net, X, Y = lecture_check_problem()
    _, D_W, _ = net.gradients(X, Y, 0.0)
    np.testing.assert_allclose(record["D"][0]["W"], D_W[0], rtol=1e-12)
    entry = next(c for c in record["checks"] if c["entry"] == "W^(1)" and c["index"] == [1, 1])
    assert f"{entry['D']:.10e}" in text and f"{entry['centred_difference']:.10e}" in text


def test_trace_of_a_config_uses_its_network_and_rows():
    result = invoke("trace", ROOT / "configs/iris.yaml", "--rows", "6", "--example", "6", "--json")
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    assert record["m"] == 6 and record["example"] == 6 and len(record["x"]) == 4
    assert all(abs(c["D"] - c["centred_difference"]) < 1e-7 for c in record["checks"])


def test_bad_input_to_trace_is_one_sentence():
    for args, words in (
        (("trace", "--example", "6"), "--example 6 is not a row of the batch; choose 1 to 5"),
        (("trace", ROOT / "configs/digits_cnn.yaml"), "follows the lecture's fully connected layers"),
        (("trace", "nowhere.yaml"), "does not exist"),
    ):
        result = invoke(*args)
        assert result.exit_code == 2, result.output
        assert words in result.stderr and len(result.stderr.splitlines()) == 1

import warnings

import numpy as np
import pytest
from conftest import targets_for
from hypothesis import given, settings
from hypothesis import strategies as st
from reference import lecture_gradients

from nncli import Network
from nncli.errors import NncliError
from nncli.model.activations import ACTIVATIONS
from nncli.model.losses import OUTPUTS


def random_problem(seed, activation, output, hidden, n_in=4, k=3, m=7):
    rng = np.random.default_rng(seed)
    k = 1 if output == "linear" and k < 1 else k
    net = Network([n_in, *hidden, k], activation=activation, output=output, initializer="xavier", seed=seed)
    X = rng.normal(size=(m, n_in))
    return net, X, targets_for(output, rng, m, k)


@pytest.mark.parametrize("lambda_", [0.0, 1.0])
@pytest.mark.parametrize("output", sorted(OUTPUTS))
@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
def test_batch_gradient_equals_the_lectures_loop_over_examples(activation, output, lambda_):
    net, X, Y = random_problem(7, activation, output, hidden=[5, 4])
    J, dW, db = net.gradients(X, Y, lambda_)
    J_ref, D_ref = lecture_gradients(net.weights, net.biases, activation, output, X, Y, lambda_)
    assert pytest.approx(J_ref, rel=1e-12, abs=1e-12) == J
    for W_grad, b_grad, D in zip(dW, db, D_ref, strict=True):
        np.testing.assert_allclose(b_grad, D[:, 0], rtol=0, atol=1e-12)
        np.testing.assert_allclose(W_grad, D[:, 1:], rtol=0, atol=1e-12)


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**31),
    n_in=st.integers(1, 5),
    k=st.integers(1, 4),
    m=st.integers(1, 9),
    hidden=st.lists(st.integers(1, 6), min_size=1, max_size=4),
)
def test_batch_gradient_is_the_mean_of_per_example_gradients(seed, n_in, k, m, hidden):
    net, X, Y = random_problem(seed, "tanh", "softmax" if k > 1 else "sigmoid", hidden, n_in, k, m)
    _, dW, db = net.gradients(X, Y)
    per_example = [net.gradients(X[i : i + 1], Y[i : i + 1]) for i in range(m)]
    for layer in range(len(dW)):
        mean_W = np.mean([grads[1][layer] for grads in per_example], axis=0)
        mean_b = np.mean([grads[2][layer] for grads in per_example], axis=0)
        np.testing.assert_allclose(dW[layer], mean_W, rtol=0, atol=1e-12)
        np.testing.assert_allclose(db[layer], mean_b, rtol=0, atol=1e-12)


def test_cost_is_the_lectures_cross_entropy_with_the_penalty():
    W1, b1 = np.array([[0.5, -1.0], [2.0, 0.25]]), np.array([0.1, -0.2])
    W2, b2 = np.array([[1.5, -0.5]]), np.array([0.3])
    net = Network.from_weights([W1, W2], [b1, b2], activation="sigmoid", output="sigmoid")
    X = np.array([[1.0, 2.0], [-1.0, 0.5], [0.0, 0.0]])
    y = np.array([[1.0], [0.0], [1.0]])
    a2 = 1 / (1 + np.exp(-(X @ W1.T + b1)))
    h = 1 / (1 + np.exp(-(a2 @ W2.T + b2)))
    m, lam = 3, 2.0
    expected = -np.mean(y * np.log(h) + (1 - y) * np.log(1 - h))
    expected += lam / (2 * m) * (np.sum(W1**2) + np.sum(W2**2))
    assert net.cost(X, y, lambda_=lam) == pytest.approx(expected, rel=1e-14)


def test_softmax_and_linear_costs_match_their_definitions(rng):
    X = rng.normal(size=(6, 3))
    soft = Network([3, 4, 3], activation="relu", output="softmax", seed=1)
    Y = np.eye(3)[[0, 1, 2, 0, 1, 2]]
    h = soft.forward(X)
    np.testing.assert_allclose(h.sum(axis=1), 1.0, rtol=1e-15)
    assert soft.cost(X, Y) == pytest.approx(-np.mean(np.sum(Y * np.log(h), axis=1)), rel=1e-13)
    lin = Network([3, 4, 2], activation="tanh", output="linear", seed=1)
    T = rng.normal(size=(6, 2))
    assert lin.cost(X, T) == pytest.approx(0.5 * np.mean(np.sum((lin.forward(X) - T) ** 2, axis=1)))


@pytest.mark.parametrize("output", sorted(OUTPUTS))
@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
@pytest.mark.parametrize("z", [1e3, -1e3])
def test_saturated_units_give_finite_cost_and_gradients_without_warnings(activation, output, z):
    W1 = np.full((2, 1), z)
    W2 = np.array([[1.0, 1.0], [-1.0, -1.0]]) * (z / 2 if activation in ("sigmoid", "tanh") else 1)
    net = Network.from_weights([W1, W2], [np.zeros(2), np.zeros(2)], activation, output)
    X = np.array([[1.0], [-1.0]])
    Y = np.array([[1.0, 0.0], [0.0, 1.0]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        J, dW, db = net.gradients(X, Y, lambda_=1.0)
    assert np.isfinite(J) and J > 0
    assert all(np.isfinite(g).all() for g in dW + db)


def test_saturated_sigmoid_output_cost_is_the_exact_margin():
    net = Network.from_weights([np.array([[1000.0]])], [np.array([0.0])], output="sigmoid")
    # −log σ(−1000) = 1000 + log(1 + e^−1000) = 1000 to double precision
    assert net.cost(np.array([[-1.0]]), np.array([[1.0]])) == pytest.approx(1000.0, rel=1e-15)


def test_float32_cost_agrees_with_float64():
    rng = np.random.default_rng(5)
    X = rng.normal(size=(50, 8))
    Y = np.eye(4)[rng.integers(0, 4, size=50)]
    wide = Network([8, 16, 4], activation="tanh", output="softmax", seed=9)
    narrow = Network([8, 16, 4], activation="tanh", output="softmax", seed=9, dtype=np.float32)
    assert narrow.weights[0].dtype == np.float32
    assert narrow.forward(X).dtype == np.float32
    J32, dW32, _ = narrow.gradients(X, Y, lambda_=0.5)
    assert pytest.approx(wide.cost(X, Y, lambda_=0.5), rel=1e-5) == J32
    assert dW32[0].dtype == np.float32


def test_the_same_seed_gives_bit_identical_weights_and_another_does_not():
    first = Network([10, 7, 3], initializer="he", activation="relu", seed=42)
    second = Network([10, 7, 3], initializer="he", activation="relu", seed=42)
    other = Network([10, 7, 3], initializer="he", activation="relu", seed=43)
    for a, b in zip(first.params, second.params, strict=True):
        assert a.tobytes() == b.tobytes()
    assert not np.array_equal(first.weights[0], other.weights[0])


def test_from_weights_copies_and_keeps_shapes():
    W = [np.ones((3, 2)), np.ones((1, 3))]
    b = [np.zeros(3), np.zeros(1)]
    net = Network.from_weights(W, b, activation="tanh", output="linear")
    assert net.layer_sizes == [2, 3, 1]
    net.weights[0][0, 0] = 5.0
    assert W[0][0, 0] == 1.0


def test_inputs_are_never_modified():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(4, 3))
    Y = np.eye(2)[[0, 1, 1, 0]]
    X0, Y0 = X.copy(), Y.copy()
    Network([3, 4, 2], activation="relu", seed=0).gradients(X, Y, 1.0)
    assert np.array_equal(X, X0) and np.array_equal(Y, Y0)


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        (
            {"activation": "swish"},
            "unknown activation 'swish'; expected one of: sigmoid, tanh, relu",
        ),
        ({"output": "tanh"}, "unknown output 'tanh'; expected one of: sigmoid, softmax, linear"),
        (
            {"initializer": "glorot"},
            "unknown initializer 'glorot'; expected one of: zeros, uniform",
        ),
        ({"dtype": np.int32}, "dtype should be float64 or float32"),
    ],
)
def test_bad_names_are_refused_with_the_allowed_choices(kwargs, fragment):
    with pytest.raises(NncliError, match="^" + fragment.replace("(", r"\(")):
        Network([2, 3, 2], **kwargs)


@pytest.mark.parametrize("sizes", [[3], [3, 0, 2], [3, 2.5, 1], "abc", [True, 2]])
def test_bad_layer_sizes_are_refused(sizes):
    with pytest.raises(NncliError, match="layer sizes should be a list of at least two whole numbers"):
        Network(sizes)


def test_wrong_shapes_and_non_finite_inputs_name_what_was_expected():
    net = Network([3, 4, 2], seed=0)
    with pytest.raises(NncliError, match=r"X should have shape \(m, 3\), got \(5, 4\)"):
        net.forward(np.zeros((5, 4)))
    with pytest.raises(NncliError, match=r"Y should have shape \(m, 2\), got \(5,\)"):
        net.cost(np.zeros((5, 3)), np.zeros(5))
    with pytest.raises(NncliError, match="same number of rows, got 5 and 4"):
        net.gradients(np.zeros((5, 3)), np.zeros((4, 2)))
    with pytest.raises(
        NncliError, match=r"each row of Y should sum to 1 for a softmax output .* row 1 sums to 2"
    ):
        net.cost(np.zeros((2, 3)), np.array([[1.0, 0.0], [1.0, 1.0]]))
    with pytest.raises(NncliError, match="X must be finite"):
        net.forward(np.array([[0.0, np.nan, 1.0]]))
    with pytest.raises(NncliError, match="lambda_ should be a finite number ≥ 0, got -1"):
        net.cost(np.zeros((1, 3)), np.array([[0.0, 1.0]]), lambda_=-1)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_finiteness_is_checked_exactly_even_where_row_sums_overflow(dtype, bad):
    """The quick check sums rows; a finite X whose row sums overflow is still accepted, and one nan or
    ±inf anywhere is rejected, beside huge entries or not."""
    net = Network([3, 4, 2], seed=0, dtype=dtype)
    huge = np.finfo(dtype).max
    finite = np.full((4, 3), huge, dtype=dtype)  # each row sums to inf
    finite[2] = [-huge, -huge, 1.0]
    with np.errstate(over="ignore", invalid="ignore"):  # the forward pass of such entries overflows
        assert net.forward(finite).shape == (4, 2)
    for row in (0, 3):
        with_bad = finite.copy()
        with_bad[row, 1] = bad
        with pytest.raises(NncliError, match="X must be finite"):
            net.forward(with_bad)
        plain = np.zeros((4, 3), dtype=dtype)
        plain[row, 2] = bad
        with pytest.raises(NncliError, match="X must be finite"):
            net.forward(plain)
    with pytest.raises(NncliError, match=r"W2 should have shape \(s_3, 4\), got \(2, 3\)"):
        Network.from_weights([np.zeros((4, 3)), np.zeros((2, 3))], [np.zeros(4), np.zeros(2)])

import numpy as np
import pytest

from nncli import Network, train
from nncli.model.initializers import INITIALIZERS


@pytest.mark.parametrize(
    ("name", "expected_std"),
    [
        ("normal", 0.1),
        ("xavier", np.sqrt(2 / (300 + 200))),
        ("he", np.sqrt(2 / 300)),
        ("uniform", np.sqrt(6) / np.sqrt(500) / np.sqrt(3)),
    ],
)
def test_initializer_spreads_match_the_lecture(name, expected_std):
    W = INITIALIZERS[name](np.random.default_rng(0), 300, 200, None)
    assert W.shape == (200, 300)
    assert W.std() == pytest.approx(expected_std, rel=0.02)
    assert abs(W.mean()) < 0.01 * expected_std * 10


def test_uniform_stays_within_epsilon_and_scale_is_settable():
    W = INITIALIZERS["uniform"](np.random.default_rng(0), 10, 20, 0.05)
    assert np.abs(W).max() <= 0.05 and np.abs(W).max() > 0.045
    N = INITIALIZERS["normal"](np.random.default_rng(0), 100, 100, 2.0)
    assert N.std() == pytest.approx(2.0, rel=0.03)


def test_biases_start_at_zero_except_before_relu_units():
    sigmoid_net = Network([4, 5, 3], activation="sigmoid", seed=0)
    relu_net = Network([4, 5, 6, 3], activation="relu", seed=0)
    assert all(np.all(b == 0) for b in sigmoid_net.biases)
    assert np.all(relu_net.biases[0] == 0.01) and np.all(relu_net.biases[1] == 0.01)
    assert np.all(relu_net.biases[2] == 0.0)  # the output units are not ReLU units
    assert np.all(Network([4, 5, 3], activation="leaky_relu", relu_bias=0.1).biases[0] == 0.1)


def _hidden_units_identical(net):
    W1, W2 = net.weights[0], net.weights[1]
    return np.allclose(W1, W1[0], rtol=0, atol=1e-12) and np.allclose(W2, W2[:, :1], rtol=0, atol=1e-12)


@pytest.mark.parametrize("steps", [2, 10, 50])
def test_zero_initialization_keeps_hidden_units_identical(steps):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(20, 3))
    Y = np.eye(2)[(X[:, 0] > 0).astype(int)]
    net = Network([3, 6, 2], activation="sigmoid", output="softmax", initializer="zeros")
    train(net, X, Y, alpha=0.5, beta=0.0, batch="batch", epochs=steps)
    assert min(np.abs(W).max() for W in net.weights) > 0  # the weights did move...
    assert _hidden_units_identical(net)  # ...but every hidden unit moved the same way


def test_random_initialization_breaks_the_symmetry():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(20, 3))
    Y = np.eye(2)[(X[:, 0] > 0).astype(int)]
    net = Network([3, 6, 2], activation="sigmoid", output="softmax", initializer="uniform", seed=0)
    train(net, X, Y, alpha=0.5, beta=0.0, batch="batch", epochs=10)
    assert not _hidden_units_identical(net)

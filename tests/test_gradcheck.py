import numpy as np
import pytest
from conftest import targets_for
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from nncli import Network, gradcheck
from nncli.model.activations import ACTIVATIONS
from nncli.model.gradcheck import centred_difference, lecture_check_problem, relative_difference
from nncli.model.losses import OUTPUTS


def test_the_lectures_quiz_centred_difference_of_theta_cubed():
    estimate = centred_difference(lambda theta: theta**3, theta=1.0, epsilon=0.01)
    assert round(estimate, 4) == 3.0001
    assert estimate == pytest.approx(3.0001, abs=1e-12)


@pytest.mark.parametrize("lambda_", [0.0, 3.0])
def test_the_lectures_check_network_agrees_below_1e_9(lambda_):
    net, X, Y = lecture_check_problem()
    assert net.layer_sizes == [3, 5, 3] and X.shape == (5, 3)
    report = gradcheck(net, X, Y, lambda_=lambda_)
    assert report.relative_difference < 1e-9
    assert report.checked == 3 * 5 + 5 + 5 * 3 + 3
    assert [a.name for a in report.arrays] == ["W1", "b1", "W2", "b2"]
    assert all(a.relative_difference < 1e-8 for a in report.arrays)
    assert report.passed()


@pytest.mark.parametrize("lambda_", [0.0, 1.0])
@pytest.mark.parametrize("output", sorted(OUTPUTS))
@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
@settings(max_examples=8, deadline=None)
@given(
    seed=st.integers(0, 2**31),
    n_in=st.integers(1, 5),
    k=st.integers(1, 4),
    m=st.integers(1, 8),
    hidden=st.lists(st.integers(1, 6), min_size=1, max_size=4),
)
def test_backprop_agrees_with_centred_differences(activation, output, lambda_, seed, n_in, k, m, hidden):
    if output == "softmax":
        k = max(k, 2)
    rng = np.random.default_rng(seed)
    net = Network([n_in, *hidden, k], activation=activation, output=output, initializer="xavier", seed=seed)
    X = rng.normal(size=(m, n_in))
    Y = targets_for(output, rng, m, k)
    epsilon = 1e-4
    if ACTIVATIONS[activation].relu_family:
        # ReLU units have a kink at z = 0, where no derivative exists: differences taken across it
        # disagree with any gradient. Leave out the rare draws with a hidden z within reach of 0.
        activations = net.hidden_activations(X)
        hidden_z = [layer.forward(a) for layer, a in zip(net.layers[:-1], activations[:-1], strict=True)]
        assume(min(np.abs(z).min() for z in hidden_z) > 1e-3)
    report = gradcheck(net, X, Y, lambda_=lambda_, epsilon=epsilon)
    # A network whose units are all dead (relu) has a gradient of 0, which centred differences give as
    # rounding noise of about 1e-10: ‖num − bp‖ / ‖num + bp‖ is then 1 however right backprop is.
    numerical = np.concatenate([a.numerical for a in report.arrays])
    assume(np.abs(numerical).max() > 1e-7)
    assert report.relative_difference < 1e-7, report


def test_gradcheck_leaves_the_parameters_exactly_as_they_were():
    net, X, Y = lecture_check_problem(seed=3)
    before = [p.tobytes() for p in net.params]
    gradcheck(net, X, Y, lambda_=1.0)
    assert [p.tobytes() for p in net.params] == before


def test_a_wrong_gradient_is_caught():
    net, X, Y = lecture_check_problem()
    honest = net.backprop

    def off_by_a_bit(X, Y):
        loss, grads, a_out = honest(X, Y)
        grads[0] = grads[0] * 1.001
        return loss, grads, a_out

    net.backprop = off_by_a_bit
    report = gradcheck(net, X, Y)
    assert not report.passed()
    assert report.arrays[0].relative_difference > 1e-4
    assert report.arrays[1].relative_difference < 1e-8


def test_a_seeded_subset_is_checked_in_a_large_network():
    rng = np.random.default_rng(0)
    net = Network([30, 40, 5], activation="tanh", output="softmax", seed=0)
    X, Y = rng.normal(size=(4, 30)), np.eye(5)[[0, 1, 2, 3]]
    report = gradcheck(net, X, Y, max_params=100, seed=1)
    again = gradcheck(net, X, Y, max_params=100, seed=1)
    assert 100 <= report.checked <= 120
    assert all(a.checked >= min(5, a.size) for a in report.arrays)
    assert report.relative_difference < 1e-7
    assert report.relative_difference == again.relative_difference


def test_relative_difference_of_zero_vectors_is_zero():
    assert relative_difference(np.zeros(3), np.zeros(3)) == 0.0
    assert relative_difference(np.array([1.0, 0.0]), np.array([1.0, 0.0])) == 0.0
    assert relative_difference(np.array([1.0]), np.array([3.0])) == pytest.approx(0.5)

"""The Layer protocol: networks built from layer specifications, each layer with its own activation, and a
new layer type that trains through the registry with no change to the network, optimizers or registry."""

import numpy as np
import pytest
from conftest import targets_for
from reference_training import plain_train

from nncli import Network, gradcheck
from nncli.errors import NncliError
from nncli.model.layers import LAYERS, Layer, activation_of, known_keys
from nncli.model.losses import OUTPUTS
from nncli.optim.optimizers import OPTIMIZERS
from nncli.training.loop import Trainer

MIXED = [
    {"type": "dense", "units": 5, "activation": "tanh"},
    {"type": "dense", "units": 4, "activation": "leaky_relu"},
    {"type": "dense", "units": 3},  # the network's activation
]


@pytest.mark.parametrize("output", sorted(OUTPUTS))
def test_a_network_of_layers_with_their_own_activations_passes_gradient_checking(output):
    rng = np.random.default_rng(3)
    net = Network.from_layers(4, MIXED, 3, output=output, activation="sigmoid", seed=2, relu_bias=0.3)
    assert [layer.activation.name for layer in net.layers[:-1]] == ["tanh", "leaky_relu", "sigmoid"]
    assert net.activation is None and net.layer_specs[1] == {
        "type": "dense",
        "units": 4,
        "activation": "leaky_relu",
    }
    X = rng.normal(size=(6, 4))
    report = gradcheck(net, X, targets_for(output, rng, 6, 3), lambda_=0.5, epsilon=1e-4)
    assert report.relative_difference < 1e-7, report


def test_dense_specifications_build_the_network_the_sizes_build():
    by_specs = Network.from_layers(
        6, [{"type": "dense", "units": 8}, {"units": 5}], 3, activation="relu", seed=4
    )
    by_sizes = Network([6, 8, 5, 3], activation="relu", seed=4)
    assert by_specs.theta.tobytes() == by_sizes.theta.tobytes()
    assert by_specs.activation == "relu" and by_specs.layer_sizes == [6, 8, 5, 3]


@pytest.mark.parametrize(
    ("specs", "message"),
    [
        (
            [{"type": "conv2d", "units": 3}],
            "layer 1's type should be one of dense, conv, maxpool, avgpool, flatten, got 'conv2d'",
        ),
        ([{"units": 4}, {"units": 0}], "layer 2 (dense) should have units, a whole number ≥ 1, got 0"),
        (
            [{"units": 4, "size": 2}],
            "layer 1 (dense) has an unknown key 'size'; allowed: activation, type, units",
        ),
        ([{"units": 4, "activation": "swish"}], "layer 1 (dense) should have activation, one of sigmoid"),
        (["dense"], "layer 1 should be a mapping such as {type: dense, units: 16}"),
        ({"units": 4}, "layers should be a list of layer specifications"),
    ],
)
def test_a_bad_layer_specification_names_the_layer(specs, message):
    with pytest.raises(NncliError) as caught:
        Network.from_layers(3, specs, 2)
    assert message in str(caught.value)


class ScaledDense(Layer):
    """A test layer type: z = s ⊙ (W a), a weight matrix and a per-unit scale s (no bias), both covered by λ.
    It implements only the protocol's row forms."""

    kind = "scaled"
    regularized = (True, True)

    def __init__(self, s_in, s_out, activation=None):
        self.in_shape, self.out_shape = (s_in,), (s_out,)
        self.param_shapes = ((s_out, s_in), (s_out,))
        self.activation = activation

    def bind(self, arrays):
        self.W, self.s = arrays

    @property
    def params(self):
        return [self.W, self.s]

    @property
    def fans(self):
        return self.sizes

    def spec(self):
        return {"type": self.kind, "units": self.sizes[1]}

    def forward(self, a):
        self._u = a @ self.W.T  # kept for gradient_sums, called right after on the same batch
        return self._u * self.s

    def gradient_sums(self, delta, a):
        return [(delta * self.s).T @ a, np.sum(delta * (a @ self.W.T), axis=0)]

    def propagate(self, delta, a=None):
        return (delta * self.s) @ self.W

    @classmethod
    def from_spec(cls, spec, in_shape, activation, where):
        known_keys(spec, {"type", "units", "activation"}, where)
        return cls(in_shape[0], spec["units"], activation_of(spec, activation, where))


@pytest.fixture
def scaled_layers(monkeypatch):
    monkeypatch.setitem(LAYERS, "scaled", ScaledDense.from_spec)  # a new type is one class and one entry


def test_a_new_layer_type_is_gradient_checked(scaled_layers):
    rng = np.random.default_rng(5)
    net = Network.from_layers(4, [{"type": "scaled", "units": 5, "activation": "tanh"}], 3, seed=1)
    X = rng.normal(size=(7, 4))
    report = gradcheck(net, X, targets_for("softmax", rng, 7, 3), lambda_=0.3, epsilon=1e-4)
    assert report.relative_difference < 1e-7, report


@pytest.mark.parametrize("engine", ["numpy", "compiled"])
@pytest.mark.parametrize("optimizer", sorted(OPTIMIZERS))
def test_a_new_layer_type_trains_through_the_registry_as_plain_training_does(
    scaled_layers, optimizer, engine
):
    rng = np.random.default_rng(6)
    X, Y = rng.normal(size=(20, 4)), targets_for("softmax", rng, 20, 3)
    specs = [{"type": "scaled", "units": 5, "activation": "tanh"}, {"type": "dense", "units": 4}]
    fast, plain = (Network.from_layers(4, specs, 3, activation="relu", seed=1) for _ in range(2))
    settings = dict(
        alpha=0.05, lambda_=0.2, beta=0.9, batch="mini-batch", batch_size=8, seed=3, optimizer=optimizer
    )
    trainer = Trainer(fast, X, Y, engine=engine, **settings)
    history = trainer.run(3)
    plain_train(plain, X, Y, epochs=3, **settings)
    np.testing.assert_allclose(fast.theta, plain.theta, rtol=0, atol=1e-12)
    assert history.stop_reason == "completed"

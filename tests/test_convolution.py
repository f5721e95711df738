"""Convolution and pooling: each layer against the lecture's loop over positions, gradient checks of networks
mixing them with dense layers, the config's layer lists, and convolutional models saved, read and resumed."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import targets_for
from hypothesis import given, settings
from hypothesis import strategies as st
from reference_training import plain_train

from nncli.cli import main
from nncli.model.activations import ACTIVATIONS
from nncli.model.gradcheck import gradcheck
from nncli.model.layers import AvgPool, Convolution, MaxPool
from nncli.model.losses import OUTPUTS
from nncli.model.network import Network
from nncli.optim.optimizers import OPTIMIZERS
from nncli.training.loop import Trainer

# ------------------------------------------------------------------ the lecture's loops, one example a time


def padded(x, pad_h, pad_w):
    """x (C, H, W) with pad_h = (top, bottom) and pad_w = (left, right) rows and columns of zeros."""
    C, H, W = x.shape
    out = np.zeros((C, H + sum(pad_h), W + sum(pad_w)))
    out[:, pad_h[0] : pad_h[0] + H, pad_w[0] : pad_w[0] + W] = x
    return out


def conv_loops(x, W, b, stride, pad_h, pad_w, delta):
    """z[f, y, x] = Σ_c Σ_i Σ_j W[f, c, i, j] a[c, s·y + i, s·x + j] + b[f] for one example, and from its
    δ (F, Ho, Wo): the tied weight's gradient summed explicitly over every position using it, the bias's,
    and the error passed down to each input value."""
    F, C, kh, kw = W.shape
    a = padded(x, pad_h, pad_w)
    Ho, Wo = (a.shape[1] - kh) // stride + 1, (a.shape[2] - kw) // stride + 1
    z = np.zeros((F, Ho, Wo))
    for f in range(F):
        for y in range(Ho):
            for xx in range(Wo):
                total = b[f]
                for c in range(C):
                    for i in range(kh):
                        for j in range(kw):
                            total += W[f, c, i, j] * a[c, stride * y + i, stride * xx + j]
                z[f, y, xx] = total
    dW, db, da = np.zeros_like(W), np.zeros_like(b), np.zeros_like(a)
    for f in range(F):
        for c in range(C):
            for i in range(kh):
                for j in range(kw):
                    for y in range(Ho):  # every position where the shared weight W[f, c, i, j] is used
                        for xx in range(Wo):
                            dW[f, c, i, j] += delta[f, y, xx] * a[c, stride * y + i, stride * xx + j]
                            da[c, stride * y + i, stride * xx + j] += W[f, c, i, j] * delta[f, y, xx]
        db[f] = delta[f].sum()
    H, Wd = x.shape[1:]
    return z, dW, db, da[:, pad_h[0] : pad_h[0] + H, pad_w[0] : pad_w[0] + Wd]


def pool_loops(x, size, stride, kind, delta):
    """Max (first maximum on ties) or average pooling of one example, and the error passed down."""
    C, H, W = x.shape
    Ho, Wo = (H - size) // stride + 1, (W - size) // stride + 1
    z, da = np.zeros((C, Ho, Wo)), np.zeros_like(x)
    for c in range(C):
        for y in range(Ho):
            for xx in range(Wo):
                window = [(stride * y + i, stride * xx + j) for i in range(size) for j in range(size)]
                if kind == "max":
                    best = window[0]
                    for point in window[1:]:
                        if x[c][point] > x[c][best]:
                            best = point
                    z[c, y, xx] = x[c][best]
                    da[c][best] += delta[c, y, xx]
                else:
                    z[c, y, xx] = sum(x[c][p] for p in window) / size**2
                    for p in window:
                        da[c][p] += delta[c, y, xx] / size**2
    return z, da


@st.composite
def conv_cases(draw):
    C, F = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    H, W = draw(st.integers(1, 7)), draw(st.integers(1, 7))
    padding = draw(st.sampled_from(["valid", "same"]))
    kh = draw(st.integers(1, H if padding == "valid" else 4))
    kw = draw(st.integers(1, W if padding == "valid" else 4))
    return (
        C,
        H,
        W,
        F,
        (kh, kw),
        draw(st.integers(1, 3)),
        padding,
        draw(st.integers(1, 3)),
        draw(st.integers(0, 999)),
    )


@settings(max_examples=60, deadline=None)
@given(conv_cases())
def test_convolution_forward_gradients_and_error_passed_down_equal_the_lectures_loops(case):
    C, H, W, F, kernel, stride, padding, m, seed = case
    rng = np.random.default_rng(seed)
    layer = Convolution((C, H, W), F, kernel, stride, padding)
    kernels, b = rng.normal(size=(F, C, *kernel)), rng.normal(size=F)
    layer.bind([kernels, b])
    x = rng.normal(size=(m, C * H * W))
    delta = rng.normal(size=(m, math.prod(layer.out_shape)))
    for form in (layer, compiled_form(layer, m)):
        assert_convolution_is_the_loops(form, layer, x, kernels, b, delta, case)


def compiled_form(layer, m):
    """The compiled-images path's form of ``layer`` for batches of m, run once on other values first: its
    buffers then hold another batch's columns, maxima and δ, which it must not reuse."""
    from nncli.engines.image_step import FORMS

    form = FORMS[type(layer)](layer, m, np.float64)
    rng = np.random.default_rng(99)
    x = rng.normal(size=(m, math.prod(layer.in_shape)))
    delta = rng.normal(size=(m, math.prod(layer.out_shape)))
    form.forward(x)
    form.gradient_sums(delta, x)
    form.propagate(delta, x)
    return form


def assert_convolution_is_the_loops(form, layer, x, kernels, b, delta, case):
    C, H, W, F, _, stride, padding, m, _ = case
    z = form.forward(x).copy()
    grads, below = form.gradient_sums(delta, x), form.propagate(delta, x)
    Ho, Wo = layer.out_hw
    total_dW, total_db = np.zeros_like(kernels), np.zeros_like(b)
    for i in range(m):
        zi, dW, db, da = conv_loops(
            x[i].reshape(C, H, W), kernels, b, stride, layer.pad_h, layer.pad_w, delta[i].reshape(F, Ho, Wo)
        )
        np.testing.assert_allclose(z[i], zi.ravel(), rtol=0, atol=1e-12)
        np.testing.assert_allclose(below[i], da.ravel(), rtol=0, atol=1e-12)
        total_dW += dW
        total_db += db
    np.testing.assert_allclose(grads[0], total_dW, rtol=0, atol=1e-12)
    np.testing.assert_allclose(grads[1], total_db, rtol=0, atol=1e-12)
    if padding == "same":
        assert (Ho, Wo) == (-(-H // stride), -(-W // stride))


@settings(max_examples=60, deadline=None)
@given(
    st.integers(1, 3),
    st.integers(2, 8),
    st.integers(2, 8),
    st.integers(1, 3),
    st.one_of(st.none(), st.integers(1, 3)),
    st.sampled_from(["max", "avg"]),
    st.integers(1, 3),
    st.integers(0, 999),
)
def test_pooling_and_its_error_passed_down_equal_the_lectures_loops(C, H, W, size, stride, kind, m, seed):
    size = min(size, H, W)
    layer = (MaxPool if kind == "max" else AvgPool)((C, H, W), size, stride)
    rng = np.random.default_rng(seed)
    x = rng.integers(-3, 4, size=(m, C * H * W)).astype(float)  # small integers: many ties
    delta = rng.normal(size=(m, math.prod(layer.out_shape)))
    forms = [layer] + ([compiled_form(layer, m)] if kind == "max" else [])
    for form in forms:
        z = form.forward(x).copy()
        below = form.propagate(delta, x)
        assert_pooling_is_the_loops(layer, x, z, delta, below, size, kind, m)
    assert layer.gradient_sums(delta, x) == [] and layer.params == []


def assert_pooling_is_the_loops(layer, x, z, delta, below, size, kind, m):
    C, H, W = layer.in_shape
    for i in range(m):
        zi, da = pool_loops(
            x[i].reshape(C, H, W), size, layer.stride, kind, delta[i].reshape(layer.out_shape)
        )
        np.testing.assert_allclose(z[i], zi.ravel(), rtol=0, atol=1e-12)
        np.testing.assert_allclose(below[i], da.ravel(), rtol=0, atol=1e-12)


def test_max_pooling_sends_the_error_to_the_first_maximum_of_a_tied_window():
    layer = MaxPool((1, 2, 2), 2)
    below = layer.propagate(np.array([[5.0]]), np.array([[1.0, 3.0, 3.0, 2.0]]))
    np.testing.assert_array_equal(below, [[0.0, 5.0, 0.0, 0.0]])


def test_a_kernel_is_pytorchs_layout_and_its_fans_are_c_kh_kw_and_f_kh_kw():
    net = Network.from_layers(
        input_shape=(2, 6, 6),
        layers=[{"type": "conv", "filters": 4, "kernel": [3, 2], "activation": "relu"}, {"type": "avgpool"}],
        n_out=3,
        initializer="he",
        seed=0,
    )
    kernels, b = net.weights[0], net.biases[0]
    assert kernels.shape == (4, 2, 3, 2) and net.layers[0].fans == (12, 24)
    assert np.all(b == 0.01)  # relu biases start at relu_bias, as for dense layers
    expected = np.random.default_rng(0).normal(0.0, np.sqrt(2.0 / 12), size=(4, 2, 3, 2))
    np.testing.assert_array_equal(kernels, expected)
    assert [w.shape for w in net.weights] == [(4, 2, 3, 2), (3, 4 * 2 * 2)]
    kernels[0, 0, 0, 0] = 7.0  # a writable view into θ
    assert net.theta[0] == 7.0


# ------------------------------------------------------------------ gradient checks

MIXED = [
    [{"type": "conv", "filters": 3, "kernel": 3, "padding": "same"}, {"type": "maxpool", "size": 2}],
    [
        {"type": "conv", "filters": 2, "kernel": [2, 3], "stride": 2},
        {"type": "avgpool", "size": 2, "stride": 1},
        {"type": "dense", "units": 4},
    ],
    [
        {"type": "conv", "filters": 2, "kernel": 2},
        {"type": "conv", "filters": 3, "kernel": 3, "padding": "same", "stride": 2},
        {"type": "flatten"},
        {"type": "dense", "units": 5, "activation": "tanh"},
    ],
]


@pytest.mark.parametrize("layers", range(len(MIXED)))
@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
@pytest.mark.parametrize("output", sorted(OUTPUTS))
def test_networks_mixing_convolution_pooling_and_dense_layers_pass_gradient_checking(
    layers, activation, output
):
    rng = np.random.default_rng(layers)
    net = Network.from_layers(
        input_shape=(2, 6, 7), layers=MIXED[layers], n_out=3, output=output, activation=activation, seed=2
    )
    for b in net.biases:
        b[...] = rng.uniform(-0.5, 0.5, size=b.shape)
    X = rng.normal(size=(4, 84))
    report = gradcheck(net, X, targets_for(output, rng, 4, 3), lambda_=0.7, epsilon=1e-5)
    assert report.relative_difference < 1e-7, report
    assert report.checked >= 0.9 * net.theta.size  # few probes sit at a kink


def test_a_probe_across_a_relu_kink_is_retried_with_a_smaller_epsilon():
    layers = [{"type": "conv", "filters": 1, "kernel": 2}]
    net = Network.from_layers(
        input_shape=(1, 2, 2), layers=layers, n_out=1, output="linear", activation="relu"
    )
    net.weights[0][...] = 1.0
    net.biases[0][...] = -4.0 + 5e-5  # z = Σx − 4 + 5e-5 sits 5e-5 from the kink for x = 1
    X, Y = np.ones((1, 4)), np.zeros((1, 1))
    report = gradcheck(net, X, Y, epsilon=1e-4)
    assert report.at_kinks == 0 and report.relative_difference < 1e-7, report


# ------------------------------------------------------------------ training through the registry


@pytest.mark.parametrize(
    ("engine", "batch", "layers"),
    [
        ("numpy", "mini-batch", 0),  # the layers path
        ("compiled", "mini-batch", 0),  # compiled-images: steps of 8 and 4 rows on one thread
        ("compiled", "batch", 0),  # compiled-images: a step of 20 rows in two chunks of examples
        ("compiled", "batch", 2),  # two convolutions, the second strided with a zero border
    ],
)
@pytest.mark.parametrize("optimizer", sorted(OPTIMIZERS))
def test_a_convolutional_network_trains_through_the_registry_as_plain_training_does(
    optimizer, engine, batch, layers, monkeypatch
):
    if batch == "batch":  # in chunks of examples, however small the step's work
        monkeypatch.setattr("nncli.engines.image_step.MIN_WORK_TO_SPLIT", 0)
    rng = np.random.default_rng(8)
    X, Y = rng.normal(size=(20, 2 * 36)), targets_for("softmax", rng, 20, 3)
    fast, plain = (Network.from_layers(input_shape=(2, 6, 6), layers=MIXED[layers], n_out=3,
                                       activation="relu", seed=1) for _ in range(2))  # fmt: skip
    settings_ = dict(
        alpha=0.05, lambda_=0.2, beta=0.9, batch=batch, batch_size=8, seed=3, optimizer=optimizer
    )
    trainer = Trainer(fast, X, Y, engine=engine, cores=2, clip_norm=0.5 if optimizer == "nesterov" else None,
                      **settings_)  # fmt: skip
    history = trainer.run(3)
    plain_train(plain, X, Y, epochs=3, clip_norm=0.5 if optimizer == "nesterov" else None, **settings_)
    np.testing.assert_allclose(fast.theta, plain.theta, rtol=0, atol=1e-12)
    assert history.stop_reason == "completed"
    expected = "layers" if engine == "numpy" else "compiled-images"
    assert set(trainer.stepper.paths.values()) == {expected}


def test_the_compiled_images_path_in_chunks_gives_the_same_bits_every_run(monkeypatch):
    """The chunks' sums are added in chunk order, whichever thread finishes first."""
    monkeypatch.setattr("nncli.engines.image_step.MIN_WORK_TO_SPLIT", 0)
    rng = np.random.default_rng(5)
    X, Y = rng.normal(size=(40, 2 * 36)), targets_for("softmax", rng, 40, 3)
    runs = []
    for _ in range(3):
        net = Network.from_layers(input_shape=(2, 6, 6), layers=MIXED[2], n_out=3, activation="tanh", seed=3)
        Trainer(net, X, Y, engine="compiled", cores=2, alpha=0.1, batch="mini-batch", batch_size=16).run(4)
        runs.append(net.theta.tobytes())
    assert runs[0] == runs[1] == runs[2]


def test_a_float32_convolutional_network_trains_in_float32_on_the_compiled_images_path():
    rng = np.random.default_rng(6)
    X, Y = rng.normal(size=(24, 2 * 36)), targets_for("softmax", rng, 24, 3)
    thetas = {}
    for engine in ("numpy", "compiled"):
        net = Network.from_layers(input_shape=(2, 6, 6), layers=MIXED[0], n_out=3, activation="relu", seed=2,
                                  dtype=np.float32)  # fmt: skip
        trainer = Trainer(net, X.astype(np.float32), Y.astype(np.float32), engine=engine, alpha=0.05,
                          batch="mini-batch", batch_size=8)  # fmt: skip
        trainer.run(3)
        assert net.theta.dtype == np.float32
        thetas[trainer.stepper.paths[8]] = net.theta
    np.testing.assert_allclose(thetas["compiled-images"], thetas["layers"], rtol=0, atol=1e-5)


# ------------------------------------------------------------------ the config and the model file


def image_csv(path, rows=60, seed=0):
    """A CSV of 3×4×4 images (48 pixel columns p0…p47) and a label from their brightest channel."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(rows, 48))
    labels = X.reshape(rows, 3, 16).mean(axis=2).argmax(axis=1)
    header = ",".join(f"p{i}" for i in range(48)) + ",label\n"
    path.write_text(
        header + "".join(",".join(f"{v:.5f}" for v in x) + f",c{k}\n" for x, k in zip(X, labels, strict=True))
    )


CNN_CONFIG = """
data: {path: images.csv, target: label, input_shape: [3, 4, 4], validation_split: 0.2}
model:
  layers:
    - {type: conv, filters: 4, kernel: 3, padding: same, activation: relu}
    - {type: maxpool, size: 2}
    - {type: dense, units: 6}
  activation: tanh
  output: softmax
  initializer: he
training: {alpha: 0.05, epochs: 6, batch_size: 8, seed: 1, engine: numpy}
output: {dir: out, checkpoint_every: 2}
"""


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture
def image_folder(tmp_path, monkeypatch):
    image_csv(tmp_path / "images.csv")
    (tmp_path / "cnn.yaml").write_text(CNN_CONFIG)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_a_convolutional_model_is_saved_read_and_predicts_as_the_network_does(image_folder):
    result = invoke("train", "cnn.yaml", "-q")
    assert result.exit_code == 0, result.output
    with np.load("out/model.npz", allow_pickle=False) as archive:
        assert archive["W1"].shape == (4, 3, 3, 3) and archive["W2"].shape == (6, 4 * 2 * 2)
        assert archive["W3"].shape == (3, 6) and "W4" not in archive.files
        meta = json.loads(str(archive["meta"]))
    assert meta["input_shape"] == [3, 4, 4] and [s["type"] for s in meta["layers"]] == [
        "conv",
        "maxpool",
        "dense",
    ]
    assert meta["layers"][2]["activation"] == "tanh" and meta["layers"][0]["activation"] == "relu"
    from nncli.pipeline import load_trained_model

    model = load_trained_model(image_folder / "out")
    assert model.network.describe().startswith("[3, 4, 4] → conv 4 3×3 same relu → maxpool 2 → dense 6 tanh")
    predicted = invoke("predict", "out", "images.csv", "--proba")
    assert predicted.exit_code == 0, predicted.output
    rows = predicted.stdout.splitlines()
    assert rows[0] == "prediction,p_c0,p_c1,p_c2" and len(rows) == 61
    import pandas as pd

    frame = pd.read_csv("images.csv")
    X = (frame.drop(columns="label").to_numpy() - np.array(meta["mean"])) / np.array(meta["std"])
    proba = model.network.forward(X)
    first = [float(v) for v in rows[1].split(",")[1:]]
    np.testing.assert_allclose(first, proba[0], rtol=1e-6)


def test_a_convolutional_run_resumed_ends_bit_identical_to_one_never_stopped(image_folder):
    assert invoke("train", "cnn.yaml", "-q", "--out", "whole").exit_code == 0
    assert invoke("train", "cnn.yaml", "-q", "--out", "parts", "--epochs", 4).exit_code == 0
    resumed = invoke("train", "cnn.yaml", "-q", "--out", "parts", "--resume", "--epochs", 6)
    assert resumed.exit_code == 0, resumed.output
    with np.load("whole/model.npz") as whole, np.load("parts/model.npz") as parts:
        for name in ("W1", "b1", "W2", "b2", "W3", "b3"):
            assert whole[name].tobytes() == parts[name].tobytes(), name


def test_a_convolutional_config_passes_nncli_gradcheck(image_folder):
    result = invoke("gradcheck", "cnn.yaml")
    assert result.exit_code == 0, result.output
    assert "[3, 4, 4] → conv 4 3×3 same relu → maxpool 2 → dense 6 tanh → softmax 3" in result.output
    assert result.output.rstrip().endswith("PASS")


BAD_LAYER_LISTS = [
    ({"kernel: 3, padding: same": "kernel: 5"}, "layer 1 (conv)'s kernel [5, 5] is larger than its input"),
    ({"padding: same": "padding: same, stride: 0"}, "layer 1 (conv) should have stride, a whole number ≥ 1"),
    ({"size: 2}": "size: 5}"}, "layer 2 (maxpool)'s window 5×5 is larger than its input [4, 4, 4]"),
    ({"input_shape: [3, 4, 4], ": ""}, "layer 1 (conv) reads images, so data.input_shape should give"),
    ({"[3, 4, 4]": "[3, 4, 5]"}, "data.input_shape [3, 4, 5] reads 60 values a row, but the data has 48"),
    ({"- {type: maxpool, size: 2}": "- {type: dense, units: 3}\n    - {type: maxpool}"},
     "layer 3 (maxpool) reads images (C, H, W), but its input is 3 flat values"),
    ({"padding: same": "padding: full"}, "layer 1 (conv) should have padding valid or same, got 'full'"),
    ({"activation: tanh": "activation: tanh\n  hidden: [4]"}, "model.hidden and model.layers are both set"),
]  # fmt: skip


@pytest.mark.parametrize(("change", "message"), BAD_LAYER_LISTS)
def test_a_layer_list_that_cannot_work_is_refused_naming_the_layer_and_nothing_is_written(
    image_folder, change, message
):
    text = CNN_CONFIG
    for old, new in change.items():
        assert old in text
        text = text.replace(old, new)
    (image_folder / "bad.yaml").write_text(text)
    result = invoke("train", "bad.yaml", "-q")
    assert result.exit_code == 2, result.output
    assert message in result.stderr and "Traceback" not in result.stderr
    assert not (image_folder / "out").exists()


@pytest.mark.parametrize(
    ("layers", "message"),
    [
        ([{"type": "conv", "filters": 10**9, "kernel": 3, "padding": "same"}, {"type": "maxpool"}],
         "its layers need arrays of the shapes [(1000000000, 3, 3, 3), (1000000000,),"),
        ([{"type": "conv", "filters": 4, "kernel": 9}], "layer 1 (conv)'s kernel [9, 9] is larger than"),
        ([{"type": "pool"}], "layer 1's type should be one of dense, conv"),
    ],
)  # fmt: skip
def test_a_crafted_layer_list_in_a_model_file_is_refused_before_anything_is_allocated(
    image_folder, layers, message
):
    assert invoke("train", "cnn.yaml", "-q").exit_code == 0
    with np.load("out/model.npz", allow_pickle=False) as archive:
        arrays = {name: archive[name] for name in archive.files}
    meta = json.loads(str(arrays.pop("meta")))
    meta["layers"] = layers
    np.savez("out/model.npz", meta=np.array(json.dumps(meta)), **arrays)
    result = invoke("predict", "out", "images.csv")
    assert result.exit_code == 2 and "is damaged" in result.stderr and message in result.stderr, result.stderr
    assert "Traceback" not in result.output

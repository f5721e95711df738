"""The engines: which one a run picks, what it says, and that a run keeps its engine across a resume."""

import json
import time

import numba
import numpy as np
import pytest
from click.testing import CliRunner

from nncli import Network, train
from nncli.cli import main
from nncli.engines import registry as engines
from nncli.engines.compiled import loops as compiled
from nncli.engines.compiled import units
from nncli.engines.registry import Stepper
from nncli.errors import NncliError
from nncli.model.losses import OUTPUTS
from nncli.optim.optimizers import make_optimizer
from nncli.training.loop import Trainer

CONFIG = """data: {path: small.csv, target: label}
model: {hidden: [3], activation: tanh}
training: {alpha: 0.5, batch: batch, epochs: EPOCHS, engine: ENGINE}
output: {dir: out}
"""


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def problem(m=40):
    rng = np.random.default_rng(2)
    return rng.normal(size=(m, 4)), np.eye(3)[rng.integers(0, 3, m)]


def test_auto_takes_numpy_for_a_run_of_moments_and_the_compiled_step_for_a_run_of_seconds():
    # 1,797 rows of 64-64-10 in steps of 32: about 4.9 ms an epoch on the numpy engine, by the estimate
    per_epoch = engines.numpy_seconds(multiply_adds=4736, rows=1797, steps=57, epochs=1)
    assert per_epoch == pytest.approx(57 * 40e-6 + 6 * 1797 * 4736 / 20e9)
    enough = int(np.ceil(engines.AUTO_MIN_SECONDS / per_epoch))
    assert engines.resolve("auto", 4736, 1797, 57, enough - 1) == "numpy"
    assert engines.resolve("auto", 4736, 1797, 57, enough) == "compiled"
    assert engines.resolve("numpy", 4736, 1797, 57, 10**6) == "numpy"
    assert engines.resolve("compiled", 4736, 1797, 57, 1) == "compiled"


def test_auto_measures_a_network_by_its_multiply_adds_and_image_layers():
    """Conv 3×3×8 same on 8×8 images (8·9·64 = 4,608 multiply-adds from 80 parameters), then 512 → 10
    (5,120): 9,728 multiply-adds an example, where the parameters number 5,210."""
    layers = [{"type": "conv", "filters": 8, "kernel": 3, "padding": "same"}, {"type": "flatten"}]
    net = Network.from_layers(input_shape=(1, 8, 8), layers=layers, n_out=10, output="softmax", seed=0)
    assert net.multiply_adds == 8 * 9 * 64 + 512 * 10 == 9728 and net.theta.size == 80 + 5130
    assert net.n_regularized == 72 + 5120  # what the estimate counted before: the weights
    assert net.image_layers == 2  # the convolution and the flatten
    rows, steps = 1797, 57
    per_epoch = engines.numpy_seconds(9728, rows, steps, 1, image_layers=2)
    assert per_epoch == pytest.approx(57 * (40e-6 + 2 * 400e-6) + 6 * 1797 * 9728 / 20e9)
    epochs = int(np.ceil(engines.AUTO_MIN_SECONDS / per_epoch))
    assert engines.resolve("auto", net.multiply_adds, rows, steps, epochs, net.image_layers) == "compiled"
    assert engines.resolve("auto", net.n_regularized, rows, steps, epochs) == "numpy"  # weights, no images
    dense = Network([4, 5, 3])
    assert dense.multiply_adds == 4 * 5 + 5 * 3 and dense.image_layers == 0  # a dense stack: its weights


def test_without_numba_auto_takes_numpy_and_compiled_says_what_to_install(monkeypatch):
    monkeypatch.setattr(engines, "kernels", lambda: None)
    assert engines.resolve("auto", 4736, 1797, 57, 10**6) == "numpy"
    with pytest.raises(NncliError, match=r"engine 'compiled' needs numba.*pip install numba"):
        engines.resolve("compiled", 4736, 1797, 57, 1)
    X, Y = problem()
    with pytest.raises(NncliError, match="needs numba"):
        train(Network([4, 5, 3], seed=0), X, Y, engine="compiled")


def test_numba_running_as_plain_python_is_not_used(monkeypatch):
    monkeypatch.setattr(numba.config, "DISABLE_JIT", True)
    assert not compiled.usable()
    monkeypatch.setattr(numba.config, "DISABLE_JIT", False)
    assert compiled.usable()


def test_an_unknown_engine_is_named_with_the_choices():
    X, Y = problem()
    with pytest.raises(NncliError, match="unknown engine 'fast'; expected one of: auto, numpy, compiled"):
        train(Network([4, 5, 3], seed=0), X, Y, engine="fast")


def chosen(sizes, m, engine="compiled", cores=2, optimizer="momentum", clip_norm=None) -> str:
    net = Network(sizes, seed=0)
    step = Stepper(
        net, make_optimizer(optimizer, net.theta.size, net.dtype), 0.01, None, engine, clip_norm, cores
    )
    return step.choose(m).name


def test_the_registry_picks_a_path_by_engine_optimizer_clipping_and_the_work():
    """By m × weights on the compiled engine: the loops, then BLAS's gemm on one thread, then shared among
    the cores by units for fewer than MIN_ROWS_TO_SPLIT rows, by chunks of rows for more; the example path
    for one row on the numpy engine, and the chunked path for whatever no faster path runs."""
    small, wide = [4, 5, 3], [100, 1200, 10]  # 35 and 132,000 weights
    assert chosen(small, 8) == "compiled-loops"  # work 280
    blas = engines.gemm_steps(1)
    assert chosen(small, 300) == ("compiled-blas" if blas else "compiled-loops")  # work 10,500
    threaded = engines.gemm_steps(2)
    assert chosen(wide, 16) == ("compiled-blas-threaded" if threaded else "chunked")  # work 2.1 M
    assert chosen(wide, 16, cores=1) == "chunked"
    assert chosen(wide, 1024) == ("compiled-blas-chunks" if threaded else "chunked")  # work 135 M
    assert chosen(wide, 1024, cores=1) == "chunked"
    assert chosen(wide, 1024, clip_norm=1.0) == "chunked"
    assert chosen(small, 1, engine="numpy") == "example"
    assert chosen(small, 8, engine="numpy") == "chunked"
    assert chosen(small, 8, clip_norm=1.0) == "chunked"


def test_image_layers_take_the_compiled_images_path_on_the_compiled_engine_and_the_layers_path_else():
    layers = [{"type": "conv", "filters": 2, "kernel": 3}, {"type": "avgpool"}]
    pooled = [{"type": "conv", "filters": 2, "kernel": 3}, {"type": "maxpool"}]
    for specs, engine, path in [
        (layers, "compiled", "compiled-images"),  # the convolution compiled, the average pooling its own
        (pooled, "compiled", "compiled-images"),
        (layers[1:], "compiled", "layers"),  # average pooling alone: nothing for the path to compile
        (pooled, "numpy", "layers"),
    ]:
        net = Network.from_layers(input_shape=(1, 6, 6), layers=specs, n_out=2, output="softmax", seed=0)
        optimizer = make_optimizer("adam", net.theta.size, net.dtype)
        assert Stepper(net, optimizer, 0.01, None, engine).choose(16).name == path, (specs, engine)


def test_a_forced_path_runs_where_it_can_and_is_refused_where_it_cannot():
    net = Network([4, 5, 3], seed=0)
    optimizer = make_optimizer("momentum", net.theta.size, net.dtype)
    X, Y = problem()
    step = Stepper(net, optimizer, 0.01, engine="compiled", path="compiled-loops")
    step.take(X, Y, np.arange(30), 0.1)  # far past its cheapest range, and still right
    assert step.paths == {30: "compiled-loops"}
    with pytest.raises(NncliError, match="the step path 'example' cannot run steps of 8 rows here"):
        Stepper(net, optimizer, 0.01, engine="numpy", path="example").take(X, Y, np.arange(8), 0.1)
    with pytest.raises(NncliError, match="unknown step path 'fastest'"):
        Stepper(net, optimizer, 0.01, path="fastest")


@pytest.mark.parametrize("batch", ["batch", "mini-batch", "stochastic"])
def test_the_compiled_engine_gives_the_same_bits_on_every_run(batch):
    X, Y = problem()
    nets = [Network([4, 7, 3], activation="relu", seed=3) for _ in range(2)]
    for net in nets:
        train(net, X, Y, alpha=0.1, lambda_=0.05, batch=batch, batch_size=8, epochs=4, engine="compiled")
    assert nets[0].theta.tobytes() == nets[1].theta.tobytes()


def test_a_resumed_run_keeps_its_engine_however_long_it_now_runs():
    X, Y = problem()
    first = Trainer(Network([4, 6, 3], seed=1), X, Y, batch="mini-batch", batch_size=8)
    assert first.run(2).engine == "numpy"  # a run of moments
    second = Trainer(Network([4, 6, 3], seed=1), X, Y, batch="mini-batch", batch_size=8)
    second.restore(*first.checkpoint())
    assert second.run(10**6, should_stop=lambda: second.state.epoch >= 3).engine == "numpy"


def test_the_command_line_reports_the_engine_and_refuses_to_resume_on_another(workdir):
    (workdir / "run.yaml").write_text(CONFIG.replace("EPOCHS", "5").replace("ENGINE", "compiled"))
    result = invoke("train", "run.yaml")
    assert result.exit_code == 0, result.output
    assert "for 5 epochs in" in result.stderr and "on the compiled engine" in result.stderr
    assert json.loads((workdir / "out/metrics.json").read_text())["engine"] == "compiled"
    (workdir / "run.yaml").write_text(CONFIG.replace("EPOCHS", "9").replace("ENGINE", "numpy"))
    result = invoke("train", "run.yaml", "--resume")
    assert result.exit_code == 2
    assert "with training.engine 'numpy': it was trained with 'compiled'" in result.stderr
    (workdir / "run.yaml").write_text(CONFIG.replace("EPOCHS", "9").replace("ENGINE", "auto"))
    result = invoke("train", "run.yaml", "--resume", "-q")
    assert result.exit_code == 0, result.output
    metrics = json.loads((workdir / "out/metrics.json").read_text())
    assert metrics["engine"] == "compiled" and metrics["epochs"] == 9


def test_a_config_names_an_unknown_engine(workdir):
    (workdir / "run.yaml").write_text(CONFIG.replace("EPOCHS", "5").replace("ENGINE", "gpu"))
    result = invoke("train", "run.yaml")
    assert result.exit_code == 2
    assert "training.engine" in result.stderr and "auto, numpy, compiled" in result.stderr


# ------------------------------------------------------------------ the compiled units


def test_the_compiled_sigmoid_and_tanh_agree_with_numpy_to_a_few_ulp():
    from nncli.model.activations import sigmoid, tanh

    rng = np.random.default_rng(0)
    edges = [0.0, -0.0, 1e-300, -1e-300, 1e-9, 19.999, 20.0, 20.5, -20.5, 300.0, -300.0, 708.0, 709.5, -745.0]
    z = np.concatenate([rng.normal(size=5000) * 4, np.linspace(-40, 40, 20001), edges])
    for code, numpy_engine, exact in ((0, sigmoid, None), (1, tanh, np.tanh(z))):
        mine = z.copy()
        units.activate(mine, code)
        reference = numpy_engine(z)
        # values lie in [−1, 1]: a few units of the last place near 1, and relatively so away from 0
        assert np.max(np.abs(mine - reference)) <= 2 * np.finfo(np.float64).eps
        away = np.abs(reference) > 0.5
        assert np.max(np.abs(mine - reference)[away] / np.abs(reference[away])) <= 1e-15
        if exact is not None:  # the formula 1 − 2/(e^(2z) + 1) itself is as close to tanh on both engines
            assert np.max(np.abs(mine - exact)) <= 2 * np.finfo(np.float64).eps
    mine = np.array([20.0, 1000.0, -1000.0])
    units.activate(mine, 1)
    assert mine.tolist() == [1.0, 1.0, -1.0]  # tanh of |z| ≥ 20 is ±1 exactly, as in double precision
    sigmoid = np.array([800.0, -800.0])
    units.activate(sigmoid, 0)
    assert sigmoid[0] == 1.0 and 0.0 <= sigmoid[1] < 1e-300


@pytest.mark.parametrize("code", [0, 1, 2, 3])
def test_the_compiled_activations_keep_nan_and_saturate_at_infinity(code):
    z = np.array([np.nan, np.inf, -np.inf, 0.5], dtype=np.float64)
    units.activate(z, code)
    assert np.isnan(z[0])
    limits = {0: (1.0, 0.0), 1: (1.0, -1.0), 2: (np.inf, 0.0), 3: (np.inf, -np.inf)}[code]
    assert (z[1], z[2]) == limits


def test_the_compiled_float32_activations_match_float64():
    z = np.random.default_rng(1).normal(size=(300, 7)) * 5
    for code in range(4):
        wide, narrow = z.copy(), z.astype(np.float32)
        units.activate(wide, code)
        units.activate(narrow, code)
        np.testing.assert_allclose(narrow, wide, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("engine", ["numpy", "compiled"])
@pytest.mark.parametrize("batch", ["batch", "stochastic"])
def test_divergence_is_caught_on_either_engine(engine, batch):
    """A step that overflows the weights gives J = inf or nan, on the compiled step as on NumPy's."""
    X = np.arange(1.0, 6.0).reshape(-1, 1)
    Y = 2.0 * X
    net = Network([1, 3, 1], activation="tanh", output="linear", seed=0)
    history = train(net, X, Y, alpha=50.0, beta=0.0, batch=batch, epochs=200, engine=engine)
    assert history.stop_reason == "diverged" and len(history) < 200
    assert np.isfinite(net.theta).all()  # the best weights so far are put back


@pytest.mark.parametrize("m", [1, 4, 7, 13])  # four rows at a time, and what is left over
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_the_compiled_gather_takes_the_rows_and_the_targets_as_columns(m, dtype):
    rng = np.random.default_rng(m)
    X, Y = rng.normal(size=(40, 6)).astype(dtype), rng.normal(size=(40, 3)).astype(dtype)
    rows = rng.permutation(40)[:m]
    X_rows, Y_columns = np.empty((m, 6), dtype=dtype), np.empty((3, m), dtype=dtype)
    net = Network([6, 3], output="linear", dtype=dtype)
    compiled.CompiledPasses(net).gather(X, Y, rows, X_rows, Y_columns)
    assert X_rows.tobytes() == X[rows].tobytes()
    assert Y_columns.tobytes() == np.ascontiguousarray(Y[rows].T).tobytes()


@pytest.mark.parametrize("output", ["sigmoid", "softmax", "linear"])
def test_the_compiled_output_units_give_the_same_in_rows_and_in_columns(output):
    """The output kernel takes examples as rows (the compiled step) or as columns (the BLAS path): the
    same a^(L), δ^(L) and loss either way, and the loss of nncli.model.losses."""
    rng = np.random.default_rng(2)
    m, K = 9, 4
    z = rng.normal(scale=3.0, size=(m, K))
    Y = np.eye(K)[rng.integers(0, K, m)] if output == "softmax" else rng.random((m, K))
    c = 0.5
    rows_z, rows_delta = z.copy(), np.empty((m, K))
    shape = (m, K, 1)
    code = units.OUTPUT_CODES[output]
    rows_loss = units.output_and_delta(
        rows_z.reshape(shape), Y.reshape(shape), rows_delta.reshape(shape), c, code
    )
    columns_z, columns_Y, columns_delta = (
        np.ascontiguousarray(z.T),
        np.ascontiguousarray(Y.T),
        np.empty((K, m)),
    )
    shape = (1, K, m)
    columns_loss = units.output_and_delta(
        columns_z.reshape(shape), columns_Y.reshape(shape), columns_delta.reshape(shape), c, code
    )
    expected_a, expected_loss = OUTPUTS[output].activate_and_loss(z, Y)
    np.testing.assert_allclose(rows_z, expected_a, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(columns_z.T, expected_a, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(columns_delta.T, c * (expected_a - Y), rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(rows_delta, c * (expected_a - Y), rtol=1e-13, atol=1e-15)
    assert rows_loss == pytest.approx(expected_loss, rel=1e-13)
    assert columns_loss == pytest.approx(expected_loss, rel=1e-13)


def test_a_slow_first_compiled_step_says_it_is_compiling_once(monkeypatch):
    from nncli.engines import registry

    heard = []
    monkeypatch.setattr(registry, "COMPILE_NOTICE_SECONDS", 0.05)
    with registry.CompileNotice(heard.append):
        time.sleep(0.5)  # a step that compiles
    with registry.CompileNotice(heard.append):
        pass  # a step whose kernels were in the cache
    time.sleep(0.1)
    assert heard == [registry.COMPILE_NOTICE]


def test_the_compile_notice_reaches_stderr_through_train(workdir, monkeypatch):
    from nncli.engines import registry

    monkeypatch.setattr(registry, "COMPILE_NOTICE_SECONDS", 0.0)
    monkeypatch.setattr(registry.CompileNotice, "__exit__", lambda self, *exc: self.timer.join())
    (workdir / "run.yaml").write_text(CONFIG.replace("EPOCHS", "2").replace("ENGINE", "compiled"))
    result = invoke("train", "run.yaml")
    assert result.exit_code == 0, result.output
    assert result.stderr.count("compiling the compiled engine's kernels for this machine") >= 1
    numpy_run = invoke("train", "run.yaml", "--overwrite", "--set", "training.engine=numpy")
    assert "compiling" not in numpy_run.stderr

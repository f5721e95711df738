"""Every step path of the registry gives the same weights as training written plainly, for every
activation, output, optimizer and batch mode; and the paths' own particulars (examples, chunks, threads)."""

import itertools
import os

import numpy as np
import pytest
from conftest import targets_for
from reference_training import plain_train

import nncli.engines.registry
from nncli import Network, train
from nncli.engines.registry import PATHS, StepContext
from nncli.model.activations import ACTIVATIONS
from nncli.model.losses import OUTPUTS
from nncli.optim.batches import BATCH_MODES, epoch_batches
from nncli.optim.optimizers import OPTIMIZERS, make_optimizer
from nncli.training.loop import Trainer

NO_BLAS_STEP = "the compiled BLAS steps cannot run here (no 64-bit OpenBLAS gemm)"
NO_THREADED_STEP = "the BLAS step cannot share a step here (no 64-bit OpenBLAS gemm, or one numba thread)"
# Each path on the engines it belongs to (the example path is the numpy engine's; the compiled paths need
# numba); a path that cannot run a case here (no 64-bit OpenBLAS gemm, one numba thread) is skipped.
ROUTES = [
    ("compiled-loops", "compiled"),
    ("compiled-blas", "compiled"),
    ("compiled-blas-threaded", "compiled"),
    ("compiled-blas-chunks", "compiled"),
    ("example", "numpy"),
    ("chunked", "numpy"),
    ("chunked", "compiled"),
    ("layers", "numpy"),
    ("layers", "compiled"),
]
# every path of the registry; the partitioned path needs a Dask cluster and is held to local training in
# tests/test_dask.py, and the compiled-images path runs networks with image layers only and is held to
# plain training in tests/test_convolution.py
assert {path for path, _ in ROUTES} == {path.name for path in PATHS} - {"partitioned", "compiled-images"}


def straightforward_train(net, X, Y, **settings):
    return plain_train(net, X, Y, **settings)


def batch_sizes(m: int, batch: str, batch_size: int) -> set[int]:
    rows = epoch_batches(m, BATCH_MODES[batch], batch_size, np.random.default_rng(0))
    return {len(range(m)[r]) if isinstance(r, slice) else len(r) for r in rows}


def trained_on(path, engine, net, X, Y, cores=2, **settings):
    """``net`` trained through ``path`` on ``engine`` (a pytest skip where the path cannot run every step
    of the epoch here), and its history."""
    epochs = settings.pop("epochs")
    optimizer = make_optimizer(
        settings.get("optimizer", "momentum"), net.theta.size, net.dtype, settings["beta"]
    )
    context = StepContext(net, optimizer, engine, settings.get("clip_norm"), cores)
    route = next(p for p in PATHS if p.name == path)
    sizes = batch_sizes(len(X), settings["batch"], settings["batch_size"])
    if engine == "compiled" and nncli.engines.registry.kernels() is None:
        pytest.skip("numba is not available")
    if not all(route.runs(context, m) for m in sizes):
        pytest.skip(f"{path} does not run these steps on the {engine} engine")
    return Trainer(net, X, Y, engine=engine, path=path, cores=cores, **settings).run(epochs)


CASES = [
    (path, engine, batch)
    for path, engine in ROUTES
    for batch in sorted(BATCH_MODES)
    if path != "example" or batch == "stochastic"  # the example path runs steps of one row only
]


@pytest.mark.parametrize("optimizer", sorted(OPTIMIZERS))
@pytest.mark.parametrize(("path", "engine", "batch"), CASES)
def test_every_path_equals_plain_training_for_every_activation_and_output(path, engine, optimizer, batch):
    rng = np.random.default_rng(11)
    X = rng.normal(size=(19, 5))
    for activation in sorted(ACTIVATIONS):
        for output in sorted(OUTPUTS):
            Y = targets_for(output, rng, 19, 3)
            kwargs = dict(activation=activation, output=output, initializer="xavier", seed=4)
            fast, plain = Network([5, 6, 4, 3], **kwargs), Network([5, 6, 4, 3], **kwargs)
            settings = dict(
                alpha=0.05,
                lambda_=0.7,
                beta=0.8,
                batch=batch,
                batch_size=8,
                epochs=2,
                seed=2,
                optimizer=optimizer,
            )
            history = trained_on(path, engine, fast, X, Y, **dict(settings))
            costs = straightforward_train(plain, X, Y, **settings)
            np.testing.assert_allclose(fast.theta, plain.theta, rtol=0, atol=1e-12)
            steps = len(costs) // 2
            assert history[1].train_cost == pytest.approx(np.mean(costs[steps:]), rel=1e-12)


@pytest.mark.parametrize("optimizer", sorted(OPTIMIZERS))
@pytest.mark.parametrize("engine", ["numpy", "compiled"])
def test_clipping_on_the_chunked_path_equals_plain_training(engine, optimizer):
    """Clipping needs ‖D‖ over all of θ before any of it moves: the registry sends it to the chunked path."""
    path = "chunked"
    rng = np.random.default_rng(5)
    X, Y = rng.normal(size=(24, 4)), np.eye(3)[rng.integers(0, 3, 24)]
    fast, plain = (Network([4, 6, 3], activation="tanh", seed=1) for _ in range(2))
    settings = dict(alpha=0.5, lambda_=0.3, beta=0.9, batch="mini-batch", batch_size=8, epochs=3, seed=1)
    settings.update(optimizer=optimizer, clip_norm=0.05)
    trained_on(path, engine, fast, X, Y, **dict(settings))
    straightforward_train(plain, X, Y, **settings)
    np.testing.assert_allclose(fast.theta, plain.theta, rtol=0, atol=1e-12)


@pytest.fixture(params=["numpy", "compiled"])
def engine(request):
    if request.param == "compiled" and nncli.engines.registry.kernels() is None:
        pytest.skip("numba is not available")
    return request.param


def test_a_last_mini_batch_of_one_row_takes_the_example_path_and_equals_the_plain_step(engine):
    rng = np.random.default_rng(12)
    X, Y = rng.normal(size=(28, 5)), np.eye(3)[rng.integers(0, 3, 28)]  # 3 batches of 9, then 1 row
    fast, plain = (Network([5, 7, 3], activation="relu", seed=3) for _ in range(2))
    settings = dict(alpha=0.05, lambda_=0.3, beta=0.9, batch="mini-batch", batch_size=9, epochs=2, seed=1)
    history = train(fast, X, Y, **settings, engine=engine)
    costs = straightforward_train(plain, X, Y, **settings)
    np.testing.assert_allclose(fast.theta, plain.theta, rtol=0, atol=1e-12)
    assert history[-1].train_cost == pytest.approx(np.mean(costs[4:]), rel=1e-12)


@pytest.mark.parametrize("scale", [1e3, -1e3])
def test_the_example_path_shifts_a_softmax_whose_exponentials_leave_the_safe_range(scale, engine):
    """z of ±1000 overflows e^z (or makes Σ e^z underflow) unshifted; the shifted softmax stays exact."""
    rng = np.random.default_rng(5)
    X, Y = rng.normal(size=(12, 4)), np.eye(3)[rng.integers(0, 3, 12)]
    fast, plain = (Network([4, 5, 3], activation="tanh", output="softmax", seed=2) for _ in range(2))
    for net in (fast, plain):
        net.layers[-1].b[...] = [scale, scale + 1.0, scale - 2.0]
    settings = dict(alpha=0.05, lambda_=0.1, beta=0.5, batch="stochastic", batch_size=1, epochs=1, seed=0)
    history = train(fast, X, Y, **settings, engine=engine)
    costs = straightforward_train(plain, X, Y, **settings)
    np.testing.assert_allclose(fast.theta, plain.theta, rtol=0, atol=1e-12)
    assert np.isfinite(history[0].train_cost)
    assert history[0].train_cost == pytest.approx(np.mean(costs), rel=1e-12)


@pytest.mark.parametrize("classes", [3, 40])  # Σ e^z of a few units in Python floats, of many in NumPy
def test_the_example_path_sums_a_softmax_of_few_or_many_units_as_the_plain_step(classes, engine):
    rng = np.random.default_rng(9)
    X, Y = rng.normal(size=(20, 4)), np.eye(classes)[rng.integers(0, classes, 20)]
    fast, plain = (Network([4, 5, classes], activation="sigmoid", output="softmax", seed=7) for _ in range(2))
    settings = dict(alpha=0.1, lambda_=0.2, beta=0.9, batch="stochastic", batch_size=1, epochs=2, seed=4)
    history = train(fast, X, Y, **settings, engine=engine)
    costs = straightforward_train(plain, X, Y, **settings)
    np.testing.assert_allclose(fast.theta, plain.theta, rtol=0, atol=1e-12)
    assert history[1].train_cost == pytest.approx(np.mean(costs[20:]), rel=1e-12)


def test_the_example_path_reports_the_accuracy_of_each_example_before_its_step(engine):
    from nncli.model.metrics import ACCURACY

    rng = np.random.default_rng(6)
    X, Y = rng.normal(size=(30, 4)), np.eye(3)[rng.integers(0, 3, 30)]
    fast, plain = (Network([4, 6, 3], activation="sigmoid", seed=1) for _ in range(2))
    history = train(
        fast, X, Y, alpha=0.5, beta=0.0, batch="stochastic", epochs=1, seed=3, metric=ACCURACY, engine=engine
    )
    correct = 0
    for rows in epoch_batches(30, BATCH_MODES["stochastic"], 1, np.random.default_rng(3)):
        correct += ACCURACY.batch_sum(plain.forward(X[rows]), Y[rows])
        _, dW, db = plain.gradients(X[rows], Y[rows])
        for param, grad in zip(plain.weights + plain.biases, dW + db, strict=True):
            param -= 0.5 * grad
    np.testing.assert_allclose(fast.theta, plain.theta, rtol=0, atol=1e-12)
    assert history[0].train_metric == correct / 30


def test_beta_zero_is_plain_gradient_descent(engine):
    rng = np.random.default_rng(0)
    X, Y = rng.normal(size=(10, 3)), np.eye(2)[rng.integers(0, 2, 10)]
    net = Network([3, 4, 2], activation="tanh", seed=1)
    for _ in range(5):
        _, dW, db = net.gradients(X, Y, 0.3)
        expected = [W - 0.1 * g for W, g in zip(net.weights + net.biases, dW + db, strict=True)]
        train(net, X, Y, alpha=0.1, lambda_=0.3, beta=0.0, batch="batch", epochs=1, engine=engine)
        for mine, theirs in zip(net.weights + net.biases, expected, strict=True):
            np.testing.assert_allclose(mine, theirs, rtol=0, atol=1e-14)


def test_float32_trains_in_float32_end_to_end(engine):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(64, 6)).astype(np.float32)
    Y = np.eye(3, dtype=np.float32)[rng.integers(0, 3, 64)]
    net = Network([6, 8, 3], activation="relu", seed=0, dtype=np.float32)
    wide = Network([6, 8, 3], activation="relu", seed=0)
    history = train(net, X, Y, alpha=0.1, epochs=5, batch_size=16, engine=engine)
    train(wide, X.astype(np.float64), Y.astype(np.float64), alpha=0.1, epochs=5, batch_size=16)
    assert net.theta.dtype == np.float32 and all(p.dtype == np.float32 for p in net.params)
    np.testing.assert_allclose(net.theta, wide.theta, rtol=0, atol=1e-4)
    assert np.isfinite(history[-1].train_cost)


@pytest.mark.parametrize("cores", [1, 2, 3])
def test_chunked_and_threaded_steps_equal_the_straightforward_step(cores, engine):
    rng = np.random.default_rng(3)
    X = rng.normal(size=(4500, 6))  # three chunks of rows, shared among the cores
    Y = np.eye(3)[rng.integers(0, 3, 4500)]
    kwargs = dict(activation="tanh", output="softmax", seed=5)
    settings = dict(alpha=0.1, lambda_=0.5, beta=0.9, batch="batch", batch_size=1, seed=0)
    fast, again, plain = (Network([6, 9, 3], **kwargs) for _ in range(3))
    for net in (fast, again):
        Trainer(net, X, Y, **settings, engine=engine, path="chunked", cores=cores).run(4)
    straightforward_train(plain, X, Y, epochs=4, **settings)
    np.testing.assert_allclose(fast.theta, plain.theta, rtol=0, atol=1e-12)
    assert fast.theta.tobytes() == again.theta.tobytes()  # deterministic for a given number of cores


def _train_threaded(X, Y, queue=None):
    net = Network([6, 9, 3], activation="relu", seed=5)
    Trainer(net, X, Y, alpha=0.1, lambda_=0.5, beta=0.9, batch="batch", engine="numpy", cores=2).run(2)
    if queue is not None:
        queue.put(net.theta.tobytes())
    return net.theta.tobytes()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_process_trains_on_threads_of_its_own():
    import multiprocessing

    rng = np.random.default_rng(4)
    X = rng.normal(size=(3000, 6))
    Y = np.eye(3)[rng.integers(0, 3, 3000)]
    in_parent = _train_threaded(X, Y)  # starts the shared helper thread in this process
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_train_threaded, args=(X, Y, queue))
    child.start()
    in_child = queue.get(timeout=60)  # with the parent's pool, the child would wait for a thread it lacks
    child.join(timeout=60)
    assert child.exitcode == 0
    assert in_child == in_parent


@pytest.mark.parametrize(("s_in", "s_out", "m"), [(5, 4, 7), (6, 1, 9), (3, 2, 1)])
def test_the_column_forms_of_a_layer_are_the_row_forms_transposed(s_in, s_out, m):
    """forward_columns, gradient_sums_columns and propagate_columns (examples as columns) against the
    plain forms (examples as rows), including one unit above and one example."""
    net = Network([s_in, s_out], output="linear", seed=3)
    layer = net.layers[0]
    rng = np.random.default_rng(1)
    a, delta = rng.normal(size=(m, s_in)), rng.normal(size=(m, s_out))
    z = np.empty((s_out, m))
    layer.forward_columns(a.T, z)
    np.testing.assert_allclose(z, layer.forward(a).T, rtol=1e-14, atol=1e-14)
    sums = [np.empty((s_out, s_in)), np.empty(s_out)]
    layer.gradient_sums_columns(np.ascontiguousarray(delta.T), a.T, sums, np.ones(m))
    for mine, plain in zip(sums, layer.gradient_sums(delta, a), strict=True):
        np.testing.assert_allclose(mine, plain, rtol=1e-14, atol=1e-14)
    below = np.empty((s_in, m))
    layer.propagate_columns(np.ascontiguousarray(delta.T), below)
    np.testing.assert_allclose(below, layer.propagate(delta).T, rtol=1e-14, atol=1e-14)


needs_threaded = pytest.mark.skipif(not nncli.engines.registry.gemm_steps(2), reason=NO_THREADED_STEP)


@pytest.mark.parametrize("sizes", [[7, 9, 5, 3], [7, 1, 4], [7, 3, 1]])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("threads", [1, 2])
def test_the_blas_step_shares_units_among_threads_and_equals_the_straightforward_step(
    monkeypatch, sizes, dtype, threads
):
    """Layers of one unit leave a thread no share of them; the step still equals the plain one, on one
    thread or two."""
    if not nncli.engines.registry.gemm_steps(threads):
        pytest.skip(NO_THREADED_STEP if threads > 1 else NO_BLAS_STEP)
    from nncli.engines.compiled import blas as blas_step

    kernels = []
    run = blas_step.BlasStep.run
    monkeypatch.setattr(
        blas_step.BlasStep, "run", lambda self, *a: kernels.append(self.kernel) or run(self, *a)
    )
    rng = np.random.default_rng(8)
    X = rng.normal(size=(90, 7)).astype(dtype)
    output = "sigmoid" if sizes[-1] == 1 else "softmax"
    Y = targets_for(output, rng, 90, sizes[-1]).astype(dtype)
    settings = dict(alpha=0.1, lambda_=0.4, beta=0.9, batch="mini-batch", batch_size=16, epochs=3, seed=6)
    fast, plain = (Network(sizes, activation="tanh", output=output, seed=2, dtype=dtype) for _ in range(2))
    path = "compiled-blas-threaded" if threads > 1 else "compiled-blas"
    history = trained_on(path, "compiled", fast, X, Y, **dict(settings))
    costs = straightforward_train(plain, X, Y, **settings)
    # every step of 16 rows and each last one of 10, on the kernel for that many threads
    assert kernels == [blas_step.step if threads > 1 else blas_step.serial_step] * (3 * 6)
    tolerance = 1e-12 if dtype == np.float64 else 1e-5
    np.testing.assert_allclose(fast.theta, plain.theta, rtol=0, atol=tolerance)
    assert history[-1].train_cost == pytest.approx(np.mean(costs[12:]), rel=tolerance)


def _train_wide(X, Y, queue=None):
    from nncli.engines.compiled import blas as blas_step

    kernels = set()
    run = blas_step.BlasStep.run
    blas_step.BlasStep.run = lambda self, *a: kernels.add(self.kernel.__name__) or run(self, *a)
    net = Network([20, 30, 3], activation="relu", seed=5)
    settings = dict(alpha=0.1, lambda_=0.5, beta=0.9, batch="mini-batch", batch_size=64)
    try:
        # where the threaded path can run, force it; elsewhere (a forked child) let the registry choose
        threaded = nncli.engines.registry.gemm_steps(2)
        path = "compiled-blas-threaded" if threaded else "compiled-blas"
        Trainer(net, X, Y, **settings, engine="compiled", path=path, cores=2).run(2)
    finally:
        blas_step.BlasStep.run = run
    if queue is not None:
        queue.put((net.theta, kernels))
    return net.theta, kernels


@needs_threaded
@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_process_forked_after_threaded_steps_trains_on_the_serial_step():
    """GNU OpenMP's threads do not survive a fork: the child takes the serial step, to the same weights."""
    import multiprocessing

    rng = np.random.default_rng(4)
    X = rng.normal(size=(300, 20))
    Y = np.eye(3)[rng.integers(0, 3, 300)]
    in_parent, kernels_in_parent = _train_wide(X, Y)
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_train_wide, args=(X, Y, queue))
    child.start()
    in_child, kernels_in_child = queue.get(timeout=60)
    child.join(timeout=60)
    assert child.exitcode == 0
    assert kernels_in_parent == {"step"} and kernels_in_child == {"serial_step"}
    np.testing.assert_allclose(in_child, in_parent, rtol=0, atol=1e-12)


@pytest.mark.parametrize(("setting", "usable"), [("workqueue", False), ("forksafe", False), ("omp", None)])
def test_the_threaded_step_runs_only_on_a_threading_layer_that_threads_may_share(
    monkeypatch, setting, usable
):
    """numba's workqueue layer aborts the process when two threads run parallel code at once."""
    import numba

    from nncli.engines.compiled import cblas

    monkeypatch.setattr(numba.config, "THREADING_LAYER", setting)
    expected = cblas.layer_importable("omp") if usable is None else usable
    assert cblas.threads_usable() == (expected and numba.config.NUMBA_NUM_THREADS > 1)
    if not expected:
        assert not nncli.engines.registry.gemm_steps(2)


@pytest.mark.parametrize("optimizer", ["momentum", "adam"])
@pytest.mark.parametrize("clip_norm", [None, 1e-3])
@pytest.mark.parametrize("sizes", [[6, 9, 3], [1100, 960, 3]], ids=["small", "past-the-split"])
def test_the_update_is_shared_among_threads_only_for_a_large_theta_and_equals_one_range(
    sizes, clip_norm, optimizer, engine
):
    """Two threads' gradients, added and applied over θ in one range or in two: the same θ and state."""
    from nncli.engines.numpy_engine import MIN_ENTRIES_TO_SHARE_UPDATE, NumpyPasses, RangeUpdate, shared_pool

    net = Network(sizes, activation="tanh", seed=0)
    rng = np.random.default_rng(1)
    gradients = [rng.normal(size=net.theta.size) * 1e-3 for _ in range(2)]
    shared_count = 2 if net.theta.size >= MIN_ENTRIES_TO_SHARE_UPDATE else 1
    kernels = nncli.engines.registry.kernels()
    passes = kernels.CompiledPasses(net) if engine == "compiled" else NumpyPasses(net)
    results = []
    for pool, ranges in ((shared_pool(1), shared_count), (None, 1)):
        optimizer_ = make_optimizer(optimizer, net.theta.size, net.dtype, 0.9, 0.999, 1e-8)
        copies = [g.copy() for g in gradients]
        moved = Network(sizes, activation="tanh", seed=0)
        update = RangeUpdate(moved, optimizer_, copies, passes, pool, clip_norm)
        assert len(update.parts) == ranges
        squares = update.run(0.01, 1e-4)
        update.run(0.01, 1e-4)  # a second step reads the state the first one left
        results.append((moved.theta.copy(), [a.copy() for a in optimizer_.state.values()], squares))
    (theta_a, state_a, squares_a), (theta_b, state_b, squares_b) = results
    assert sizes == [6, 9, 3] or shared_count == 2  # the large network is past the split
    np.testing.assert_allclose(theta_a, theta_b, rtol=0, atol=1e-15)
    for a, b in zip(state_a, state_b, strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-15)
    assert squares_a == pytest.approx(squares_b, rel=1e-12)
    assert not np.array_equal(theta_a, net.theta)  # θ moved


@pytest.mark.parametrize("output", ["sigmoid", "linear"])
def test_the_chunked_path_with_one_output_unit_equals_plain_training_for_every_activation(output, engine):
    """One unit above the last hidden layer: its error passes down as an outer product, which the compiled
    passes make and scale by g′ row by row."""
    rng = np.random.default_rng(8)
    X = rng.normal(size=(40, 5))
    Y = targets_for(output, rng, 40, 1)
    for activation in sorted(ACTIVATIONS):
        kwargs = dict(activation=activation, output=output, initializer="xavier", seed=6)
        fast, plain = Network([5, 7, 4, 1], **kwargs), Network([5, 7, 4, 1], **kwargs)
        settings = dict(alpha=0.1, lambda_=0.2, beta=0.9, batch="mini-batch", batch_size=16, epochs=3, seed=3)
        trained_on("chunked", engine, fast, X, Y, **dict(settings))
        straightforward_train(plain, X, Y, **settings)
        np.testing.assert_allclose(fast.theta, plain.theta, rtol=0, atol=1e-12)


def test_a_chunked_step_is_cut_into_chunks_of_the_same_bytes_in_either_precision_and_as_many_per_thread():
    from nncli.engines.numpy_engine import CHUNK_ROWS, MIN_ROWS_TO_SPLIT, chunk_spans

    def sizes(spans):
        return [span.stop - span.start for span in spans]

    spans, threads = chunk_spans(20000, 8, 2)  # W3 in float64: ten chunks of 2,000 rows, five a thread
    assert threads == 2 and sizes(spans) == [2000] * 10
    spans, threads = chunk_spans(20000, 4, 2)  # float32: five chunks of twice the rows, made six
    assert threads == 2 and sizes(spans) == [3333, 3334, 3333, 3333, 3334, 3333]
    assert max(sizes(chunk_spans(10**6, 4, 3)[0])) <= 2 * CHUNK_ROWS
    spans, threads = chunk_spans(3 * CHUNK_ROWS, 8, 2)  # three chunks' rows on two threads: four chunks
    assert threads == 2 and len(spans) == 4 and sum(sizes(spans)) == 3 * CHUNK_ROWS
    assert chunk_spans(MIN_ROWS_TO_SPLIT - 1, 8, 2)[1] == 1  # a small step stays on one thread
    spans, threads = chunk_spans(1500, 8, 2)  # less than a chunk's rows: still a chunk for each core
    assert threads == 2 and sizes(spans) == [750, 750]
    for m, cores in [(1, 2), (1500, 2), (4500, 3), (9000, 4), (20001, 2)]:
        spans, threads = chunk_spans(m, 8, cores)
        assert sum(sizes(spans)) == m and spans[0].start == 0 and len(spans) % threads == 0
        assert all(a.stop == b.start for a, b in itertools.pairwise(spans))


@needs_threaded
# a C-ordered X is read where it lies, another gathered (each order compiles the kernel once more: one
# precision of it suffices)
@pytest.mark.parametrize(("dtype", "order"), [(np.float64, "C"), (np.float32, "C"), (np.float64, "F")])
@pytest.mark.parametrize(("batch", "batch_size"), [("batch", 1), ("mini-batch", 2500)])
def test_the_chunks_step_shares_chunks_of_rows_among_threads_and_equals_the_chunked_path(
    dtype, batch, batch_size, order
):
    """Several chunks on each of two threads, each thread's sums added into its own gradient: the same θ,
    J and accuracy as the chunked path's, and the same bytes again on a second run."""
    from nncli.model.metrics import ACCURACY

    rng = np.random.default_rng(3)
    X = np.asarray(rng.normal(size=(9000, 6)), dtype=dtype, order=order)
    Y = np.eye(3, dtype=dtype)[rng.integers(0, 3, 9000)]
    settings = dict(alpha=0.1, lambda_=0.5, beta=0.9, batch=batch, batch_size=batch_size, seed=0)
    settings.update(metric=ACCURACY, engine="compiled", cores=2, optimizer="adam")
    results = []
    for path in ("compiled-blas-chunks", "compiled-blas-chunks", "chunked"):
        net = Network([6, 9, 3], activation="tanh", output="softmax", seed=5, dtype=dtype)
        trainer = Trainer(net, X, Y, **settings, path=path)
        history = trainer.run(3)
        assert set(trainer.stepper.paths.values()) == {path}
        results.append((net.theta.copy(), history))
    (theta, history), (again, _), (chunked, chunked_history) = results
    assert theta.tobytes() == again.tobytes()  # deterministic for a given number of threads
    tolerance = 1e-12 if dtype == np.float64 else 1e-5
    np.testing.assert_allclose(theta, chunked, rtol=0, atol=tolerance)
    for mine, theirs in zip(history, chunked_history, strict=True):
        assert mine.train_cost == pytest.approx(theirs.train_cost, rel=tolerance)
        assert mine.train_metric == theirs.train_metric
    assert 0.3 < history[-1].train_metric < 1.0


@needs_threaded
@pytest.mark.parametrize("optimizer", ["momentum", "adam"])
def test_the_chunks_step_moves_a_large_theta_in_one_range_per_thread_and_equals_plain_training(optimizer):
    from nncli.engines.compiled.blas_chunks import ChunkStep
    from nncli.engines.numpy_engine import MIN_ENTRIES_TO_SHARE_UPDATE

    rng = np.random.default_rng(2)
    X, Y = rng.normal(size=(2100, 1100)), np.eye(3)[rng.integers(0, 3, 2100)]  # two chunks, two threads
    fast, plain = (Network([1100, 960, 3], activation="relu", seed=1) for _ in range(2))
    assert fast.theta.size >= MIN_ENTRIES_TO_SHARE_UPDATE
    steps = []
    run = ChunkStep.run
    settings = dict(alpha=0.01, lambda_=0.3, beta=0.9, batch="batch", batch_size=1, seed=0, epochs=2)
    try:
        ChunkStep.run = lambda self, *a: steps.append(self) or run(self, *a)
        trained_on("compiled-blas-chunks", "compiled", fast, X, Y, optimizer=optimizer, **settings)
    finally:
        ChunkStep.run = run
    assert len(steps) == 2 and len(steps[0].ranges) == 3  # two ranges, one for each thread
    straightforward_train(plain, X, Y, optimizer=optimizer, **settings)
    np.testing.assert_allclose(fast.theta, plain.theta, rtol=0, atol=1e-12)


@needs_threaded
def test_steps_of_two_sizes_on_the_chunks_path_share_their_threads_gradients():
    """A run's memory for gradients stays at one vector per thread, whatever its batch sizes."""
    from nncli.engines.registry import Stepper

    rng = np.random.default_rng(0)
    X, Y = rng.normal(size=(4200, 5)), np.eye(3)[rng.integers(0, 3, 4200)]
    net = Network([5, 8, 3], seed=0)
    optimizer = make_optimizer("adam", net.theta.size, net.dtype)
    stepper = Stepper(net, optimizer, 0.1, None, "compiled", cores=2, path="compiled-blas-chunks")
    stepper.take(X, Y, np.arange(2100), 0.1)
    stepper.take(X, Y, np.arange(2100, 4200)[:2050], 0.1)
    assert stepper.paths == {2100: "compiled-blas-chunks", 2050: "compiled-blas-chunks"}
    first, second = (stepper._steps[m].G for m in (2100, 2050))
    assert first.shape == (2, net.theta.size) and first is second

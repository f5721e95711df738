"""The one place that decides what runs a training step: the engine of a run, and the path of each step.

Engines (``training.engine``):

- ``numpy``: NumPy calls only; no compiler is loaded.
- ``compiled``: numba's kernels (``nncli.engines.compiled``). Loading numba costs a process a fraction of a
  second, and more on the first run, which compiles the kernels and caches them on disk.
- ``auto``: ``compiled`` when numba can be imported and the run would take at least ``AUTO_MIN_SECONDS`` on
  the ``numpy`` engine, by a rough estimate, so that the load pays for itself; ``numpy`` otherwise.

Paths (``PATHS``): each declares what it can run — the engine, the layer stack and units, the optimizer,
clipping — and where it is the cheapest, by the work m × weights of one product pass, the rows and the
cores; a step takes the first path that can run it and is the cheapest there. ``Stepper(path=…)`` forces
one path wherever it can run, so that tests hold every path to the general one:

- ``compiled-loops``: the whole step as one compiled call whose products are loops; for steps so small that
  a BLAS call costs more than its arithmetic (work ≤ ``LOOPS_MAX_WORK``); momentum, Nesterov or Adam, no
  clipping.
- ``compiled-blas``: one compiled call whose products are BLAS's gemm on one thread (momentum's velocity
  added into by the gradient's gemm); mid-sized steps (work ≤ ``COMPILED_MAX_WORK``); momentum, Nesterov
  or Adam, no clipping.
- ``compiled-blas-threaded``: the same, its units shared among numba's threads, for larger mini-batches of
  fewer than ``MIN_ROWS_TO_SPLIT`` rows on more than one core.
- ``compiled-blas-chunks``: one compiled call for a step of ``MIN_ROWS_TO_SPLIT`` rows or more on more than
  one core (``nncli.engines.compiled.blas_chunks``): the chunked path's chunks of rows shared among numba's
  threads, gemm on each, with no Python between them; momentum, Nesterov or Adam, no clipping.
- ``compiled-images``: networks with convolution or max pooling layers, on the ``compiled`` engine
  (``nncli.engines.image_step``): each convolution as three large products over the whole batch around
  compiled im2col and its fold, max pooling compiled, every other layer through its own forms, a large
  batch's examples shared among the cores; every optimizer and clipping.
- ``example``: one example a step (m = 1) with vectors, on the ``numpy`` engine.
- ``chunked``: the general path for stacks of dense layers (``nncli.engines.numpy_engine``): every
  activation, optimizer, clipping and batch size; BLAS products, the rest in NumPy calls or, on the
  ``compiled`` engine, one compiled pass each (the optimizer's update fused where
  ``nncli.engines.compiled.updates`` has it).
- ``layers``: every network, whatever its layer types, through the ``Layer`` protocol's own forms
  (``Network.backprop``); a new layer type trains here with no change to the registry.
- ``partitioned``: the ``dask`` engine's only path, for rows the workers of a Dask cluster hold
  (``nncli.distributed``): the ``layers`` path's step, its sums added over the partitions.

The paths give the same weights up to rounding (the tests hold each to the general path to 1e-12 in float64,
for every activation, output, optimizer and batch mode). Each is deterministic for a given machine, so a run
keeps the engine it started with when it is resumed.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from nncli.cores import available_cores
from nncli.errors import NncliError, lookup

ENGINES = {
    "auto": "compiled when numba is installed and the run is long enough to repay loading it",
    "numpy": "NumPy calls only",
    "compiled": "numba's compiled step (needs numba)",
}
# What a run's steps ran on, as its checkpoint records it: an engine, or dask (nncli.distributed), which the
# backend chooses rather than training.engine.
RUN_ENGINES = ("numpy", "compiled", "dask")
AUTO_MIN_SECONDS = 2.0
# The numpy engine's cost model: about 40 µs of calls per step, and 400 µs more for each layer that reads
# images (the layers path's windows, slices and products per example), and the step's products (three
# passes of m × multiply-adds: forward, gradient, error) at 20 GFLOP/s. Rough, but only used to tell a
# run of seconds from a run of minutes.
STEP_CALL_SECONDS = 40e-6
IMAGE_LAYER_STEP_SECONDS = 400e-6
FLOPS = 20e9


@functools.cache
def kernels():
    """``nncli.engines.compiled.loops``, or None where numba cannot be imported or cannot cache its kernels
    (imported on first need: numba takes half a second to import)."""
    try:
        from nncli.engines.compiled import loops as compiled
    except (ImportError, RuntimeError):  # RuntimeError: numba found no folder to cache into
        return None
    return compiled if compiled.usable() else None


def gemm_steps(threads: int = 1) -> bool:
    """Whether ``kernels`` is available and its steps that call BLAS's gemm can run on ``threads`` threads
    here (``nncli.engines.compiled.cblas.available``)."""
    if kernels() is None:
        return False
    from nncli.engines.compiled import cblas

    return cblas.available(threads)


def required_kernels():
    """``nncli.engines.compiled``, or a NncliError saying how to get numba."""
    module = kernels()
    if module is None:
        raise NncliError(
            "engine 'compiled' needs numba, which cannot be imported here; install it "
            "(pip install numba) or choose engine 'auto' or 'numpy'"
        )
    return module


def numpy_seconds(multiply_adds: int, rows: int, steps: int, epochs: int, image_layers: int = 0) -> float:
    """The numpy engine's estimated time for ``epochs`` epochs of ``steps`` steps over ``rows`` rows of a
    network of ``multiply_adds`` per example and forward pass (``Network.multiply_adds``) with
    ``image_layers`` layers reading images (``Network.image_layers``)."""
    per_step = STEP_CALL_SECONDS + image_layers * IMAGE_LAYER_STEP_SECONDS
    return epochs * (steps * per_step + 6.0 * rows * multiply_adds / FLOPS)


def resolve(
    engine: str, multiply_adds: int, rows: int, steps: int, epochs: int, image_layers: int = 0
) -> str:
    """``numpy`` or ``compiled``: the engine a run of this size trains with when ``engine`` is asked for."""
    lookup(ENGINES, engine, "engine")
    if engine == "compiled":
        required_kernels()
    if engine == "auto":
        long_enough = numpy_seconds(multiply_adds, rows, steps, epochs, image_layers) >= AUTO_MIN_SECONDS
        return "compiled" if long_enough and kernels() is not None else "numpy"
    return engine


# Steps by their work, m × the number of weights (the multiply-adds of one product pass).
LOOPS_MAX_WORK = 1 << 13
COMPILED_MAX_WORK = 1 << 20


@dataclass(frozen=True)
class StepContext:
    """What a path looks at to say whether it serves a step of m rows."""

    net: object
    optimizer: object
    engine: str  # numpy or compiled
    clip_norm: float | None
    cores: int

    @property
    def fused_unclipped(self) -> bool:
        """An optimizer the one-call compiled steps fuse (``nncli.engines.compiled.updates``), and no
        clipping (which needs the whole gradient's norm before any of θ moves)."""
        return self.optimizer.name in ("momentum", "nesterov", "adam") and self.clip_norm is None

    def compiled_units(self) -> bool:
        """The compiled engine, fully connected layers, and units the kernels know."""
        return self.engine == "compiled" and kernels() is not None and kernels().serves(self.net)

    def work(self, m: int) -> int:
        return m * self.net.n_regularized


@dataclass(frozen=True)
class Path:
    """A way to run steps: its name; ``runs``, whether it can run a step of m rows in a context at all (its
    engine, layer stack, units, optimizer, clipping); ``cheapest``, whether it is the cheapest of the paths
    that can (its cost, as the range of work where it wins); and ``build``, which makes the step."""

    name: str
    runs: Callable[[StepContext, int], bool]
    cheapest: Callable[[StepContext, int], bool]
    build: Callable  # (context, lambda_, metric, m, shared) -> an object with run(X, Y, rows, alpha)


def _compiled_fused(ctx: StepContext, m: int) -> bool:
    return ctx.fused_unclipped and ctx.compiled_units()


def _blas_runs(threads: Callable[[StepContext], int]):
    return lambda ctx, m: _compiled_fused(ctx, m) and gemm_steps(threads(ctx))


def _loops_cheapest(ctx: StepContext, m: int) -> bool:
    # past LOOPS_MAX_WORK gemm wins, where the BLAS step can run at all
    work = ctx.work(m)
    return work <= LOOPS_MAX_WORK or (work <= COMPILED_MAX_WORK and not gemm_steps(1))


def _many_rows(m: int) -> bool:
    from nncli.engines.numpy_engine import MIN_ROWS_TO_SPLIT

    return m >= MIN_ROWS_TO_SPLIT


def _threaded_cheapest(ctx: StepContext, m: int) -> bool:
    # a step of many rows is shared among the cores by its rows (compiled-blas-chunks, chunked)
    return ctx.work(m) > COMPILED_MAX_WORK and not _many_rows(m) and ctx.cores > 1


def _chunks_cheapest(ctx: StepContext, m: int) -> bool:
    return ctx.work(m) > COMPILED_MAX_WORK and _many_rows(m) and ctx.cores > 1


def _example_runs(ctx: StepContext, m: int) -> bool:
    from nncli.engines import example_step

    return m == 1 and example_step.serves(ctx.net)


def _build_loops(ctx, lambda_, metric, m, shared):
    return kernels().CompiledStep(ctx.net, ctx.optimizer, lambda_, metric, m, shared.gradients(1)[0])


def _build_blas(threads: Callable[[StepContext], int]):
    def build(ctx, lambda_, metric, m, shared):
        from nncli.engines.compiled import blas

        shared.hold_blas_to_one_thread()
        gradient = shared.gradients(1)[0]
        return blas.BlasStep(ctx.net, ctx.optimizer, lambda_, metric, m, threads(ctx), gradient)

    return build


def _build_chunks(ctx, lambda_, metric, m, shared):
    from nncli.engines.compiled import blas_chunks

    shared.hold_blas_to_one_thread()
    return blas_chunks.ChunkStep(ctx.net, ctx.optimizer, lambda_, metric, m, ctx.cores, shared.gradient_rows)


def _build_example(ctx, lambda_, metric, m, shared):
    from nncli.engines import example_step

    return example_step.ExampleStep(
        ctx.net, ctx.optimizer, lambda_, metric, shared.passes, shared.gradients(1)[0], ctx.clip_norm
    )


def _dense_stack(ctx: StepContext, m: int) -> bool:
    """Every layer fully connected: the chunked path's column forms are Dense's."""
    from nncli.model.layers import Dense

    return all(type(layer) is Dense for layer in ctx.net.layers)


def _build_layers(ctx, lambda_, metric, m, shared):
    from nncli.engines import numpy_engine

    return numpy_engine.LayerStep(ctx.net, ctx.optimizer, lambda_, metric, m, shared, ctx.clip_norm)


def _images_runs(ctx: StepContext, m: int) -> bool:
    if ctx.engine != "compiled" or kernels() is None:
        return False
    from nncli.engines import image_step

    return image_step.serves(ctx.net)


def _build_images(ctx, lambda_, metric, m, shared):
    from nncli.engines import image_step

    return image_step.ImageStep(ctx.net, ctx.optimizer, lambda_, metric, m, shared, ctx.clip_norm, ctx.cores)


def _build_partitioned(ctx, lambda_, metric, m, shared):
    from nncli.engines import numpy_engine

    return numpy_engine.PartitionedStep(ctx.net, ctx.optimizer, lambda_, metric, m, shared, ctx.clip_norm)


def _build_chunked(ctx, lambda_, metric, m, shared):
    from nncli.engines import numpy_engine

    return numpy_engine.ChunkedStep(
        ctx.net, ctx.optimizer, lambda_, metric, m, ctx.cores, shared.passes, shared, ctx.clip_norm
    )


PATHS = (
    Path("partitioned", lambda ctx, m: ctx.engine == "dask", lambda ctx, m: True, _build_partitioned),
    Path("compiled-loops", _compiled_fused, _loops_cheapest, _build_loops),
    Path(
        "compiled-blas",
        _blas_runs(lambda ctx: 1),
        lambda ctx, m: LOOPS_MAX_WORK < ctx.work(m) <= COMPILED_MAX_WORK,
        _build_blas(lambda ctx: 1),
    ),
    Path(
        "compiled-blas-threaded",
        _blas_runs(lambda ctx: ctx.cores),
        _threaded_cheapest,
        _build_blas(lambda ctx: ctx.cores),
    ),
    Path("compiled-blas-chunks", _blas_runs(lambda ctx: ctx.cores), _chunks_cheapest, _build_chunks),
    Path("compiled-images", _images_runs, lambda ctx, m: True, _build_images),
    Path("example", _example_runs, lambda ctx, m: ctx.engine == "numpy", _build_example),
    Path("chunked", _dense_stack, lambda ctx, m: True, _build_chunked),
    Path("layers", lambda ctx, m: True, lambda ctx, m: True, _build_layers),
)
PATH_NAMES = tuple(path.name for path in PATHS)


class _Shared:
    """What the paths of one run share: the gradient vectors, the passes object, the helper threads, and
    the hold on BLAS's threads."""

    def __init__(self, ctx: StepContext) -> None:
        from nncli.engines import numpy_engine

        self.ctx = ctx
        self._gradients: list[np.ndarray] = []
        self._gradient_rows: dict[int, np.ndarray] = {}
        if ctx.engine == "compiled" and kernels() is not None and kernels().knows_units(ctx.net):
            self.passes = kernels().CompiledPasses(ctx.net)
        else:
            self.passes = numpy_engine.NumpyPasses(ctx.net)
        self._blas_limit = None

    def gradients(self, count: int) -> list[np.ndarray]:
        while len(self._gradients) < count:
            self._gradients.append(np.zeros_like(self.ctx.net.theta))
        return self._gradients[:count]

    def gradient_rows(self, count: int) -> np.ndarray:
        """``count`` gradient vectors laid out like θ as the rows of one array (for a compiled step that
        gives each of its threads one), shared by the steps of the run that ask for as many."""
        rows = self._gradient_rows.get(count)
        if rows is None:
            rows = self._gradient_rows[count] = np.zeros((count, self.ctx.net.theta.size), self.ctx.net.dtype)
        return rows

    def pool(self):
        from nncli.engines.numpy_engine import shared_pool

        return shared_pool(self.ctx.cores - 1)

    def hold_blas_to_one_thread(self) -> None:
        """Each thread's products run on that thread: BLAS must not start threads of its own too."""
        from nncli.engines.numpy_engine import hold_blas_to_one_thread

        if self._blas_limit is None:
            self._blas_limit = hold_blas_to_one_thread()

    def close(self) -> None:
        if self._blas_limit is not None:
            self._blas_limit.restore_original_limits()
            self._blas_limit = None


# A first compiled step that takes longer than this is compiling numba's kernels (loading them from the disk
# cache takes a fraction of a second): the user hears why the bar waits.
COMPILE_NOTICE_SECONDS = 2.0
COMPILE_NOTICE = (
    "nncli: compiling the compiled engine's kernels for this machine; this happens once per kernel and "
    "takes about 10 to 30 seconds, and later runs load them at once"
)


class CompileNotice:
    """While active, ``notify(COMPILE_NOTICE)`` is called once if ``COMPILE_NOTICE_SECONDS`` pass first."""

    def __init__(self, notify: Callable[[str], None] | None) -> None:
        self.timer = (
            None if notify is None else threading.Timer(COMPILE_NOTICE_SECONDS, notify, (COMPILE_NOTICE,))
        )

    def __enter__(self) -> CompileNotice:
        if self.timer is not None:
            self.timer.daemon = True
            self.timer.start()
        return self

    def __exit__(self, *exc) -> None:
        if self.timer is not None:
            self.timer.cancel()


class Stepper:
    """Steps of a run: for each batch size, the first path of ``PATHS`` that serves it (or the path named
    ``path``, for tests and benchmarks, which must serve it), built once. ``take`` is one step; a step
    path's first step on the ``compiled`` engine tells ``on_note`` when it is compiling kernels."""

    def __init__(
        self,
        net,
        optimizer,
        lambda_: float,
        metric=None,
        engine: str = "numpy",
        clip_norm: float | None = None,
        cores: int | None = None,
        path: str | None = None,
        on_note: Callable[[str], None] | None = None,
    ) -> None:
        if engine == "compiled":
            required_kernels()
        self.on_note = on_note
        cores = available_cores() if cores is None else cores
        self.context = StepContext(net, optimizer, engine, clip_norm, cores)
        self.lambda_, self.metric = lambda_, metric
        self.alpha = None
        self.forced = None if path is None else lookup({p.name: p for p in PATHS}, path, "step path")
        self._steps: dict[int, object] = {}
        self.paths: dict[int, str] = {}  # the path of each batch size met
        self._shared = _Shared(self.context)

    def choose(self, m: int) -> Path:
        """The path a step of m rows takes."""
        if self.forced is not None:
            if not self.forced.runs(self.context, m):
                raise NncliError(f"the step path {self.forced.name!r} cannot run steps of {m} rows here")
            return self.forced
        return next(path for path in PATHS if path.runs(self.context, m) and path.cheapest(self.context, m))

    def take(self, X: np.ndarray, Y: np.ndarray, rows, alpha: float) -> tuple[float, float]:
        """One step on the rows ``rows`` (a slice or an index array) of X and Y with learning rate α.
        Returns J_i of the batch and the metric's batch sum (0 without a metric), both before the update."""
        m = rows.stop - rows.start if rows.__class__ is slice else len(rows)
        step = self._steps.get(m)
        if step is None:
            path = self.choose(m)
            step = self._steps[m] = path.build(self.context, self.lambda_, self.metric, m, self._shared)
            self.paths[m] = path.name
            if self.context.engine == "compiled":
                with CompileNotice(self.on_note):
                    return step.run(X, Y, rows, alpha)
        return step.run(X, Y, rows, alpha)

    def close(self) -> None:
        """Give BLAS back its own thread count."""
        self._shared.close()

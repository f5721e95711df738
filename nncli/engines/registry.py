"""Which implementation runs the training step: NumPy calls, or the step compiled by numba.

- ``numpy``: every step is a few dozen NumPy calls (``nncli.engines.numpy_engine``). No compiler is loaded.
- ``compiled``: numba's kernels. A step of m × weights ≤ ``LOOPS_MAX_WORK`` is one call of plain loops
  (``nncli.engines.compiled``); one of m × weights ≤ ``COMPILED_MAX_WORK`` is one call that gets its products
  from BLAS's gemm on one thread (``nncli.engines.compiled.blas.serial_step``). A larger mini-batch on several
  cores is one call too, its work shared among numba's threads by units, each thread calling gemm for its
  share of the products (``nncli.engines.compiled.blas.step``). Any other large step keeps NumPy's BLAS calls
  for its products and runs its momentum update as one fused pass. Loading numba costs a process about 0.7 s
  (its import and LLVM's start-up), and more on the first run, which compiles the kernels and caches them on
  disk.
- ``auto``: ``compiled`` when numba can be imported and the run would take at least ``AUTO_MIN_SECONDS``
  on the ``numpy`` engine, by the estimate below, so that the load pays for itself; ``numpy`` otherwise.

The engines give the same weights up to rounding (the tests hold them to 1e-12 in float64). Each one
is deterministic, so a run keeps the engine it started with when it is resumed.
"""

from __future__ import annotations

import functools

from nncli.errors import NncliError, lookup

ENGINES = {
    "auto": "compiled when numba is installed and the run is long enough to repay loading it",
    "numpy": "NumPy calls only",
    "compiled": "numba's compiled step (needs numba)",
}
AUTO_MIN_SECONDS = 2.0
# The numpy engine's cost model: about 40 µs of calls per step, and the step's products (three passes
# of m × weights multiply-adds: forward, gradient, error) at 20 GFLOP/s. Rough, but only used to tell a
# run of seconds from a run of minutes.
STEP_CALL_SECONDS = 40e-6
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


def blas_kernels(threads: int = 1):
    """``nncli.engines.compiled.blas`` where ``kernels`` is available and its step can run on ``threads``
    threads (``nncli.engines.compiled.blas.available``), else None."""
    if kernels() is None:
        return None
    from nncli.engines.compiled import blas

    return blas if blas.available(threads) else None


def required_kernels():
    """``nncli.engines.compiled``, or a NncliError saying how to get numba."""
    module = kernels()
    if module is None:
        raise NncliError(
            "engine 'compiled' needs numba, which cannot be imported here; install it "
            "(pip install numba) or choose engine 'auto' or 'numpy'"
        )
    return module


def numpy_seconds(n_weights: int, rows: int, steps: int, epochs: int) -> float:
    """The numpy engine's estimated time for ``epochs`` epochs of ``steps`` steps over ``rows`` rows."""
    return epochs * (steps * STEP_CALL_SECONDS + 6.0 * rows * n_weights / FLOPS)


def resolve(engine: str, n_weights: int, rows: int, steps: int, epochs: int) -> str:
    """``numpy`` or ``compiled``: the engine a run of this size trains with when ``engine`` is asked for."""
    lookup(ENGINES, engine, "engine")
    if engine == "compiled":
        required_kernels()
    if engine == "auto":
        long_enough = numpy_seconds(n_weights, rows, steps, epochs) >= AUTO_MIN_SECONDS
        return "compiled" if long_enough and kernels() is not None else "numpy"
    return engine

"""BLAS's gemm called from compiled code, and whether this process can run the steps that call it.

NumPy does its products through OpenBLAS, but a numba function cannot call NumPy's products without
leaving compiled code. ``gemm`` calls ``cblas_?gemm`` of the OpenBLAS that NumPy loaded (its 64-bit-integer
build), found by name and handed to numba's linker once (``available``). Elsewhere (another BLAS, or NumPy
built against a 32-bit one) ``available`` is False, and the registry keeps to paths that need no gemm.

The compiled BLAS steps share work among numba's threads. They run only on a threading layer that more than
one Python thread may enter at once (OpenMP or TBB), and not in a process forked from one that has run
them: GNU OpenMP's threads do not survive a fork.
"""

from __future__ import annotations

import ctypes
import functools
import importlib
import os

import llvmlite.binding as llvm
import numba
import numpy as np
from numba import types

from nncli.engines.compiled.jit import fast

# The CBLAS calls of OpenBLAS's 64-bit-integer builds, as NumPy's wheels name them (scipy-openblas) and as
# plain builds do.
_GEMM_NAMES = {
    "d": ("scipy_cblas_dgemm64_", "cblas_dgemm64_"),
    "s": ("scipy_cblas_sgemm64_", "cblas_sgemm64_"),
}
_ROW_MAJOR = 101
NO_TRANS, TRANS = 111, 112
# Pointers are passed as integers of their size: the calling convention is the same.
_i32, _i64, _p = types.int32, types.int64, types.uintp
_dgemm = types.ExternalFunction(
    "nncli_dgemm", types.void(_i32, _i32, _i32, _i64, _i64, _i64, types.float64, _p, _i64, _p, _i64,
                              types.float64, _p, _i64)
)  # fmt: skip
_sgemm = types.ExternalFunction(
    "nncli_sgemm", types.void(_i32, _i32, _i32, _i64, _i64, _i64, types.float32, _p, _i64, _p, _i64,
                              types.float32, _p, _i64)
)  # fmt: skip

_forked = False


def _after_fork() -> None:
    global _forked
    _forked = True


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)


@functools.cache
def _gemm_found() -> bool:
    """Find NumPy's OpenBLAS gemm calls and give their addresses to numba's linker, once."""
    from threadpoolctl import threadpool_info

    for library in threadpool_info():
        if library.get("internal_api") != "openblas":
            continue
        try:
            handle = ctypes.CDLL(library["filepath"])
        except OSError:
            continue
        addresses = {}
        for kind, names in _GEMM_NAMES.items():
            for name in names:
                if hasattr(handle, name):
                    addresses[kind] = ctypes.cast(getattr(handle, name), ctypes.c_void_p).value
                    break
        if len(addresses) == 2:
            llvm.add_symbol("nncli_dgemm", addresses["d"])
            llvm.add_symbol("nncli_sgemm", addresses["s"])
            return True
    return False


# numba's threading layers that more than one Python thread may run parallel code on at once, by the
# setting that picks them (its workqueue layer aborts the process instead, and is slow to start a loop)
_LAYERS_BY_SETTING = {
    "default": ("tbb", "omp"),
    "threadsafe": ("tbb", "omp"),
    "omp": ("omp",),
    "tbb": ("tbb",),
    "safe": ("tbb",),
}


@functools.cache
def layer_importable(layer: str) -> bool:
    """Whether numba's threading layer ``layer`` (omp, tbb) loads here."""
    try:
        importlib.import_module(f"numba.np.ufunc.{layer}pool")
    except Exception:  # numba reports a layer it cannot load with errors of several kinds
        return False
    return True


def threads_usable() -> bool:
    """Whether numba's threads run on OpenMP or TBB (the layer its setting picks), more than one."""
    layers = _LAYERS_BY_SETTING.get(str(numba.config.THREADING_LAYER).lower(), ())
    return any(layer_importable(layer) for layer in layers) and numba.config.NUMBA_NUM_THREADS > 1


def available(threads: int = 1) -> bool:
    """Whether this process can run a compiled step that calls ``gemm`` on ``threads`` threads: the gemm
    calls found and, for more than one thread, numba's threads usable in a process not forked from one
    that ran them."""
    return _gemm_found() and (threads == 1 or (not _forked and threads_usable()))


@fast
def gemm(trans_a, trans_b, rows, cols, inner, A, lda, B, ldb, beta, C, ldc):
    """C := op(A)·op(B) + β C through BLAS (row major; A and B are addresses, C an array; op(A) is rows ×
    inner, op(B) inner × cols; ``NO_TRANS`` or ``TRANS`` each)."""
    if rows == 0:
        return
    if C.itemsize == 4:
        _sgemm(_ROW_MAJOR, trans_a, trans_b, rows, cols, inner, np.float32(1.0), A, lda, B, ldb,
               np.float32(beta), C.ctypes.data, ldc)  # fmt: skip
    else:
        _dgemm(_ROW_MAJOR, trans_a, trans_b, rows, cols, inner, 1.0, A, lda, B, ldb, beta, C.ctypes.data, ldc)


@fast
def address(array, offset):
    """The address of array's flat entry ``offset``."""
    return array.ctypes.data + np.uint64(offset * array.itemsize)


@fast
def view(work, at, rows, cols):
    """work[at : at + rows·cols] as a (rows, cols) array."""
    return work[at : at + rows * cols].reshape((rows, cols))

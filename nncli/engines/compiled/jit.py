"""The two ways nncli's kernels are compiled by numba, shared by every kernel module.

- ``fast``: ``fastmath`` allows reassociating sums and fused multiply-adds, so that loops vectorize; the
  results differ from NumPy's in the last bits (the tests hold them to 1e-12 in float64) and are the same
  on every run of one machine.
- ``exact``: fused multiply-adds only, for code whose rounding is part of its algorithm (e^x's reduction).

``error_model="numpy"``: a division by 0 gives inf or nan as in NumPy, with no check that stops the compiler
from vectorizing the loop. Every kernel is cached on disk (``cache=True``) and releases the GIL.
"""

from __future__ import annotations

import numba

fast = numba.njit(cache=True, nogil=True, error_model="numpy", fastmath={"reassoc", "contract", "nsz"})
exact = numba.njit(cache=True, nogil=True, error_model="numpy", fastmath={"contract"})
# ``fast`` with numba's parallel loops (prange): for ``nncli.engines.compiled.blas``'s threaded step
threaded = numba.njit(
    cache=True, nogil=True, parallel=True, error_model="numpy", fastmath={"reassoc", "contract", "nsz"}
)

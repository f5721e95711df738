"""The Dask cluster a run uses: a ``LocalCluster`` on this machine, or a scheduler by its address."""

from __future__ import annotations

import contextlib
import logging

from nncli.errors import NncliError

EXTRA = (
    "training.backend dask needs the dask extra, which is not installed here; install it with "
    'pip install "nncli[dask]"'
)


CONNECT_TIMEOUT = "10s"  # how long a scheduler's address is tried before the run is refused


def distributed_module():
    """``distributed``, or a NncliError naming the extra that installs it."""
    try:
        import distributed
    except ImportError:
        raise NncliError(EXTRA) from None
    return distributed


@contextlib.contextmanager
def connected(settings):
    """A ``distributed.Client`` for ``training.dask`` (``settings``): a LocalCluster of ``workers``
    workers (one per core when null) with ``threads_per_worker`` threads, or the scheduler at
    ``scheduler``; closed when the run ends."""
    distributed = distributed_module()
    if settings.scheduler is not None:
        try:
            client = distributed.Client(settings.scheduler, timeout=CONNECT_TIMEOUT)
        except (OSError, TimeoutError) as error:
            raise NncliError(
                f"the Dask scheduler at {settings.scheduler!r} (training.dask.scheduler) cannot be reached "
                f"({error}); check the address and that the scheduler runs"
            ) from None
        with client:
            yield client
        return
    from nncli.cores import available_cores

    cluster = distributed.LocalCluster(
        n_workers=settings.workers or available_cores(),
        threads_per_worker=settings.threads_per_worker,
        processes=settings.processes,
        dashboard_address=None,
        silence_logs=logging.ERROR,  # the workers' warnings (a task cancelled when a run is refused) stay out
    )
    with cluster, distributed.Client(cluster) as client:
        yield client

"""Scale-out on Dask (``training.backend: dask``): data parallelism that changes nothing in the maths.

The training CSV is cut at line breaks into a fixed grid of partitions (``partition_rows`` rows each,
whatever the number of workers); each worker parses its own partitions and keeps their rows
(``partition``), so the client never holds the whole matrix. The client (``remote``) combines the
partitions' statistics in partition order into the same preprocessing as a local run, and each step sends
Θ to the workers, adds the partitions' (Σ loss, Σ ∂loss/∂Θ, m) in partition order, forms D once and steps
with the configured optimizer — the lecture's Δ accumulated over i = 1 … m, split by partition.

``distributed`` is an optional extra (``pip install "nncli[dask]"``); ``cluster`` connects to it.
"""

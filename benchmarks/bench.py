"""make bench: seconds per epoch of nncli, scikit-learn and PyTorch on the workloads W1–W4, in float64 and
float32, with momentum and with Adam, with each one's ratio to nncli and to the workload's GEMM limit; then
`nncli train` end to end on a W2-shaped CSV. Repetitions are interleaved, the GEMM limit is measured again
in each, and medians are reported (of the seconds, and of each repetition's ratio to that repetition's
limit). Not part of the test suite.

    python benchmarks/bench.py [--reps 7] [--only W1 W2] [--optimizers momentum adam] [--skip-cli]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

# No OMP_WAIT_POLICY: PyTorch and nncli's threads (numba's OpenMP layer) share one GNU OpenMP runtime, whose
# default lets a thread spin briefly between parallel loops before it sleeps. PASSIVE would put nncli's
# threads to sleep between the few-microsecond gaps of every step (W2: 0.25–0.65 ms more a step), which no
# user would see; the pause before each sample (SETTLE_SECONDS) outlasts the spinning of the last call.
sys.path.insert(0, str(Path(__file__).resolve().parent))

from contenders import CONTENDERS
from end_to_end import run_end_to_end
from workloads import WORKLOADS, gemm_limit

SAMPLE_SECONDS = 0.3
# Seven repetitions: on this shared machine one W2 float32 repetition's ratio to its limit ranged 0.90–1.72
# within a run of five (median 1.13), and medians of five repetitions 0.99–1.42 between runs.
REPS = 7
# Before each sample the process sleeps this long, so that the threads the previous contender left spinning
# (OpenBLAS and OpenMP workers busy-wait for a while after their last call) are parked and no contender
# starts on a machine that another one keeps busy.
SETTLE_SECONDS = 0.25


def blas_description() -> str:
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return "BLAS: unknown (install threadpoolctl)"
    parts = [
        f"{i['internal_api']} {i.get('version')} ({i.get('architecture')}, {i['num_threads']} threads)"
        f" in {Path(i['filepath']).name}"
        for i in threadpool_info()
    ]
    return "BLAS: " + "; ".join(parts)


LIMIT = "GEMM limit"


def measure(workload, dtype, optimizer: str, reps: int) -> tuple[dict[str, float], dict[str, list[float]]]:
    """(median seconds per epoch of each contender and of the GEMM limit, each repetition's ratio of each
    contender to the limit). Repetitions are interleaved, and each measures the limit again beside the
    contenders: this shared machine's speed drifts by tens of percent within minutes, so a ratio is only
    meaningful between times taken together."""
    runs = {name: prepare(workload, dtype, optimizer) for name, prepare in CONTENDERS.items()}
    runs = {name: run for name, run in runs.items() if run is not None}
    epochs = {}
    for name, run in runs.items():  # warm up, then choose how many epochs make one sample
        run(1)  # the first call pays for one-time work: numba's load, PyTorch's and BLAS's thread start-up
        start = time.perf_counter()
        run(1)
        once = time.perf_counter() - start
        epochs[name] = max(1, int(SAMPLE_SECONDS / max(once, 1e-6)))
    samples = {name: [] for name in [*runs, LIMIT]}
    for _ in range(reps):
        for name, run in runs.items():
            time.sleep(SETTLE_SECONDS)
            start = time.perf_counter()
            run(epochs[name])
            samples[name].append((time.perf_counter() - start) / epochs[name])
        time.sleep(SETTLE_SECONDS)
        samples[LIMIT].append(gemm_limit(workload, dtype))
    medians = {name: statistics.median(values) for name, values in samples.items()}
    ratios = {
        name: [s / limit for s, limit in zip(samples[name], samples[LIMIT], strict=True)] for name in runs
    }
    return medians, ratios


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=REPS)
    parser.add_argument("--only", nargs="*", default=[w.name for w in WORKLOADS])
    parser.add_argument("--optimizers", nargs="*", default=["momentum", "adam"])
    parser.add_argument("--skip-cli", action="store_true")
    args = parser.parse_args()
    cores = len(os.sched_getaffinity(0))
    print(f"machine: {platform.machine()}, {cores} cores, numpy {np.__version__}")
    print(blas_description())
    # the last column: the lowest and highest of the repetitions' ratios, whose median the one before gives
    columns = f"{'contender':13} {'s/epoch':>10} {'÷ nncli':>8} {'÷ GEMM limit':>13} {'range':>11}"
    header = f"{'':4} {'dtype':7} {'optimizer':9} {columns}"
    print()
    print(header)
    print("-" * len(header))
    for optimizer in args.optimizers:
        for workload in WORKLOADS:
            if workload.name not in args.only:
                continue
            for dtype in (np.float64, np.float32):
                medians, ratios = measure(workload, dtype, optimizer, args.reps)
                base = medians["nncli"]
                where = f"{workload.name:4} {np.dtype(dtype).name:7} {optimizer:9}"
                for name, each in ratios.items():
                    spread = f"{min(each):.2f}–{max(each):.2f}"
                    print(
                        f"{where} {name:13} {medians[name]:10.4f} {medians[name] / base:8.2f}"
                        f" {statistics.median(each):13.2f} {spread:>11}"
                    )
                print(f"{where} {LIMIT:13} {medians[LIMIT]:10.4f}")
                sys.stdout.flush()
    if not args.skip_cli:
        print()
        run_end_to_end()


if __name__ == "__main__":
    main()

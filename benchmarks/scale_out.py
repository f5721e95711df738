"""The dask backend (training.backend: dask) measured as a user runs it, `nncli train` in its own process:

1. per-step overhead: milliseconds per batch-mode step on iris (120 rows), local against dask on a
   LocalCluster of two worker processes, with one partition and with five;
2. W2-sized batch mode (60,000 × 784, 784-256-128-10): seconds per epoch, dask on two one-thread worker
   processes against local on the same two cores (target: dask ≤ 1.5 × local);
3. scale: training CSVs of one and of three times the memory given to each worker (workers started with a
   memory_limit), trained to completion; the client's peak memory beside the file's size, and the workers'.
   The CSVs repeat memory.py's million rows of 20 numbers and a two-class label.

    python benchmarks/scale_out.py [--only 1 2 3] [--reps 3] [--memory-limit-gb 1.0]

Files are made once in benchmarks/.cache (the W2 CSV is shared with bench.py's end-to-end run).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from end_to_end import PEAK_LAUNCHER, w2_csv
from memory import million_rows, repeated

ROOT = Path(__file__).resolve().parent.parent
NNCLI = shutil.which("nncli", path=str(Path(sys.executable).parent)) or "nncli"


def train(config_text: str, folder: Path, name: str) -> tuple[list[float], dict, float]:
    """Runs `nncli train` on the config in a process of its own: (seconds of each epoch, metrics.json,
    the process's peak resident memory in MB)."""
    config = folder / f"{name}.yaml"
    config.write_text(config_text.replace("OUT", str(folder / name)))
    peak_file = folder / f"{name}.peak"
    command = [sys.executable, "-c", PEAK_LAUNCHER, str(peak_file), NNCLI, "train", str(config), "--quiet"]
    done = subprocess.run(command, stderr=subprocess.PIPE, text=True)
    if done.returncode != 0:
        raise SystemExit(f"nncli train {name} failed: {done.stderr.strip()}")
    lines = (folder / name / "history.csv").read_text().splitlines()[1:]
    elapsed = [0.0] + [float(line.split(",")[-1]) for line in lines]
    epochs = [b - a for a, b in itertools.pairwise(elapsed)]
    metrics = json.loads((folder / name / "metrics.json").read_text())
    return epochs, metrics, int(peak_file.read_text()) / 1024


def safe(name: str) -> str:
    """A run's name as a folder name that YAML's flow mappings read whole."""
    return "".join(c if c.isalnum() else "_" for c in name)


def backend(kind: str, **dask) -> str:
    if kind == "local":
        return "backend: local"
    keys = ", ".join(f"{key}: {value}" for key, value in dask.items())
    return f"backend: dask, dask: {{{keys}}}"


def overhead(folder: Path) -> None:
    data = ROOT / "datasets/iris_train.csv"
    template = (
        f"data: {{path: {data}, target: species}}\nmodel: {{hidden: [8], activation: tanh}}\n"
        "training: {batch: batch, epochs: 300, alpha: 0.5, BACKEND}\noutput: {dir: OUT}\n"
    )
    runs = {
        "local": backend("local"),
        "dask, 1 partition": backend("dask", workers=2, partition_rows=65536),
        "dask, 5 partitions": backend("dask", workers=2, partition_rows=25),
    }
    print("1. per-step overhead, iris (120 × 4, 4-8-3) in batch mode, 300 steps, median ms per step:")
    steps = {}
    for name, setting in runs.items():
        epochs, _, _ = train(template.replace("BACKEND", setting), folder, safe(name))
        steps[name] = statistics.median(epochs[10:]) * 1e3
    for name, ms in steps.items():
        extra = "" if name == "local" else f"   overhead {ms - steps['local']:.2f} ms"
        print(f"   {name:20} {ms:8.2f} ms{extra}")
    print("   Dask's own round trip on the same kind of cluster (tasks that return at once), for comparison:")
    for tasks, ms in dask_round_trip().items():
        print(f"   {tasks} task(s) submitted and gathered {ms:8.2f} ms")


def nothing(_: int) -> int:
    return 0


def dask_round_trip(repeats: int = 100) -> dict[int, float]:
    """{tasks: median ms to submit that many trivial tasks and gather them} on a LocalCluster of two
    one-thread worker processes, as nncli starts."""
    import distributed

    times = {}
    with (
        distributed.LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None) as cluster,
        distributed.Client(cluster) as client,
    ):
        for tasks in (1, 5):
            samples = []
            for _ in range(repeats):
                start = time.perf_counter()
                client.gather([client.submit(nothing, i, pure=False) for i in range(tasks)])
                samples.append(time.perf_counter() - start)
            times[tasks] = statistics.median(samples) * 1e3
    return times


def w2_batch(folder: Path, reps: int) -> None:
    data = w2_csv()
    template = (
        f"data: {{path: {data}, target: label}}\n"
        "model: {hidden: [256, 128], activation: relu, output: softmax, initializer: he}\n"
        "training: {batch: batch, epochs: 5, alpha: 0.1, lambda: 0.0001, BACKEND}\noutput: {dir: OUT}\n"
    )
    runs = {
        "local": backend("local"),
        "dask, 2 partitions": backend("dask", workers=2, partition_rows=30000),
        "dask, 4 partitions": backend("dask", workers=2, partition_rows=15000),
    }
    print(f"2. W2-sized batch mode (60,000 × 784, 784-256-128-10, float64), {reps} runs of 5 epochs each,")
    print("   interleaved; median seconds per epoch after the first:")
    epochs = {name: [] for name in runs}
    loads = {name: [] for name in runs}
    for rep in range(reps):
        for name, setting in runs.items():
            config = template.replace("BACKEND", setting)
            seconds, metrics, _ = train(config, folder, f"w2_{rep}_{safe(name)}")
            epochs[name] += seconds[1:]
            loads[name].append(metrics["load_seconds"])
    local = statistics.median(epochs["local"])
    for name in runs:
        per_epoch = statistics.median(epochs[name])
        print(
            f"   {name:20} {per_epoch:7.3f} s/epoch   ÷ local {per_epoch / local:5.2f}"
            f"   load {statistics.median(loads[name]):5.2f} s"
        )


def scale(folder: Path, limit_gb: float) -> None:
    import distributed

    workers = 8
    print(
        f"3. scale: {workers} worker processes of one thread, each started with memory_limit {limit_gb:g} GB;"
        " batch mode, 2 epochs, 20-16-2:"
    )
    with (
        distributed.LocalCluster(
            n_workers=workers, threads_per_worker=1, memory_limit=f"{limit_gb}GB", dashboard_address=None
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        for times in (1, 3):
            data = repeated(million_rows(), times * limit_gb)
            config = (
                f"data: {{path: {data}, target: label}}\nmodel: {{hidden: [16], activation: tanh}}\n"
                "training: {batch: batch, epochs: 2, alpha: 0.5, backend: dask, "
                f"dask: {{scheduler: '{cluster.scheduler_address}'}}}}\noutput: {{dir: OUT}}\n"
            )
            client.run(reset_peak)
            start = time.perf_counter()
            epochs, metrics, client_mb = train(config, folder, f"scale_{times}")
            wall = time.perf_counter() - start
            worker_mb = max(client.run(peak_mb).values())
            size = data.stat().st_size / 1e9
            print(
                f"   CSV {size:.2f} GB ({times} × a worker's memory, {metrics['train']['rows']:,} rows, "
                f"{metrics['partitions']} partitions): trained in {wall:.0f} s "
                f"(load {metrics['load_seconds']:.0f} s, {statistics.median(epochs):.1f} s/epoch); "
                f"client peak {client_mb:.0f} MB, largest worker peak {worker_mb:.0f} MB"
            )


def reset_peak() -> None:
    """Linux: lets a worker's peak resident memory (VmHWM) count from now."""
    Path("/proc/self/clear_refs").write_text("5")


def peak_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3, help="interleaved runs of the W2 comparison")
    parser.add_argument("--memory-limit-gb", type=float, default=1.0)
    parser.add_argument("--only", nargs="*", type=int, default=[1, 2, 3], help="which parts to run")
    args = parser.parse_args()
    print(f"{len(os.sched_getaffinity(0))} cores; each run is `nncli train` in a process of its own")
    with tempfile.TemporaryDirectory() as folder:
        if 1 in args.only:
            overhead(Path(folder))
        if 2 in args.only:
            w2_batch(Path(folder), args.reps)
        if 3 in args.only:
            scale(Path(folder), args.memory_limit_gb)


if __name__ == "__main__":
    main()

"""`nncli train` end to end on a W2-shaped CSV (60,000 rows × 784 integer features and a label): load time,
time per epoch, peak memory, and how much the command adds beyond loading plus training; and, beside
the load time, how long pandas alone takes to read the whole file with each of its engines."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

CACHE = Path(__file__).resolve().parent / ".cache"

# Runs a command as its own child and writes that child's peak resident memory (kB) to the file argv[1].
# A process forked from a large one starts with the parent's high-water mark in its ru_maxrss, which survives
# exec: measured straight from the benchmark process (which holds every workload's data), nncli's peak
# would read as the benchmark's own. Forked from this small launcher, it starts from the launcher's.
PEAK_LAUNCHER = """
import os, sys
pid = os.fork()
if pid == 0:
    os.execv(sys.argv[2], sys.argv[2:])
_, status, usage = os.wait4(pid, 0)
with open(sys.argv[1], "w") as out:
    out.write(str(usage.ru_maxrss))
sys.exit(os.waitstatus_to_exitcode(status))
"""
ROWS, FEATURES, EPOCHS = 60000, 784, 2


def w2_csv() -> Path:
    """Seeded synthetic pixel-like data, written once and kept in benchmarks/.cache."""
    path = CACHE / "w2.csv"
    if path.exists():
        return path
    import pandas as pd

    CACHE.mkdir(exist_ok=True)
    rng = np.random.default_rng(0)
    X = np.where(rng.random((ROWS, FEATURES)) < 0.6, 0, rng.integers(1, 256, (ROWS, FEATURES)))
    label = (X[:, :10].sum(axis=1) + X[:, 10:20].sum(axis=1)) % 10
    frame = pd.DataFrame(X, columns=[f"p{i}" for i in range(FEATURES)])
    frame["label"] = label
    frame.to_csv(path.with_suffix(".tmp"), index=False)
    path.with_suffix(".tmp").rename(path)
    return path


def run_end_to_end() -> None:
    data = w2_csv()
    nncli = shutil.which("nncli", path=str(Path(sys.executable).parent)) or "nncli"
    with tempfile.TemporaryDirectory() as folder:
        config = Path(folder) / "w2.yaml"
        config.write_text(
            f"data: {{path: {data}, target: label}}\n"
            "model: {hidden: [256, 128], activation: relu, output: softmax, initializer: he}\n"
            f"training: {{alpha: 0.01, beta: 0.9, lambda: 0.0001, batch_size: 128, epochs: {EPOCHS}}}\n"
            f"output: {{dir: {folder}/run}}\n"
        )
        peak_file = Path(folder) / "peak_kb"
        train_command = [nncli, "train", str(config), "--quiet"]
        command = [sys.executable, "-c", PEAK_LAUNCHER, str(peak_file), *train_command]
        start = time.perf_counter()
        process = subprocess.run(command, stderr=subprocess.PIPE, text=True)
        wall = time.perf_counter() - start
        if process.returncode != 0:
            print("nncli train failed:", process.stderr)
            return
        peak_mb = int(peak_file.read_text()) / 1024
        metrics = json.loads((Path(folder) / "run/metrics.json").read_text())
    load = metrics["load_seconds"]
    train = metrics["seconds"]
    size_mb = data.stat().st_size / 1e6
    print(f"nncli train end to end, {ROWS:,} × {FEATURES} CSV ({size_mb:.0f} MB), {EPOCHS} epochs, float64:")
    per_epoch = train / EPOCHS
    print(
        f"  load {load:.2f} s ({size_mb / load:.0f} MB/s)   train {per_epoch:.2f} s/epoch   wall {wall:.2f} s"
    )
    print(f"  beyond load + training: {wall - load - train:.2f} s (start-up, evaluation, writing files)")
    print(f"  peak memory {peak_mb:.0f} MB (float64 data: {ROWS * (FEATURES + 10) * 8 / 1e6:.0f} MB)")
    engines = pandas_read_seconds(data)
    print(
        "  pandas.read_csv of the whole file in a fresh process, for comparison: "
        + ", ".join(
            f"{engine} engine {read:.2f} s, {matrix:.2f} s with the float64 matrix"
            for engine, (read, matrix) in engines.items()
        )
        + (" (pyarrow not installed)" if "pyarrow" not in engines else "")
    )


# Times pandas.read_csv in a fresh process, as nncli's load is timed: the first large allocation of a
# process pays for its page faults (about 0.5 s for W2's 376 MB on this machine), which a process that
# has already read the file once does not.
PANDAS_READ = """
import sys, time
import numpy as np, pandas as pd
start = time.perf_counter()
frame = pd.read_csv(sys.argv[1], engine=sys.argv[2])
read = time.perf_counter() - start
frame.to_numpy(dtype=np.float64)
print(read, time.perf_counter() - start)
"""


def pandas_read_seconds(path: Path) -> dict[str, tuple[float, float]]:
    """For each pandas engine available, the seconds read_csv takes to read the whole file, and those
    it takes to also turn the table into a float64 matrix, each in a fresh process (best of two)."""
    engines = ["c"]
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        pass
    else:
        engines.append("pyarrow")
    seconds = {}
    for engine in engines:
        runs = [
            subprocess.run(
                [sys.executable, "-c", PANDAS_READ, str(path), engine],
                capture_output=True,
                text=True,
                check=True,
            ).stdout.split()
            for _ in range(2)
        ]
        seconds[engine] = (min(float(r[0]) for r in runs), min(float(r[1]) for r in runs))
    return seconds

"""Peak memory of `nncli train` on a 1,000,000 × 20 CSV and of `nncli predict` on a CSV of about 2 GB.

python benchmarks/memory.py        (files are made once in benchmarks/.cache)
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

CACHE = Path(__file__).resolve().parent / ".cache"
ROWS, FEATURES = 1_000_000, 20


def million_rows() -> Path:
    path = CACHE / "million.csv"
    if not path.exists():
        import pandas as pd

        CACHE.mkdir(exist_ok=True)
        rng = np.random.default_rng(0)
        X = rng.normal(size=(ROWS, FEATURES)).round(5)
        frame = pd.DataFrame(X, columns=[f"x{i}" for i in range(FEATURES)])
        frame["label"] = np.where(X[:, 0] + X[:, 1] * X[:, 2] > 0, "pos", "neg")
        frame.to_csv(path.with_suffix(".tmp"), index=False)
        path.with_suffix(".tmp").rename(path)
    return path


def repeated(source: Path, gigabytes: float) -> Path:
    """``source``'s rows repeated (after its header) until the file holds about ``gigabytes`` GB; made once
    in benchmarks/.cache."""
    path = CACHE / f"{source.stem}_{gigabytes:g}gb.csv"
    if not path.exists():
        lines = source.read_bytes().split(b"\n", 1)
        with open(path.with_suffix(".tmp"), "wb") as handle:
            handle.write(lines[0] + b"\n")
            while handle.tell() < gigabytes * 1e9:
                handle.write(lines[1])
        path.with_suffix(".tmp").rename(path)
    return path


def peak(command: list[str], cwd: Path) -> tuple[float, float]:
    """(seconds, peak resident memory in MB) of one command, measured by GNU time."""
    start = time.perf_counter()
    done = subprocess.run(
        ["/usr/bin/time", "-f", "%M", *command],
        cwd=cwd,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    return time.perf_counter() - start, int(done.stderr.strip().splitlines()[-1]) / 1024


def main() -> None:
    nncli = shutil.which("nncli", path=str(Path(sys.executable).parent)) or "nncli"
    data = million_rows()
    float64_mb = ROWS * (FEATURES + 1) * 8 / 1e6
    with tempfile.TemporaryDirectory() as folder:
        config = Path(folder) / "million.yaml"
        config.write_text(
            f"data: {{path: {data}, target: label}}\nmodel: {{hidden: [16], activation: relu}}\n"
            f"training: {{epochs: 1, batch_size: 256}}\noutput: {{dir: {folder}/run}}\n"
        )
        seconds, mb = peak([nncli, "train", str(config), "--quiet"], Path(folder))
        size = data.stat().st_size / 1e6
        print(f"train, {ROWS:,} × {FEATURES} CSV ({size:.0f} MB), 1 epoch: {seconds:.1f} s,", end=" ")
        print(f"peak memory {mb:.0f} MB")
        print(f"  = {mb / float64_mb:.2f} × the float64 size of the data ({float64_mb:.0f} MB)")
        big = repeated(data, 2.0)
        seconds, mb = peak(
            [nncli, "predict", f"{folder}/run/model.npz", str(big), "-o", f"{folder}/p.csv"], Path(folder)
        )
        print(f"predict, {big.stat().st_size / 1e9:.2f} GB CSV: {seconds:.1f} s, peak memory {mb:.0f} MB")


if __name__ == "__main__":
    main()

"""A run's output folder: one run at a time, the earlier run kept whole until the new one exists, the folder
checked before the first step, resume refused on changed data and continued with the run's own options."""

import errno
import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from nncli.cli import main
from nncli.config import load_config
from nncli.errors import NncliError
from nncli.io import files
from nncli.io.run_folder import LOCK_FILE, REPLACEMENT_FOLDER, RunFolder
from nncli.pipeline import check_memory, train_from_config

NNCLI = str(Path(sys.executable).parent / "nncli")
CONFIG = """data: {path: data.csv}
model: {hidden: [6], activation: tanh}
training: {alpha: ALPHA, batch: mini-batch, batch_size: 16, epochs: EPOCHS, seed: 3}
output: {dir: run, checkpoint_every: 1}
"""


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture
def folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_data(tmp_path / "data.csv")
    return tmp_path


def write_data(path, scale=1.0, labels=("a", "b")):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 3)) * scale
    label = np.where(X[:, 0] * X[:, 1] > 0, *labels)
    lines = ["f1,f2,f3,label"] + [
        ",".join(f"{v:.6f}" for v in row) + f",{c}" for row, c in zip(X, label, strict=True)
    ]
    path.write_text("\n".join(lines) + "\n")


def config(folder, epochs=4, alpha=0.1, name="config.yaml"):
    path = folder / name
    path.write_text(CONFIG.replace("EPOCHS", str(epochs)).replace("ALPHA", str(alpha)))
    return path


def contents(directory):
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


# ------------------------------------------------------------------ the lock


def test_a_second_run_into_a_locked_folder_is_refused_naming_the_holder(folder):
    (folder / "run").mkdir()
    with RunFolder(folder / "run", [], replacing=False):
        result = invoke("train", config(folder), "-q")
    assert result.exit_code == 2
    assert f"the output folder '{folder / 'run'}' is in use by another nncli run (process {os.getpid()})" in (
        result.stderr
    )
    assert sorted(p.name for p in (folder / "run").iterdir()) == []  # nothing written, lock released


def test_the_lock_of_a_dead_process_is_taken_over_and_removed_at_the_end(folder):
    (folder / "run").mkdir()
    (folder / "run" / LOCK_FILE).write_text("999999999\n")  # a holder that no longer runs
    result = invoke("train", config(folder), "-q")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (folder / "run").iterdir()) == [
        "checkpoint.npz",
        "history.csv",
        "metrics.json",
        "model.npz",
    ]


def test_two_processes_training_into_one_folder_never_mix_their_files(folder):
    path = config(folder, epochs=300)
    first = subprocess.Popen([NNCLI, "train", str(path), "-q"], cwd=folder, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not (folder / "run" / "checkpoint.npz").exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    second = subprocess.run(
        [NNCLI, "train", str(path), "-q", "--overwrite"], cwd=folder, capture_output=True, text=True
    )
    _, stderr = first.communicate(timeout=120)
    assert first.returncode == 0, stderr
    assert second.returncode == 2
    assert f"is in use by another nncli run (process {first.pid})" in second.stderr


# ------------------------------------------------------------------ --overwrite is all or nothing


def fail_writes_after(monkeypatch, count):
    """Make the file system full after ``count`` more files have been written."""
    real = os.fsync
    left = [count]

    def fsync(descriptor):
        if left[0] == 0:
            raise OSError(errno.ENOSPC, "No space left on device")
        left[0] -= 1
        real(descriptor)

    monkeypatch.setattr(files.os, "fsync", fsync)


@pytest.mark.parametrize("writes", [0, 1, 2])
def test_a_replacing_run_that_fails_before_its_first_complete_set_leaves_the_earlier_run_whole(
    folder, monkeypatch, writes
):
    assert invoke("train", config(folder), "-q").exit_code == 0
    earlier = contents(folder / "run")
    fail_writes_after(monkeypatch, writes)
    result = invoke("train", config(folder, alpha=0.3, name="other.yaml"), "-q", "--overwrite")
    assert result.exit_code == 2
    assert "No space left on device" in result.stderr and ".tmp" not in result.stderr
    assert result.stderr.count("'") == 2 and "/run/" in result.stderr  # names one file of the run
    assert contents(folder / "run") == earlier
    monkeypatch.undo()
    resumed = invoke("train", config(folder), "-q", "--resume", "--epochs", 6)
    assert resumed.exit_code == 0, resumed.output  # the earlier run can still go on


def test_a_replacing_run_replaces_every_file_once_its_set_exists(folder):
    assert invoke("train", config(folder), "-q").exit_code == 0
    earlier = contents(folder / "run")
    result = invoke("train", config(folder, epochs=2, alpha=0.3, name="other.yaml"), "-q", "--overwrite")
    assert result.exit_code == 0, result.output
    now = contents(folder / "run")
    assert sorted(now) == sorted(earlier) and all(now[name] != earlier[name] for name in now)
    assert json.loads(now["metrics.json"])["epochs"] == 2
    assert not (folder / "run" / REPLACEMENT_FOLDER).exists()


def test_an_unwritable_folder_is_refused_before_the_first_step(folder):
    target = folder / "run"
    target.mkdir()
    if os.geteuid() == 0:  # root writes through permissions; an immutable folder stops it
        if subprocess.run(["chattr", "+i", str(target)], capture_output=True).returncode != 0:
            pytest.skip("chattr cannot make a read-only folder here")
    else:
        target.chmod(0o555)
    try:
        result = invoke("train", config(folder, epochs=100_000), "-q")
    finally:
        if os.geteuid() == 0:
            subprocess.run(["chattr", "-i", str(target)], check=True)
        target.chmod(0o755)
    assert result.exit_code == 2
    assert f"the output folder '{target}' cannot be written" in result.stderr


def test_stale_temporaries_of_a_killed_run_are_removed_on_resume(folder):
    assert invoke("train", config(folder), "-q").exit_code == 0
    for name in (".checkpoint.npz.abc123.tmp", ".model.npz.x.tmp", ".notes.txt.keep.tmp"):
        (folder / "run" / name).write_text("partial")
    assert invoke("train", config(folder, epochs=5), "-q", "--resume").exit_code == 0
    assert sorted(p.name for p in (folder / "run").glob(".*")) == [".notes.txt.keep.tmp"]


# ------------------------------------------------------------------ resume


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (lambda path: write_data(path, labels=("p", "q")), "its classes differ"),
        (
            lambda path: write_data(path, scale=100.0),
            "its features' means, its features' standard deviations",
        ),
    ],
)
def test_resume_refuses_data_whose_standardized_arrays_are_the_same(folder, change, named):
    assert invoke("train", config(folder), "-q").exit_code == 0
    before = contents(folder / "run")
    change(folder / "data.csv")
    result = invoke("train", config(folder, epochs=6), "-q", "--resume")
    assert result.exit_code == 2
    assert "the contents of the data file" in result.stderr and named in result.stderr
    assert contents(folder / "run") == before


def test_a_resumed_run_keeps_the_epochs_it_was_started_with(folder):
    path = config(folder, epochs=3)
    stops = iter(range(10**6))
    run = train_from_config(
        load_config(path, values={"training.epochs": 40}), should_stop=lambda: next(stops) >= 100
    )
    assert run.history.stop_reason == "interrupted" and run.epochs == 40
    notes = []
    resumed = train_from_config(load_config(path), resume=True, on_note=notes.append)
    assert resumed.history.stop_reason == "completed" and len(resumed.history) == 40
    assert notes == [
        "nncli: the resumed run keeps the 40 epochs it was started with; pass --epochs to change them"
    ]
    config(folder, epochs=45)  # a new count in the file is a new one given
    assert len(train_from_config(load_config(path), resume=True).history) == 45


def test_the_hint_after_a_signal_repeats_every_option_and_continues_the_same_run(folder):
    path = config(folder, epochs=3)
    args = [
        NNCLI,
        "train",
        str(path),
        "--out",
        "elsewhere",
        "--epochs",
        "400",
        "--set",
        "training.alpha=0.05",
    ]
    process = subprocess.Popen(args, cwd=folder, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not (folder / "elsewhere" / "checkpoint.npz").exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    hint = stderr.split("continue with: ")[1].strip()
    assert shlex.split(hint)[:2] == ["nncli", "train"]
    for option in ("--resume", "--out elsewhere", "--epochs 400", "--set training.alpha=0.05"):
        assert option in hint
    done = subprocess.run([NNCLI, *shlex.split(hint)[1:], "-q"], cwd=folder, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    metrics = json.loads((folder / "elsewhere" / "metrics.json").read_text())
    assert metrics["epochs"] == 400 and metrics["stop_reason"] == "completed"
    assert not (folder / "run").exists()


# ------------------------------------------------------------------ memory


def test_a_network_that_cannot_fit_in_memory_is_refused_naming_its_largest_layer(folder):
    path = config(folder)
    path.write_text(path.read_text().replace("hidden: [6]", "hidden: [1000000000]"))
    result = invoke("train", path, "-q")
    assert result.exit_code == 2
    assert "its layer 1 (3 → 1000000000 values, 4,000,000,000 parameters) is the largest" in result.stderr
    assert not (folder / "run").exists()


def test_the_memory_estimate_counts_parameters_and_batch_buffers(folder):
    from nncli.io.datasets import prepare

    cfg = load_config(config(folder))
    prepared = prepare(cfg.data, "auto", 0)
    assert len(prepared.train[0]) == 200
    need = (6 * ((3 + 1) * 6 + (6 + 1) * 1) + 4 * 200 * (3 + 6 + 1)) * 8  # batch rows: evaluation's 200
    check_memory(cfg, prepared, available=need)
    with pytest.raises(NncliError, match=r"needs about 64\.0 KiB of memory .* more than the 64\.0 KiB free"):
        check_memory(cfg, prepared, available=need - 1)

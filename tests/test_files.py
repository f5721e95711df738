"""Output files: written whole or not at all, never replacing what the user did not name, errors naming the
user's file. Each test here failed on the code before the attack's findings were fixed."""

import errno
import os
import signal
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from nncli.cli import main
from nncli.io import files
from nncli.io.files import atomic_write_text, remove_stale_temporaries

NNCLI = str(Path(sys.executable).parent / "nncli")
CONFIG = """data: {path: small.csv, target: label}
model: {hidden: [3], activation: tanh}
training: {alpha: 0.5, batch: batch, epochs: 5}
output: {dir: out}
"""


def invoke(*args, input=None):
    return CliRunner().invoke(main, [str(a) for a in args], input=input)


@pytest.fixture
def model(workdir, write_config):
    assert invoke("train", write_config(CONFIG), "-q").exit_code == 0
    return workdir / "out" / "model.npz"


def predictions_of(model, data="small.csv"):
    result = invoke("predict", model, data)
    assert result.exit_code == 0, result.output
    return result.stdout


def test_a_fifo_is_written_in_place_and_stays_a_fifo(model, workdir):
    fifo = workdir / "pipe"
    os.mkfifo(fifo)
    received = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_text()))
    reader.start()
    result = invoke("predict", model, "small.csv", "-o", fifo)
    reader.join(timeout=30)
    assert result.exit_code == 0, result.output
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)
    assert received == [predictions_of(model)]


def test_a_symbolic_link_is_followed_and_kept(model, workdir):
    target = workdir / "target.csv"
    target.write_text("old\n")
    (workdir / "link.csv").symlink_to(target.name)
    assert invoke("predict", model, "small.csv", "-o", "link.csv").exit_code == 0
    assert (workdir / "link.csv").is_symlink()
    assert target.read_text() == predictions_of(model)


def test_new_files_get_the_umask_mode_and_overwritten_files_keep_theirs(model, workdir):
    old = os.umask(0o027)
    try:
        assert invoke("predict", model, "small.csv", "-o", "new.csv").exit_code == 0
        kept = workdir / "kept.csv"
        kept.write_text("old\n")
        kept.chmod(0o604)
        assert invoke("predict", model, "small.csv", "-o", kept).exit_code == 0
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(workdir / "new.csv").st_mode) == 0o640
    assert stat.S_IMODE(os.stat(kept).st_mode) == 0o604
    assert kept.read_text() == predictions_of(model)


@pytest.mark.parametrize("onto", ["input", "model"])
def test_predictions_are_never_written_onto_the_input_or_the_model(model, workdir, onto):
    path = workdir / "small.csv" if onto == "input" else model
    before = path.read_bytes()
    result = invoke("predict", model, "small.csv", "-o", path)
    assert result.exit_code == 2
    assert f"is the {'input CSV' if onto == 'input' else 'model file'}" in result.stderr
    assert path.read_bytes() == before


def test_dash_writes_to_stdout(model):
    result = invoke("predict", model, "small.csv", "-o", "-")
    assert result.exit_code == 0 and result.stdout == predictions_of(model)


def test_a_write_error_names_the_file_asked_for_and_leaves_nothing(tmp_path, monkeypatch):
    def full(descriptor):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(files.os, "fsync", full)
    with pytest.raises(OSError) as caught:
        atomic_write_text(tmp_path / "model.npz", "x")
    assert caught.value.errno == errno.ENOSPC and caught.value.filename == str(tmp_path / "model.npz")
    assert list(tmp_path.iterdir()) == []


def test_stale_temporaries_of_the_given_names_are_removed_and_nothing_else(tmp_path):
    for name in (".model.npz.k2j3.tmp", ".history.csv.x.tmp", ".notes.txt.a.tmp", "model.npz"):
        (tmp_path / name).write_text("")
    removed = remove_stale_temporaries(tmp_path, ["model.npz", "history.csv"])
    assert sorted(p.name for p in removed) == [".history.csv.x.tmp", ".model.npz.k2j3.tmp"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [".notes.txt.a.tmp", "model.npz"]


# ------------------------------------------------------------------ stdout and signals, in a real process


@pytest.fixture
def big_input(workdir):
    lines = (workdir / "small.csv").read_text().splitlines()
    (workdir / "big.csv").write_text("\n".join([lines[0], *lines[1:] * 40_000]) + "\n")
    return workdir / "big.csv"


def test_predict_fails_when_stdout_is_closed(model, workdir):
    done = subprocess.run(
        f"'{NNCLI}' predict '{model}' small.csv >&-", shell=True, cwd=workdir, capture_output=True, text=True
    )
    assert done.returncode == 2
    assert done.stderr == "nncli: error: standard output is closed; redirect it to a file, or pass -o FILE\n"


def test_predict_ends_quietly_when_its_reader_goes_away(model, big_input):
    process = subprocess.Popen(
        [NNCLI, "predict", str(model), str(big_input), "--proba"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert process.stdout.readline().startswith(b"prediction,p_x,p_y")
    process.stdout.close()  # as `| head -1` does
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 128 + signal.SIGPIPE
    assert stderr == b""


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_predict_stops_cleanly_on_a_signal_and_leaves_no_partial_file(model, big_input, workdir, signum):
    process = subprocess.Popen(
        [NNCLI, "predict", str(model), str(big_input), "--proba", "-o", "out.csv"],
        cwd=workdir,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while not list(workdir.glob(".out.csv.*.tmp")) and time.monotonic() < deadline:
        time.sleep(0.01)
    process.send_signal(signum)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 128 + signum
    assert stderr == f"nncli: error: stopped by {signal.Signals(signum).name}\n"
    assert not (workdir / "out.csv").exists()
    assert not list(workdir.glob(".out.csv.*"))


def test_a_signal_as_the_temporary_file_appears_leaves_nothing_behind(tmp_path, monkeypatch):
    """Python runs a signal's handler as a call returns: here the exception of Ctrl-C is raised the
    moment the temporary file exists, before its name reaches the writer."""
    import nncli.io.files as files

    real_open = os.open

    def open_then_interrupted(*args, **kwargs):
        real_open(*args, **kwargs)
        raise KeyboardInterrupt

    monkeypatch.setattr(files.os, "open", open_then_interrupted)
    with pytest.raises(KeyboardInterrupt):
        files.atomic_write_text(tmp_path / "out.csv", "a,b\n")
    assert list(tmp_path.iterdir()) == []


def test_a_temporary_name_another_writer_holds_is_left_to_it(tmp_path, monkeypatch):
    import nncli.io.files as files

    theirs = tmp_path / ".out.csv.000000000000.tmp"
    theirs.write_text("another writer's\n")
    names = iter(["000000000000", "111111111111"])
    monkeypatch.setattr(files.secrets, "token_hex", lambda _: next(names))
    files.atomic_write_text(tmp_path / "out.csv", "a,b\n")
    assert (tmp_path / "out.csv").read_text() == "a,b\n"
    assert theirs.read_text() == "another writer's\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == [theirs.name, "out.csv"]


def test_a_new_file_is_never_written_over_one_that_appeared(tmp_path):
    from nncli.io.files import write_new_text

    write_new_text(tmp_path / "a.yaml", "first\n")
    assert (tmp_path / "a.yaml").read_text() == "first\n"
    with pytest.raises(FileExistsError):
        write_new_text(tmp_path / "a.yaml", "second\n")
    assert (tmp_path / "a.yaml").read_text() == "first\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.yaml"]  # no temporary file left

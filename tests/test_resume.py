"""Interrupted runs continue exactly: the same weights, bit for bit, as a run that was never stopped."""

import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from nncli import Network
from nncli.cli import main
from nncli.io.model_file import load_checkpoint, load_model, save_checkpoint
from nncli.model.metrics import ACCURACY
from nncli.optim.batches import BATCH_MODES
from nncli.training.loop import Trainer

NNCLI = str(Path(sys.executable).parent / "nncli")


def problem(seed=0, m=90):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(m, 4))
    Y = np.eye(3)[(X[:, 0] + X[:, 1] > 0).astype(int) + (X[:, 2] > 1).astype(int)]
    return X, Y


def make_trainer(X, Y, batch, patience=None, validation=None, engine="auto"):
    net = Network([4, 6, 3], activation="tanh", output="softmax", seed=1)
    return Trainer(
        net,
        X,
        Y,
        alpha=0.05,
        lambda_=0.1,
        beta=0.9,
        batch=batch,
        batch_size=16,
        seed=7,
        validation=validation,
        metric=ACCURACY,
        patience=patience,
        engine=engine,
    )


def stop_after(steps):
    calls = [0]

    def should_stop():
        calls[0] += 1
        return calls[0] > steps

    return should_stop


@pytest.mark.parametrize("engine", ["numpy", "compiled"])
@pytest.mark.parametrize("batch", sorted(BATCH_MODES))
@pytest.mark.parametrize("when", [0.01, 0.2, 0.5, 0.77, 0.97])
def test_a_run_stopped_at_any_step_and_restored_ends_bit_identical(batch, when, engine):
    X, Y = problem()
    whole = make_trainer(X, Y, batch, engine=engine)
    whole.run(6)
    steps_per_epoch = {"batch": 1, "mini-batch": 6, "stochastic": 90}[batch]
    checks = 6 * (steps_per_epoch + 1)  # should_stop is asked before each step and after each epoch
    first = make_trainer(X, Y, batch, engine=engine)
    history = first.run(6, should_stop=stop_after(max(1, int(when * checks))))
    assert history.stop_reason == "interrupted"
    arrays, record = first.checkpoint()
    record = json.loads(json.dumps(record))  # as it goes through the checkpoint file
    second = make_trainer(X, Y, batch)  # engine auto: the checkpoint's engine is kept
    second.restore(arrays, record)
    history = second.run(6)
    assert history.stop_reason == "completed" and len(history) == 6 and history.engine == engine
    assert second.net.theta.tobytes() == whole.net.theta.tobytes()
    assert [r.train_cost for r in history] == [r.train_cost for r in whole.history()]


def test_early_stopping_state_survives_a_resume():
    X, Y = problem(m=200)
    validation = problem(seed=5, m=60)
    whole = make_trainer(X, Y, "mini-batch", patience=3, validation=validation)
    whole_history = whole.run(60)
    first = make_trainer(X, Y, "mini-batch", patience=3, validation=validation)
    first.run(60, should_stop=stop_after(100))
    second = make_trainer(X, Y, "mini-batch", patience=3, validation=validation)
    second.restore(*first.checkpoint())
    history = second.run(60)
    assert history.stop_reason == whole_history.stop_reason
    assert history.best_epoch == whole_history.best_epoch
    assert second.net.theta.tobytes() == whole.net.theta.tobytes()


# ------------------------------------------------------------------ through the command line

CONFIG = """data: {path: data.csv, validation_split: 0.2}
model: {hidden: [12], activation: relu}
training: {alpha: 0.05, batch: mini-batch, batch_size: 8, epochs: EPOCHS, seed: 3}
output: {dir: OUT}
"""


@pytest.fixture
def run_folder(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(600, 5))
    label = np.where(X[:, 0] * X[:, 1] > 0, "a", "b")
    lines = ["f1,f2,f3,f4,f5,label"] + [
        ",".join(f"{v:.6f}" for v in row) + f",{c}" for row, c in zip(X, label, strict=True)
    ]
    (tmp_path / "data.csv").write_text("\n".join(lines) + "\n")
    return tmp_path


def config(folder, epochs, out="run"):
    path = folder / f"{out}.yaml"
    path.write_text(CONFIG.replace("EPOCHS", str(epochs)).replace("OUT", out))
    return path


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def weights(path):
    with np.load(path) as archive:
        return b"".join(archive[k].tobytes() for k in sorted(archive.files) if k != "meta")


def test_resume_continues_to_the_weights_of_an_uninterrupted_run(run_folder):
    assert invoke("train", config(run_folder, 12, "whole"), "-q").exit_code == 0
    assert invoke("train", config(run_folder, 5, "part"), "-q").exit_code == 0
    result = invoke("train", config(run_folder, 12, "part"), "--resume", "-q")
    assert result.exit_code == 0, result.output
    assert weights(run_folder / "part/model.npz") == weights(run_folder / "whole/model.npz")
    history = (run_folder / "part/history.csv").read_text().splitlines()
    assert len(history) == 13 and history[-1].startswith("12,")
    whole = (run_folder / "whole/history.csv").read_text().splitlines()
    assert [line.split(",")[:6] for line in history] == [line.split(",")[:6] for line in whole]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("hidden: [12]", "hidden: [10]"), "model.hidden changed from [12] to [10]"),
        (("seed: 3", "seed: 4"), "training.seed changed from 3 to 4"),
        (("alpha: 0.05", "alpha: 0.1"), "training.alpha changed from 0.05 to 0.1"),
    ],
)
def test_resume_refuses_a_changed_run(run_folder, change, message):
    assert invoke("train", config(run_folder, 3), "-q").exit_code == 0
    before = (run_folder / "run/checkpoint.npz").read_bytes()
    path = config(run_folder, 6)
    path.write_text(path.read_text().replace(*change))
    result = invoke("train", path, "--resume", "-q")
    assert result.exit_code == 2 and message in result.stderr, result.stderr
    assert "cannot resume the run in" in result.stderr
    assert (run_folder / "run/checkpoint.npz").read_bytes() == before


def test_resume_refuses_changed_data_and_too_few_epochs(run_folder):
    assert invoke("train", config(run_folder, 3), "-q").exit_code == 0
    result = invoke("train", config(run_folder, 3), "--resume", "-q")
    assert result.exit_code == 2 and "already has 3 epochs; raise training.epochs" in result.stderr
    data = run_folder / "data.csv"
    data.write_text(data.read_text().replace("a\n", "b\n", 1))
    result = invoke("train", config(run_folder, 6), "--resume", "-q")
    assert result.exit_code == 2 and "the contents of the data file" in result.stderr


@pytest.mark.parametrize("metrics", ["missing", "interrupted"])
def test_resume_finishes_a_run_stopped_after_its_last_checkpoint_but_before_its_end(run_folder, metrics):
    """A kill between the last epoch's checkpoint and metrics.json leaves a run of all its epochs that
    never ended: resuming writes its end, as an uninterrupted run does."""
    assert invoke("train", config(run_folder, 3), "-q").exit_code == 0
    ended = json.loads((run_folder / "run/metrics.json").read_text())
    trained = weights(run_folder / "run/model.npz")
    if metrics == "missing":
        (run_folder / "run/metrics.json").unlink()
    else:
        (run_folder / "run/metrics.json").write_text(json.dumps({**ended, "stop_reason": "interrupted"}))
    result = invoke("train", config(run_folder, 3), "--resume", "-q")
    assert result.exit_code == 0, result.stderr
    again = json.loads((run_folder / "run/metrics.json").read_text())
    assert again["stop_reason"] == "completed" and again["epochs"] == 3
    assert again["train"] == ended["train"]
    assert weights(run_folder / "run/model.npz") == trained
    result = invoke("train", config(run_folder, 3), "--resume", "-q")  # now it has ended
    assert result.exit_code == 2 and "already has 3 epochs" in result.stderr


def rewrite_fingerprint(checkpoint: Path, change) -> None:
    """Rewrite a checkpoint's fingerprint by ``change(fingerprint)``, as another nncli may have written it."""
    arrays, meta = load_checkpoint(checkpoint)
    change(meta["fingerprint"])
    kept = {key: value for key, value in meta.items() if key not in ("format", "format_version")}
    save_checkpoint(checkpoint, arrays, kept)


def test_a_checkpoint_of_an_older_format_is_refused_with_a_sentence(run_folder):
    assert invoke("train", config(run_folder, 3), "-q").exit_code == 0
    checkpoint = run_folder / "run/checkpoint.npz"
    arrays, meta = load_checkpoint(checkpoint)
    buffer = io.BytesIO()
    np.savez(buffer, meta=np.array(json.dumps({**meta, "format_version": 1})), **arrays)
    checkpoint.write_bytes(buffer.getvalue())
    result = invoke("train", config(run_folder, 6), "--resume", "-q")
    assert result.exit_code == 2, result.output
    assert "is checkpoint format version 1; this nncli reads version 2 only" in result.stderr
    assert "Traceback" not in result.output


def test_a_checkpoint_naming_an_unknown_hash_is_damaged(run_folder):
    assert invoke("train", config(run_folder, 3), "-q").exit_code == 0
    rewrite_fingerprint(run_folder / "run/checkpoint.npz", lambda f: f.update(arrays_hash="crc32"))
    result = invoke("train", config(run_folder, 6), "--resume", "-q")
    assert result.exit_code == 2, result.output
    assert "the contents of the data file" in result.stderr


def test_resume_needs_a_checkpoint_and_overwrite_starts_again(run_folder):
    result = invoke("train", config(run_folder, 3), "--resume")
    assert result.exit_code == 2 and "there is no checkpoint in" in result.stderr
    assert invoke("train", config(run_folder, 3), "-q").exit_code == 0
    result = invoke("train", config(run_folder, 3), "-q", "--resume", "--overwrite")
    assert result.exit_code == 2 and "contradict each other" in result.stderr
    assert invoke("train", config(run_folder, 2), "-q", "--overwrite").exit_code == 0
    _, record = load_checkpoint(run_folder / "run/checkpoint.npz")
    assert record["trainer"]["epoch"] == 2


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_saves_everything_and_resume_finishes_the_run(run_folder, signum, code):
    assert invoke("train", config(run_folder, 300, "whole"), "-q").exit_code == 0
    path = config(run_folder, 300)
    process = subprocess.Popen([NNCLI, "train", str(path)], cwd=run_folder, stderr=subprocess.PIPE, text=True)
    checkpoint = run_folder / "run/checkpoint.npz"
    deadline = time.monotonic() + 60
    while not checkpoint.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signum)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == code, stderr
    assert f"stopped by {signal.Signals(signum).name} after epoch" in stderr
    assert f"continue with: nncli train {path} --resume" in stderr
    _, record = load_checkpoint(checkpoint)
    assert 0 < record["trainer"]["epoch"] < 300
    load_model(run_folder / "run/model.npz")
    assert json.loads((run_folder / "run/metrics.json").read_text())["stop_reason"] == "interrupted"
    result = invoke("train", path, "--resume", "-q")
    assert result.exit_code == 0, result.output
    assert weights(run_folder / "run/model.npz") == weights(run_folder / "whole/model.npz")


def checkpoint_epoch(folder):
    """The epoch the run in `folder` last saved, 0 before its first checkpoint."""
    if not (folder / "checkpoint.npz").exists():
        return 0
    _, record = load_checkpoint(folder / "checkpoint.npz")
    return record["trainer"]["epoch"]


def kill_after(process, folder, epoch, jitter):
    """SIGKILL `process` `jitter` seconds after its checkpoint reaches `epoch`: paced by the run's own
    progress, so that the kills land inside training on a fast machine and a slow one alike. False if it
    ended first."""
    deadline = time.monotonic() + 120
    while checkpoint_epoch(folder) < epoch and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    time.sleep(jitter)
    if process.poll() is not None:
        return False
    process.send_signal(signal.SIGKILL)
    process.wait()
    return True


def test_killed_runs_leave_loadable_files_and_resume_bit_for_bit(run_folder):
    """SIGKILL at 12 random moments: the files left are whole, and resuming each time still ends with
    the weights of a run that was never stopped."""
    epochs = 400  # 12 kills take at most 12 × 25 epochs of it
    for out, every in (("whole", "null"), ("run", "1")):
        text = config(run_folder, epochs, out).read_text().replace("batch_size: 8", "batch_size: 64")
        text = text.replace(f"output: {{dir: {out}}}", f"output: {{dir: {out}, checkpoint_every: {every}}}")
        (run_folder / f"{out}.yaml").write_text(text)
    assert invoke("train", run_folder / "whole.yaml", "-q").exit_code == 0
    path = run_folder / "run.yaml"
    rng = np.random.default_rng(int(os.environ.get("NNCLI_KILL_SEED", "0")))
    folder = run_folder / "run"
    kills = 0
    seen_epochs = []
    while kills < 12:
        args = [NNCLI, "train", str(path), "-q"] + (
            ["--resume"] if (folder / "checkpoint.npz").exists() else []
        )
        process = subprocess.Popen(args, cwd=run_folder, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        target = checkpoint_epoch(folder) + int(rng.integers(1, 25))
        if not kill_after(process, folder, target, rng.uniform(0, 0.02)):
            _, stderr = process.communicate()
            assert process.returncode == 0, stderr.decode()
            break
        kills += 1
        for leftover in folder.glob(".*.tmp"):
            leftover.unlink()  # what a killed writer leaves is only ever a temporary file
        seen_epochs.append(checkpoint_epoch(folder))
        if (folder / "model.npz").exists():
            load_model(folder / "model.npz")
    assert kills == 12
    assert seen_epochs == sorted(seen_epochs)  # checkpoints only ever move forward
    assert len(set(seen_epochs)) >= 8  # the kills landed at many different points of training
    result = invoke("train", path, "-q", "--resume")
    assert result.exit_code == 0, result.output
    assert weights(folder / "model.npz") == weights(run_folder / "whole/model.npz")

"""training.backend: dask — data-parallel batch training on a LocalCluster (threads, two workers) equals
local training; the partition grid, not the workers, decides the bits; resume after SIGINT; refusals;
and, on worker processes, a worker killed mid-step changes nothing."""

import json
import shutil
import sys

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from conftest import ROOT

pytest.importorskip("distributed")

from nncli.cli import main
from nncli.io.model_file import load_model

CONFIG = """data: {path: iris.csv, target: species, VALIDATION}
model: {hidden: [8], activation: tanh}
training:
  optimizer: OPTIMIZER
  alpha: ALPHA
  lambda: 0.3
  batch: batch
  epochs: 12
  backend: BACKEND
  dask: {workers: WORKERS, processes: false, partition_rows: 25}
output: {dir: OUT}
"""


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def write(folder, out, backend="dask", optimizer="momentum", workers=2, validation="test: iris_test.csv"):
    alpha = {"momentum": 0.5, "nesterov": 0.5, "adam": 0.05}[optimizer]
    text = CONFIG.replace("BACKEND", backend).replace("OPTIMIZER", optimizer).replace("ALPHA", str(alpha))
    text = text.replace("WORKERS", str(workers)).replace("OUT", out).replace("VALIDATION", validation)
    (folder / f"{out}.yaml").write_text(text)
    return folder / f"{out}.yaml"


def params(folder):
    weights, biases, _ = load_model(folder / "model.npz")
    return weights + biases


@pytest.fixture
def here(tmp_path, monkeypatch):
    shutil.copy(ROOT / "datasets/iris_train.csv", tmp_path / "iris.csv")
    shutil.copy(ROOT / "datasets/iris_test.csv", tmp_path / "iris_test.csv")
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.parametrize("optimizer", ["momentum", "nesterov", "adam"])
def test_dask_batch_training_equals_local_training(here, optimizer):
    for out, backend in (("dask", "dask"), ("local", "local")):
        result = invoke("train", write(here, out, backend, optimizer), "-q")
        assert result.exit_code == 0, result.output
    for mine, theirs in zip(params(here / "dask"), params(here / "local"), strict=True):
        np.testing.assert_allclose(mine, theirs, rtol=1e-12, atol=1e-15)
    on_dask = json.loads((here / "dask/metrics.json").read_text())
    assert on_dask["engine"] == "dask" and on_dask["backend"] == "dask"
    assert on_dask["partitions"] == 5 and on_dask["partition_rows"] == 25 and on_dask["workers"] == 2
    local = json.loads((here / "local/metrics.json").read_text())
    assert on_dask["test"]["accuracy"] == local["test"]["accuracy"]
    assert on_dask["train"]["cost"] == pytest.approx(local["train"]["cost"], rel=1e-12)
    _, _, meta = load_model(here / "dask/model.npz")
    np.testing.assert_allclose(meta["mean"], load_model(here / "local/model.npz")[2]["mean"], rtol=1e-13)
    assert invoke("predict", here / "dask", "iris_test.csv").exit_code == 0


def test_one_worker_and_two_give_the_same_bits(here, monkeypatch):
    assert invoke("train", write(here, "one", workers=1), "-q").exit_code == 0
    monkeypatch.setattr("nncli.distributed.remote.INLINE_BYTES", 0)  # θ scattered, not sent in each task
    assert invoke("train", write(here, "two", workers=2), "-q").exit_code == 0
    for a, b in zip(params(here / "one"), params(here / "two"), strict=True):
        assert a.tobytes() == b.tobytes()


def test_a_validation_split_on_dask_is_held_out_within_partitions(here):
    config = write(here, "split", validation="validation_split: 0.2")
    result = invoke("train", config, "-q")
    assert result.exit_code == 0, result.output
    metrics = json.loads((here / "split/metrics.json").read_text())
    labels = pd.read_csv(here / "iris.csv")["species"]
    held = sum(  # a fifth of each class of each 25-row partition, at least one row of a class kept
        min(round(0.2 * count), count - 1)
        for start in range(0, len(labels), 25)
        for count in labels[start : start + 25].value_counts()
    )
    assert metrics["validation"]["rows"] == held and metrics["train"]["rows"] == 120 - held
    history = (here / "split/history.csv").read_text().splitlines()
    assert len(history) == 13 and history[1].split(",")[3] != ""  # validation J each epoch


def mini_batch(config, size, out):
    text = config.read_text().replace("batch: batch", f"batch: mini-batch\n  batch_size: {size}")
    path = config.parent / f"{out}.yaml"
    path.write_text(text.replace("dir: base", f"dir: {out}"))
    return path


def test_mini_batches_of_whole_partitions_are_batch_mode(here):
    base = write(here, "base")
    for path in (base, mini_batch(base, 25, "whole_parts")):
        assert invoke("train", path, "-q").exit_code == 0
    for a, b in zip(params(here / "base"), params(here / "whole_parts"), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-15)


def test_a_mini_batch_step_is_one_batch_from_each_partition_drawn_from_the_seed(here):
    base = write(here, "base")
    first, again = mini_batch(base, 8, "first"), mini_batch(base, 8, "again")
    for path in (first, again):
        assert invoke("train", path, "-q", "--epochs", "6").exit_code == 0
    for a, b in zip(params(here / "first"), params(here / "again"), strict=True):
        assert a.tobytes() == b.tobytes()
    iterations = [
        int(line.split(",")[1]) for line in (here / "first/history.csv").read_text().splitlines()[1:]
    ]
    assert iterations == [4 * epoch for epoch in range(1, 7)]  # 25-row partitions: 8 + 8 + 8 + 1 rows
    other = mini_batch(base, 8, "other")
    assert invoke("train", other, "-q", "--seed", "1", "--epochs", "6").exit_code == 0
    assert params(here / "other")[0].tobytes() != params(here / "first")[0].tobytes()
    parts = mini_batch(base, 8, "parts")
    assert invoke("train", parts, "-q", "--epochs", "3").exit_code == 0
    assert invoke("train", parts, "-q", "--resume", "--epochs", "6").exit_code == 0
    for a, b in zip(params(here / "first"), params(here / "parts"), strict=True):
        assert a.tobytes() == b.tobytes()


def test_a_dask_run_stopped_by_sigint_mid_step_resumes_bit_for_bit(here):
    """SIGINT arrives while the client waits for a step's sums: the run stops with exit 130, saving the
    state before that step, and --resume ends with the bits of a run never stopped."""
    import os
    import signal
    import threading

    import distributed

    assert invoke("train", write(here, "whole"), "-q").exit_code == 0
    config = write(here, "parts")
    gather, steps = distributed.Client.gather, []

    def gather_then_interrupted(self, futures, *args, **kwargs):
        if isinstance(futures, list) and futures and futures[0].key.startswith("sums-"):
            steps.append(futures)
            if len(steps) == 5:
                threading.Timer(0.002, os.kill, (os.getpid(), signal.SIGINT)).start()
        return gather(self, futures, *args, **kwargs)

    distributed.Client.gather = gather_then_interrupted
    try:
        stopped = invoke("train", config, "-q")
    finally:
        distributed.Client.gather = gather
    assert stopped.exit_code == 130, stopped.output
    done = len((here / "parts/history.csv").read_text().splitlines()) - 1
    assert 3 <= done < 12 and "stopped by SIGINT" in stopped.stderr
    resumed = invoke("train", config, "-q", "--resume", "--epochs", "12")
    assert resumed.exit_code == 0, resumed.output
    for a, b in zip(params(here / "whole"), params(here / "parts"), strict=True):
        assert a.tobytes() == b.tobytes()


def test_what_dask_cannot_run_is_refused_with_a_sentence(here, monkeypatch):
    monkeypatch.setattr("nncli.distributed.cluster.CONNECT_TIMEOUT", "1s")  # nothing listens there
    base = write(here, "bad").read_text()
    quoted = (here / "iris.csv").read_text().replace("setosa", '"setosa"')
    (here / "quoted.csv").write_text(quoted)
    cases = [
        (base.replace("batch: batch", "batch: stochastic"), "stochastic cannot run on the dask backend"),
        (base.replace("path: iris.csv", "path: quoted.csv"), "cannot be cut into partitions at line breaks"),
        (base.replace("{workers: 2,", "{scheduler: 'tcp://127.0.0.1:9', workers: 2,"),
         "the Dask scheduler at 'tcp://127.0.0.1:9' (training.dask.scheduler) cannot be reached"),
        (base.replace("partition_rows: 25", "partition_rows: 0"), "training.dask.partition_rows"),
        (base.replace("processes: false", "procs: false"), "unknown config key 'training.dask.procs'"),
    ]  # fmt: skip
    for text, words in cases:
        (here / "bad.yaml").write_text(text)
        result = invoke("train", "bad.yaml", "-q")
        assert result.exit_code == 2, (words, result.output)
        assert words in result.stderr and len(result.stderr.splitlines()) == 1, result.stderr
    monkeypatch.setitem(sys.modules, "distributed", None)  # the extra not installed
    (here / "bad.yaml").write_text(base)
    result = invoke("train", "bad.yaml", "-q")
    assert result.exit_code == 2
    assert 'needs the dask extra, which is not installed here; install it with pip install "nncli[dask]"' in (
        result.stderr
    )


def test_a_worker_killed_mid_step_is_replaced_and_the_weights_are_unchanged(here):
    """Worker processes behind nannies, reached by the scheduler's address as a real cluster is: the
    first worker is killed (SIGKILL) while a step's partition sums are in flight; the nanny starts a new
    worker, the scheduler recomputes the partitions it held from their lineage (parse, standardize) and
    reruns the step's tasks, and the weights equal a run that lost nothing, bit for bit."""
    import os
    import signal

    import distributed

    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        address = cluster.scheduler_address
        pids = client.run(os.getpid)
        victim = pids[min(pids)]
        text = write(here, "whole").read_text().replace("{workers: 2,", f"{{scheduler: '{address}',")
        for out in ("whole", "killed"):
            (here / f"{out}.yaml").write_text(text.replace("dir: whole", f"dir: {out}"))
        assert invoke("train", "whole.yaml", "-q").exit_code == 0

        gather, steps = distributed.Client.gather, []

        def gather_after_a_kill(self, futures, *args, **kwargs):
            if isinstance(futures, list) and futures and futures[0].key.startswith("sums-"):
                steps.append(futures)
                if len(steps) == 5:  # the fifth step's sums are submitted and not yet gathered
                    os.kill(victim, signal.SIGKILL)
            return gather(self, futures, *args, **kwargs)

        distributed.Client.gather = gather_after_a_kill
        try:
            result = invoke("train", "killed.yaml", "-q")
        finally:
            distributed.Client.gather = gather
        assert result.exit_code == 0, result.output
        assert len(steps) > 12  # the run went on well past the kill
        client.wait_for_workers(2, timeout=30)
        survivors = client.run(os.getpid)
        assert victim not in survivors.values() and len(survivors) == 2  # replaced
    for a, b in zip(params(here / "whole"), params(here / "killed"), strict=True):
        assert a.tobytes() == b.tobytes()


def test_the_memory_check_counts_the_clients_buffers_not_the_rows_the_workers_hold(here, monkeypatch):
    """Batch mode on 120 rows of 4-8-3 needs (6·67 + 120·4·15)·8 = 60,816 bytes here when the rows are
    local; on Dask the client holds one evaluation chunk (10 rows here): (6·67 + 10·4·15)·8 = 8,016."""
    monkeypatch.setattr("nncli.pipeline.EVALUATION_ROWS", 10)
    monkeypatch.setattr("nncli.pipeline.available_memory", lambda: 20_000)
    local = invoke("train", write(here, "local", backend="local"), "-q")
    assert local.exit_code == 2 and "needs about 59.4 KiB of memory" in local.stderr, local.output
    assert invoke("train", write(here, "dask"), "-q").exit_code == 0

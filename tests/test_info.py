"""nncli info: the record matches the model's own arrays and meta; text and JSON; refusals."""

import json
import math
import shutil

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import ROOT

from nncli.cli import main
from nncli.io.model_file import load_model, save_model


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("runs")
    for name in ("digits", "digits_cnn", "diabetes"):
        result = invoke("train", ROOT / f"configs/{name}.yaml", "--out", folder / name, "--epochs", 3, "-q")
        assert result.exit_code == 0, result.output
    return folder


@pytest.mark.parametrize("name", ["digits", "digits_cnn", "diabetes"])
def test_info_json_describes_the_arrays_and_meta_of_the_file(digits_run, name):
    path = digits_run / name / "model.npz"
    result = invoke("info", path, "--json")
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    weights, biases, meta = load_model(path)
    arrays = {}
    for number, (W, b) in enumerate(zip(weights, biases, strict=True), start=1):
        arrays[f"W{number}"], arrays[f"b{number}"] = list(W.shape), list(b.shape)
    listed = {key: dims for row in record["layers"] for key, dims in row["arrays"].items()}
    assert listed == arrays
    assert sum(row["parameters"] for row in record["layers"]) == record["parameters"]
    assert record["parameters"] == sum(math.prod(dims) for dims in arrays.values())
    assert record["features"] == meta["feature_names"]
    assert record["standardization"]["mean"] == meta["mean"]
    assert record["standardization"]["std"] == meta["std"]
    assert record["classes"] == meta["classes"]
    assert record["layers"][-1]["activation"] == meta["output"]
    assert record["layers"][-1]["out"] == [meta["layer_sizes"][-1]]
    metrics = json.loads((digits_run / name / "metrics.json").read_text())
    assert record["training"]["epochs"] == metrics["epochs"] == 3
    assert record["training"]["stop_reason"] == metrics["stop_reason"] == "completed"
    assert record["training"]["splits"]["train"] == metrics["train"]
    assert record["training"]["splits"]["test"] == metrics["test"]
    assert record["trained_with"]["epochs"] == 3


def test_info_text_names_the_layers_shapes_and_the_end_of_training(digits_run):
    result = invoke("info", digits_run / "digits_cnn")
    assert result.exit_code == 0, result.output
    text = result.stdout
    assert "network    [1, 8, 8] → conv 16 3×3 same relu → maxpool 2 → softmax 10, 2,730 parameters" in text
    lines = text.splitlines()
    conv = next(line for line in lines if line.startswith("1 "))
    assert conv.split()[:5] == ["1", "conv", "1×8×8", "16×8×8", "relu"] and conv.endswith(" 160")
    pool = next(line for line in lines if line.startswith("2 "))
    assert pool.split() == ["2", "maxpool", "16×8×8", "16×4×4", "—", "—", "0"]
    assert "classification of 'digit' into 10 classes: 0, 1, 2, 3, 4, 5, 6, 7, 8, 9" in text
    assert "3 epochs on the" in text and "completed" in text
    test_row = next(line for line in lines if line.strip().startswith("test "))
    accuracy = json.loads((digits_run / "digits_cnn/metrics.json").read_text())["test"]["accuracy"]
    assert test_row.split()[-1] == f"{accuracy:.4f}"
    assert max(map(len, lines[1:])) <= 100  # the first names the file, however long its path


def test_info_of_a_regression_model_shows_how_the_target_is_scaled(digits_run):
    text = invoke("info", digits_run / "diabetes").stdout
    meta = load_model(digits_run / "diabetes/model.npz")[2]
    assert "regression of 'progression'" in text
    assert f"y ↦ (y − {meta['target_mean']:.6g}) / {meta['target_std']:.6g}" in text


def test_a_model_written_without_a_training_record_still_shows(digits_run, tmp_path):
    weights, biases, meta = load_model(digits_run / "digits/model.npz")
    del meta["training"]
    save_model(tmp_path / "old.npz", weights, biases, {k: v for k, v in meta.items() if "format" not in k})
    result = invoke("info", tmp_path / "old.npz")
    assert result.exit_code == 0, result.output
    assert "training   not recorded" in result.stdout


RUNNING = {"epochs": 3, "engine": None, "stop_reason": None, "best_epoch": None, "seconds": None,
           "metric": None, "splits": None}  # fmt: skip


@pytest.mark.parametrize(
    "record",
    [
        "a string",
        {"epochs": -1},
        dict(RUNNING, best_epoch=0),
        dict(RUNNING, splits={"train": {"cost": "low"}}),
    ],
)  # fmt: skip
def test_a_crafted_training_record_is_refused_as_damage(digits_run, tmp_path, record):
    weights, biases, meta = load_model(digits_run / "digits/model.npz")
    meta["training"] = record
    save_model(tmp_path / "bad.npz", weights, biases, {k: v for k, v in meta.items() if "format" not in k})
    result = invoke("info", tmp_path / "bad.npz")
    assert result.exit_code == 2
    assert result.stderr.startswith("nncli: error:") and "'training' should be" in result.stderr


def test_info_of_what_is_not_a_model_is_a_sentence(tmp_path):
    (tmp_path / "notes.txt").write_text("hello\n")
    for target, words in ((tmp_path / "notes.txt", "is not an nncli model file"), (tmp_path, "no model.npz")):
        result = invoke("info", target)
        assert result.exit_code == 2 and words in result.stderr
        assert len(result.stderr.splitlines()) == 1


def test_a_checkpoints_model_says_training_was_still_running(tmp_path):
    shutil.copy(ROOT / "datasets/xor.csv", tmp_path / "xor.csv")
    config = (ROOT / "configs/xor.yaml").read_text().replace("../datasets/xor.csv", "xor.csv")
    (tmp_path / "xor.yaml").write_text(config)
    result = invoke("train", tmp_path / "xor.yaml", "--out", tmp_path / "run", "--epochs", 4,
                    "--set", "output.checkpoint_every=1", "-q")  # fmt: skip
    assert result.exit_code == 0, result.output
    weights, biases, meta = load_model(tmp_path / "run/model.npz")
    meta["training"].update(stop_reason=None, splits=None, seconds=None, metric=None, best_epoch=None)
    save_model(tmp_path / "mid.npz", weights, biases, {k: v for k, v in meta.items() if "format" not in k})
    text = invoke("info", tmp_path / "mid.npz").stdout
    assert "still running when this file was written" in text
    assert np.isfinite(weights[0]).all()

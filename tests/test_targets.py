"""Several targets from a CSV: 0/1 labels (one sigmoid unit each) and numbers (one linear unit each) —
training, predict, evaluate, info, the model file and the refusals."""

import io
import json

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from sklearn.metrics import (
    classification_report,
    confusion_matrix,
    mean_absolute_error,
    mean_squared_error,
    r2_score,
)

from nncli.cli import main
from nncli.io.model_file import load_model, save_model

LABELS, NUMBERS = ["tag_a", "tag_b", "tag_c"], ["u", "v"]


def invoke(*args, input=None):
    return CliRunner().invoke(main, [str(a) for a in args], input=input)


def tables(folder):
    rng = np.random.default_rng(7)
    m = 400
    X = rng.normal(size=(m, 3))
    frame = pd.DataFrame({"id": [f"r{i:04d}" for i in range(m)], "x1": X[:, 0], "x2": X[:, 1], "x3": X[:, 2]})
    frame["tag_a"] = (X[:, 0] > 0).astype(int)
    frame["tag_b"] = (X[:, 1] + X[:, 2] > 0).astype(int)
    frame["tag_c"] = (X[:, 0] * X[:, 1] > 0).astype(int)
    frame["u"] = 3 * X[:, 0] + X[:, 1] + 100
    frame["v"] = -2 * X[:, 2] + 0.5 * X[:, 0] ** 2 - 5
    frame.to_csv(folder / "data.csv", index=False)
    return frame


CONFIG = """data:
  path: data.csv
  target: TARGETS
  features: [x1, x2, x3]
  TASK
  validation_split: 0.2
model: {hidden: [16], activation: tanh}
training: {optimizer: adam, alpha: 0.01, epochs: 150, batch_size: 32}
output: {dir: OUT}
"""


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("targets")
    frame = tables(folder)
    for out, targets, task in (("labels", LABELS, ""), ("numbers", NUMBERS, "task: regression")):
        text = (
            CONFIG.replace("TARGETS", "[" + ", ".join(targets) + "]")
            .replace("TASK", task)
            .replace("OUT", out)
        )
        (folder / f"{out}.yaml").write_text(text)
        result = invoke("train", folder / f"{out}.yaml", "-q")
        assert result.exit_code == 0, result.output
    return folder, frame


def predictions(runs, out, *extra):
    folder, _ = runs
    result = invoke("predict", folder / out, folder / "data.csv", *extra)
    assert result.exit_code == 0, result.output
    return pd.read_csv(io.StringIO(result.stdout)), result.stderr


def test_several_labels_train_one_sigmoid_unit_each_and_predict_a_column_each(runs):
    folder, frame = runs
    metrics = json.loads((folder / "labels/metrics.json").read_text())
    assert metrics["metric"] == "label_accuracy" and metrics["validation"]["label_accuracy"] >= 0.9
    assert metrics["layer_sizes"] == [3, 16, 3]
    table, stderr = predictions(runs, "labels", "--proba", "--keep", "id")
    assert list(table.columns) == ["id", *(f"prediction_{n}" for n in LABELS), *(f"p_{n}" for n in LABELS)]
    assert table["id"].tolist() == frame["id"].tolist()
    for name in LABELS:
        assert set(table[f"prediction_{name}"]) <= {0, 1}
        assert ((table[f"p_{name}"] >= 0.5).astype(int) == table[f"prediction_{name}"]).all()
    right = np.mean(table[[f"prediction_{n}" for n in LABELS]].to_numpy() == frame[LABELS].to_numpy())
    assert stderr == f"nncli: label_accuracy {right:.4f} on 400 rows of '{folder / 'data.csv'}'\n"


def test_several_labels_are_evaluated_label_by_label_as_scikit_learn_does(runs):
    folder, frame = runs
    table, _ = predictions(runs, "labels")
    report = json.loads(invoke("evaluate", folder / "labels", folder / "data.csv", "--json").stdout)
    assert report["task"] == "multilabel" and report["rows"] == 400
    for name in LABELS:
        mine, truth, guess = report["targets"][name], frame[name], table[f"prediction_{name}"]
        expected = classification_report(truth, guess, labels=[0, 1], output_dict=True, zero_division=0)
        for row in mine["classes"]:
            assert row["f1"] == pytest.approx(expected[str(row["class"])]["f1-score"], abs=1e-12)
            assert row["precision"] == pytest.approx(expected[str(row["class"])]["precision"], abs=1e-12)
        assert (
            mine["confusion_matrix"]["rows_true_columns_predicted"] == confusion_matrix(truth, guess).tolist()
        )
    text = invoke("evaluate", folder / "labels", folder / "data.csv", "--plot", folder / "labels.png")
    assert text.exit_code == 0 and "target 'tag_b'" in text.stdout
    assert (folder / "labels.png").read_bytes()[:4] == b"\x89PNG"


def test_several_numbers_train_one_linear_unit_each_in_their_own_units(runs):
    folder, frame = runs
    metrics = json.loads((folder / "numbers/metrics.json").read_text())
    assert metrics["metric"] == "rmse" and metrics["layer_sizes"] == [3, 16, 2]
    assert metrics["validation"]["rmse"] < 0.3 * min(frame["u"].std(), frame["v"].std())
    table, stderr = predictions(runs, "numbers")
    assert list(table.columns) == ["prediction_u", "prediction_v"]
    P, T = table.to_numpy(), frame[NUMBERS].to_numpy()
    assert (
        stderr == f"nncli: rmse {np.sqrt(np.mean((P - T) ** 2)):.4f} on 400 rows of '{folder / 'data.csv'}'\n"
    )
    report = json.loads(invoke("evaluate", folder / "numbers", folder / "data.csv", "--json").stdout)
    for k, name in enumerate(NUMBERS):
        mine = report["targets"][name]
        assert mine["rmse"] == pytest.approx(np.sqrt(mean_squared_error(T[:, k], P[:, k])), rel=1e-9)
        assert mine["mae"] == pytest.approx(mean_absolute_error(T[:, k], P[:, k]), rel=1e-9)
        assert mine["r2"] == pytest.approx(r2_score(T[:, k], P[:, k]), rel=1e-9)
    refused = invoke("predict", folder / "numbers", folder / "data.csv", "--proba")
    assert refused.exit_code == 2 and "--proba applies to classification models" in refused.stderr


def test_a_model_of_several_targets_is_format_3_and_info_names_them(runs):
    folder, _ = runs
    _, _, meta = load_model(folder / "numbers/model.npz")
    assert meta["format_version"] == 3 and meta["target_names"] == NUMBERS and "target_name" not in meta
    assert len(meta["target_mean"]) == 2 and all(s > 0 for s in meta["target_std"])
    text = invoke("info", folder / "numbers").stdout
    assert "task       regression of 'u', 'v'" in text
    assert f"u ↦ (u − {meta['target_mean'][0]:.6g}) / {meta['target_std'][0]:.6g}" in text
    assert (
        "3 labels of 0 or 1, one sigmoid unit each: tag_a, tag_b, tag_c"
        in invoke("info", folder / "labels").stdout
    )


@pytest.mark.parametrize(
    ("change", "words"),
    [
        (lambda m: m.update(task="classification"), "'task' should be multilabel or regression"),
        (
            lambda m: m.update(target_names=["u"]),
            "'target_names' should be two or more distinct column names",
        ),
        (lambda m: m.update(target_std=[1.0, 0.0]), "'target_std' should be finite numbers > 0"),
        (lambda m: m.update(target_mean=[1.0, 2.0, 3.0]), "its arrays and its meta record disagree"),
    ],
)
def test_a_crafted_format_3_record_is_refused_as_damage(runs, tmp_path, change, words):
    folder, _ = runs
    weights, biases, meta = load_model(folder / "numbers/model.npz")
    change(meta)
    save_model(tmp_path / "bad.npz", weights, biases, {k: v for k, v in meta.items() if "format" not in k})
    result = invoke("predict", tmp_path / "bad.npz", folder / "data.csv")
    assert result.exit_code == 2 and words in result.stderr and result.stdout == ""


def test_a_run_of_several_targets_resumes_bit_for_bit(runs, tmp_path, monkeypatch):
    folder, _ = runs
    monkeypatch.chdir(folder)
    base = (folder / "labels.yaml").read_text().replace("epochs: 150", "epochs: 6")
    (folder / "whole.yaml").write_text(base.replace("dir: labels", "dir: whole"))
    (folder / "parts.yaml").write_text(base.replace("dir: labels", "dir: parts"))
    assert invoke("train", "whole.yaml", "-q").exit_code == 0
    assert invoke("train", "parts.yaml", "-q", "--epochs", "3").exit_code == 0
    assert invoke("train", "parts.yaml", "-q", "--resume", "--epochs", "6").exit_code == 0
    whole, parts = load_model(folder / "whole/model.npz"), load_model(folder / "parts/model.npz")
    for a, b in zip(whole[0] + whole[1], parts[0] + parts[1], strict=True):
        assert a.tobytes() == b.tobytes()


def test_bad_lists_of_targets_are_one_sentence(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    frame = tables(tmp_path)
    frame.loc[7, "tag_b"] = 2
    frame.to_csv(tmp_path / "two.csv", index=False)
    cases = [
        ("data: {path: two.csv, target: [tag_a, tag_b], features: [x1, x2]}",
         "two.csv' line 9: target column 'tag_b' holds 2; each of several targets with data.task "
         "classification must hold 0 or 1"),
        ("data: {path: data.csv, target: [tag_a, tag_b], features: [x1]}\nmodel: {output: softmax}",
         "model.output 'softmax' makes the labels compete"),
        ("data: {path: data.csv, target: [u, x1], features: [x1, x2], task: regression}",
         "column 'x1' is a target, so it cannot also be in data.features"),
        ("data: {path: data.csv, target: [u, u]}", "data.target should be a list of distinct column names"),
        ("data: {path: data.csv, target: [u, nope], task: regression}", "has no column 'nope' (data.target)"),
        ("data: {path: data.csv, target: [u, id], features: [x1], task: regression}",
         "column 'id' holds 'r0000', which is not a finite number; a regression target must be numeric"),
    ]  # fmt: skip
    for text, words in cases:
        (tmp_path / "bad.yaml").write_text(text + "\n")
        result = invoke("train", "bad.yaml", "-q")
        assert result.exit_code == 2, (text, result.output)
        assert words in result.stderr and len(result.stderr.splitlines()) == 1, result.stderr
        assert not (tmp_path / "runs").exists()

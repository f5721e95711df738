"""nncli init: a config chosen from a CSV nncli has never seen, which then trains well; refusals."""

import json

import numpy as np
import pandas as pd
import pytest
import yaml
from click.testing import CliRunner

from nncli.cli import main


def invoke(*args, input=None):
    return CliRunner().invoke(main, [str(a) for a in args], input=input)


def table(kind: str, rng) -> pd.DataFrame:
    """400 rows of an easy problem of each kind, with an id column and a text column to be left out."""
    m = 400
    X = rng.normal(size=(m, 3))
    frame = pd.DataFrame({"id": np.arange(1000, 1000 + m), "x1": X[:, 0], "x2": X[:, 1], "x3": X[:, 2]})
    frame["city"] = rng.choice(["Oslo", "Lima"], size=m)
    score = X[:, 0] + 0.5 * X[:, 1]
    if kind == "binary":
        frame["label"] = np.where(score > 0, "yes", "no")
    elif kind == "multiclass":
        frame["label"] = np.digitize(score, [-0.6, 0.6])  # whole numbers 0, 1, 2: classes
    else:
        frame["label"] = 3.0 * score + 0.1 * rng.normal(size=m) + 50.0
    return frame


@pytest.mark.parametrize("kind,task", [("binary", "classification"), ("multiclass", "classification"),
                                       ("regression", "regression")])  # fmt: skip
def test_init_then_train_works_on_a_csv_nncli_has_never_seen(kind, task, tmp_path, monkeypatch, rng):
    monkeypatch.chdir(tmp_path)
    frame = table(kind, rng)
    frame.to_csv(tmp_path / "mine.csv", index=False)
    result = invoke("init", "mine.csv")
    assert result.exit_code == 0, result.output
    (tmp_path / "mine.yaml").write_text(result.stdout)
    config = yaml.safe_load(result.stdout)
    assert config["data"]["task"] == task and config["data"]["target"] == "label"
    assert config["data"]["features"] == ["x1", "x2", "x3"]  # the id and the text column are left out
    assert "#   id: a different whole number in every row" in result.stdout
    assert "#   city: holds text" in result.stdout
    trained = invoke("train", "mine.yaml", "-q")
    assert trained.exit_code == 0, trained.output
    metrics = json.loads((tmp_path / "runs/mine/metrics.json").read_text())
    if task == "classification":
        assert metrics["validation"]["accuracy"] >= 0.9
    else:
        assert metrics["validation"]["rmse"] < 0.3 * frame["label"].std()


def test_init_writes_a_new_file_only_and_its_paths_hold_from_its_folder(tmp_path, monkeypatch, rng):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()
    (tmp_path / "configs").mkdir()
    table("binary", rng).to_csv(tmp_path / "data/mine.csv", index=False)
    result = invoke("init", "data/mine.csv", "--target", "label", "-o", "configs/mine.yaml")
    assert result.exit_code == 0, result.output
    text = (tmp_path / "configs/mine.yaml").read_text()
    assert yaml.safe_load(text)["data"]["path"] == str(tmp_path / "data/mine.csv")
    again = invoke("init", "data/mine.csv", "-o", "configs/mine.yaml")
    assert again.exit_code == 2 and "exists already; nncli init never replaces a file" in again.stderr
    assert (tmp_path / "configs/mine.yaml").read_text() == text
    inside = invoke("init", "data/mine.csv", "-o", "data/here.yaml")
    assert inside.exit_code == 0 and "path: mine.csv" in (tmp_path / "data/here.yaml").read_text()
    assert not list(tmp_path.rglob("*.tmp"))


def test_init_finds_a_semicolon_separated_file_and_a_target_by_name(tmp_path, monkeypatch, rng):
    monkeypatch.chdir(tmp_path)
    frame = table("multiclass", rng)[["label", "x1", "x2", "x3"]]
    frame.to_csv(tmp_path / "semi.csv", index=False, sep=";")
    result = invoke("init", "semi.csv", "--target", "label")
    assert result.exit_code == 0, result.output
    config = yaml.safe_load(result.stdout)
    assert config["data"]["delimiter"] == ";" and config["data"]["target"] == "label"
    (tmp_path / "semi.yaml").write_text(result.stdout)
    assert invoke("train", "semi.yaml", "-q", "--epochs", "2").exit_code == 0


def test_bad_input_to_init_is_one_sentence(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "gaps.csv").write_text("a,b,y\n1,2,p\n3,4,\n5,6,q\n")
    (tmp_path / "one.csv").write_text("a,b,y\n1,2,p\n3,4,p\n")
    (tmp_path / "words.csv").write_text("a,b,y\nx,u,p\nz,v,q\n")
    cases = [
        (("init", "gaps.csv"), "target column 'y' has 1 empty cell(s)"),
        (("init", "one.csv"), "target column 'y' holds one value only"),
        (("init", "words.csv"), "no column besides the target holds numbers"),
        (("init", "gaps.csv", "--target", "z"), "has no column 'z' (--target); its columns are a, b, y"),
        (("init", "missing.csv"), "does not exist"),
    ]
    for args, words in cases:
        result = invoke(*args)
        assert result.exit_code == 2, (args, result.output)
        assert words in result.stderr and len(result.stderr.splitlines()) == 1
        assert result.stdout == ""


@pytest.mark.parametrize("kind,task,metric", [("labels", "classification", "label_accuracy"),
                                              ("numbers", "regression", "rmse")])  # fmt: skip
def test_init_then_train_works_with_several_targets(kind, task, metric, tmp_path, monkeypatch, rng):
    monkeypatch.chdir(tmp_path)
    m = 400
    X = rng.normal(size=(m, 3))
    frame = pd.DataFrame({"x1": X[:, 0], "x2": X[:, 1], "x3": X[:, 2]})
    if kind == "labels":
        frame["a"], frame["b"] = (X[:, 0] > 0).astype(int), (X[:, 1] - X[:, 2] > 0).astype(int)
    else:
        frame["a"], frame["b"] = 2 * X[:, 0] + 7, X[:, 1] * X[:, 2]
    frame.to_csv(tmp_path / "several.csv", index=False)
    result = invoke("init", "several.csv", "--target", "a,b")
    assert result.exit_code == 0, result.output
    config = yaml.safe_load(result.stdout)
    assert config["data"]["target"] == ["a", "b"] and config["data"]["task"] == task
    (tmp_path / "several.yaml").write_text(result.stdout)
    assert invoke("train", "several.yaml", "-q").exit_code == 0
    metrics = json.loads((tmp_path / "runs/several/metrics.json").read_text())
    assert metrics["metric"] == metric and metrics["layer_sizes"][-1] == 2
    if kind == "labels":
        assert metrics["validation"]["label_accuracy"] >= 0.9
    else:
        assert metrics["validation"]["rmse"] < 0.5 * float(frame[["a", "b"]].std().min())

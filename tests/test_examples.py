"""The shipped configs reach their quality figures, and the installed executable works in a pipeline."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from conftest import ROOT

from nncli.cli import main

NNCLI = shutil.which("nncli", path=str(Path(sys.executable).parent)) or shutil.which("nncli")


def train_example(name, out):
    result = CliRunner().invoke(
        main, ["train", str(ROOT / "configs" / f"{name}.yaml"), "--out", str(out), "-q"]
    )
    assert result.exit_code == 0, result.output
    return json.loads((out / "metrics.json").read_text())


@pytest.mark.parametrize(("name", "accuracy"), [("xor", 1.0), ("iris", 0.93), ("digits", 0.95)])
def test_shipped_classification_configs_reach_their_held_out_accuracy(tmp_path, name, accuracy):
    metrics = train_example(name, tmp_path / name)
    assert metrics["test"]["accuracy"] >= accuracy


def test_shipped_regression_config_beats_predicting_the_mean(tmp_path):
    metrics = train_example("diabetes", tmp_path / "diabetes")
    train = pd.read_csv(ROOT / "datasets/diabetes_train.csv")["progression"]
    test = pd.read_csv(ROOT / "datasets/diabetes_test.csv")["progression"]
    baseline = float(np.sqrt(np.mean((test - train.mean()) ** 2)))
    assert metrics["test"]["rmse"] < 0.85 * baseline


def test_predict_round_trip_restores_integer_labels(tmp_path):
    metrics = train_example("digits", tmp_path / "digits")
    out = tmp_path / "pred.csv"
    result = CliRunner().invoke(
        main,
        [
            "predict",
            str(tmp_path / "digits/model.npz"),
            str(ROOT / "datasets/digits_test.csv"),
            "-o",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    predicted = pd.read_csv(out)["prediction"]
    truth = pd.read_csv(ROOT / "datasets/digits_test.csv")["digit"]
    assert predicted.dtype.kind == "i" and set(predicted) <= set(range(10))
    assert (predicted == truth).mean() == pytest.approx(metrics["test"]["accuracy"], abs=1e-12)
    assert f"accuracy {metrics['test']['accuracy']:.4f} on 359 rows" in result.stderr


@pytest.mark.skipif(NNCLI is None, reason="the nncli executable is not installed")
def test_the_installed_executable_works_in_a_shell_pipeline(tmp_path):
    env = {
        **os.environ,
        "NNCLI": NNCLI,
        "DATA": str(ROOT / "datasets"),
        "CONFIG": str(ROOT / "configs/iris.yaml"),
    }
    script = (
        '"$NNCLI" train "$CONFIG" --out run --quiet && '
        'cut -d, -f1-4 "$DATA/iris_test.csv" | "$NNCLI" predict run/model.npz - | tail -n +2 | sort | uniq -c'
    )
    done = subprocess.run(
        ["bash", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    counts = {line.split()[1]: int(line.split()[0]) for line in done.stdout.splitlines()}
    assert set(counts) <= {"setosa", "versicolor", "virginica"}
    assert sum(counts.values()) == 30 and counts["setosa"] == 10
    failed = subprocess.run(
        [NNCLI, "predict", "run/model.npz", "nope.csv"], cwd=tmp_path, capture_output=True, text=True
    )
    assert failed.returncode == 2 and failed.stdout == ""
    assert failed.stderr == "nncli: error: data file 'nope.csv' does not exist\n"
    check = subprocess.run(f'"{NNCLI}" gradcheck | tail -n 1', shell=True, capture_output=True, text=True)
    assert check.stdout == "PASS\n"

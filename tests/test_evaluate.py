"""nncli evaluate: every figure against scikit-learn's on the same predictions; tallies made chunk by chunk
equal those of the whole table; text, JSON, plots and refusals."""

import io
import itertools
import json

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from conftest import ROOT
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import (
    classification_report,
    confusion_matrix,
    mean_absolute_error,
    mean_squared_error,
    r2_score,
)

from nncli.cli import main
from nncli.reports.evaluation import ConfusionTally, ErrorTally


def invoke(*args, input=None):
    return CliRunner().invoke(main, [str(a) for a in args], input=input)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("runs")
    for name in ("digits", "iris", "diabetes"):
        result = invoke("train", ROOT / f"configs/{name}.yaml", "--out", folder / name, "--epochs", 5, "-q")
        assert result.exit_code == 0, result.output
    return folder


def predictions(model, data):
    result = invoke("predict", model, data)
    assert result.exit_code == 0, result.output
    return pd.read_csv(io.StringIO(result.stdout))["prediction"]


@pytest.mark.parametrize("name,target", [("digits", "digit"), ("iris", "species")])
def test_a_classification_report_equals_scikit_learns_on_the_same_predictions(runs, name, target):
    data = ROOT / f"datasets/{name}_test.csv"
    result = invoke("evaluate", runs / name, data, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    truth, predicted = pd.read_csv(data)[target], predictions(runs / name, data)
    labels = report["confusion_matrix"]["labels"]
    expected = classification_report(truth, predicted, labels=labels, output_dict=True, zero_division=0)
    assert report["accuracy"] == pytest.approx(float(np.mean(truth == predicted)), abs=1e-15)
    assert report["rows"] == len(truth) and report["correct"] == int(np.sum(truth == predicted))
    for row in report["classes"]:
        theirs = expected[str(row["class"])]
        for key, their_key in (("precision", "precision"), ("recall", "recall"), ("f1", "f1-score")):
            assert row[key] == pytest.approx(theirs[their_key], abs=1e-12)
        assert row["support"] == theirs["support"]
    for ours, theirs in (("macro_avg", "macro avg"), ("weighted_avg", "weighted avg")):
        for key, their_key in (("precision", "precision"), ("recall", "recall"), ("f1", "f1-score")):
            assert report[ours][key] == pytest.approx(expected[theirs][their_key], abs=1e-12)
    matrix = confusion_matrix(truth, predicted, labels=labels)
    assert report["confusion_matrix"]["rows_true_columns_predicted"] == matrix.tolist()


def test_the_text_report_carries_the_same_numbers_as_the_json(runs, tmp_path):
    data = ROOT / "datasets/iris_test.csv"
    result = invoke("evaluate", runs / "iris", data, "-o", tmp_path / "report.json")
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "report.json").read_text())
    lines = result.stdout.splitlines()
    assert lines[0] == f"accuracy {report['accuracy']:.4f} ({report['correct']} of {report['rows']} rows " \
        f"of '{data}')"  # fmt: skip
    for row in report["classes"]:
        line = next(line for line in lines if line.startswith(f"{row['class']} "))
        assert line.split()[1:] == [f"{row[k]:.4f}" for k in ("precision", "recall", "f1")] + [
            str(row["support"])
        ]
    header = lines.index("confusion matrix: true class in rows, predicted class in columns")
    counts = report["confusion_matrix"]["rows_true_columns_predicted"]
    for offset, row in enumerate(counts, start=2):
        assert [int(n) for n in lines[header + offset].split()[1:]] == row
    assert "wrote" in result.stderr


def test_a_regression_report_equals_scikit_learns(runs):
    data = ROOT / "datasets/diabetes_test.csv"
    report = json.loads(invoke("evaluate", runs / "diabetes", data, "--json").stdout)
    truth, predicted = pd.read_csv(data)["progression"], predictions(runs / "diabetes", data)
    assert report["rmse"] == pytest.approx(np.sqrt(mean_squared_error(truth, predicted)), rel=1e-12)
    assert report["mae"] == pytest.approx(mean_absolute_error(truth, predicted), rel=1e-12)
    assert report["r2"] == pytest.approx(r2_score(truth, predicted), rel=1e-12)
    text = invoke("evaluate", runs / "diabetes", data).stdout
    assert f"RMSE  {report['rmse']:.6g}" in text and f"R²    {report['r2']:.4f}" in text


@settings(max_examples=40, deadline=None)
@given(
    values=st.lists(st.floats(-1e6, 1e6), min_size=2, max_size=60),
    cuts=st.lists(st.integers(1, 59), max_size=5),
    shift=st.sampled_from([0.0, 1e8]),
)
def test_error_sums_made_chunk_by_chunk_equal_the_whole_tables(values, cuts, shift):
    y = np.array(values) + shift
    predicted = y * 0.9 + 1.0
    tally = ErrorTally()
    edges = [0, *sorted(c for c in cuts if c < len(y)), len(y)]
    for lo, hi in itertools.pairwise(edges):
        tally.add(y[lo:hi], predicted[lo:hi])
    report = tally.report()
    assert report["rmse"] == pytest.approx(np.sqrt(mean_squared_error(y, predicted)), rel=1e-9)
    assert report["mae"] == pytest.approx(mean_absolute_error(y, predicted), rel=1e-9)
    spread = float(((y - y.mean()) ** 2).sum())
    if spread > 1e-6 * max(1.0, float(np.abs(y).max())) ** 2:
        assert report["r2"] == pytest.approx(r2_score(y, predicted), rel=1e-6, abs=1e-9)


def test_classes_never_seen_in_training_are_rows_no_prediction_reaches():
    tally = ConfusionTally(["a", "b"])
    tally.add(["a", "c", "b"], ["a", "a", "b"])
    tally.add(["d", "c"], ["b", "b"])
    report = tally.report()
    assert report["confusion_matrix"]["labels"] == ["a", "b", "c", "d"]
    assert report["confusion_matrix"]["rows_true_columns_predicted"] == [
        [1, 0, 0, 0],
        [0, 1, 0, 0],
        [1, 1, 0, 0],
        [0, 1, 0, 0],
    ]
    truth, predicted = ["a", "c", "b", "d", "c"], ["a", "a", "b", "b", "b"]
    expected = classification_report(truth, predicted, output_dict=True, zero_division=0)
    assert report["macro_avg"]["f1"] == pytest.approx(expected["macro avg"]["f1-score"], abs=1e-12)
    assert report["accuracy"] == pytest.approx(0.4)


def test_evaluate_reads_stdin_and_draws_its_plots(runs, tmp_path):
    data = (ROOT / "datasets/iris_test.csv").read_text()
    piped = invoke("evaluate", runs / "iris", "-", "--json", "--plot", tmp_path / "c.png", input=data)
    assert piped.exit_code == 0, piped.output
    named = invoke("evaluate", runs / "iris", ROOT / "datasets/iris_test.csv", "--json")
    drop = ("data",)
    assert {k: v for k, v in json.loads(piped.stdout).items() if k not in drop} == {
        k: v for k, v in json.loads(named.stdout).items() if k not in drop
    }
    assert (tmp_path / "c.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    regression = invoke(
        "evaluate", runs / "diabetes", ROOT / "datasets/diabetes_test.csv", "--plot", tmp_path / "r.svg"
    )
    assert regression.exit_code == 0 and b"<svg" in (tmp_path / "r.svg").read_bytes()[:400]


def test_bad_input_to_evaluate_is_one_sentence_and_exit_2(runs, tmp_path):
    no_target = tmp_path / "no_target.csv"
    pd.read_csv(ROOT / "datasets/iris_test.csv").drop(columns="species").to_csv(no_target, index=False)
    header_only = tmp_path / "empty.csv"
    header_only.write_text(no_target.read_text().splitlines()[0] + ",species\n")
    model = runs / "iris" / "model.npz"
    before = model.read_bytes()
    cases = [
        (("evaluate", runs / "iris", no_target), "has no target column 'species'"),
        (("evaluate", runs / "iris", header_only), "has no data rows, so there is nothing to evaluate"),
        (("evaluate", runs / "iris", ROOT / "datasets/iris_test.csv", "--plot", tmp_path / "c.gif"),
         "should end in .png, .svg or .pdf"),
        (("evaluate", runs / "iris", ROOT / "datasets/iris_test.csv", "-o", model), "is the model file"),
        (("evaluate", tmp_path, ROOT / "datasets/iris_test.csv"), "no model.npz"),
    ]  # fmt: skip
    for args, words in cases:
        result = invoke(*args)
        assert result.exit_code == 2, (args, result.output)
        assert words in result.stderr and len(result.stderr.splitlines()) == 1
    assert model.read_bytes() == before


@pytest.mark.parametrize("name", ["digits", "diabetes"])
def test_a_table_read_in_chunks_of_seven_rows_gives_the_same_report(runs, name, monkeypatch):
    data = ROOT / f"datasets/{name}_test.csv"
    whole = json.loads(invoke("evaluate", runs / name, data, "--json").stdout)
    monkeypatch.setattr("nncli.pipeline.prediction_chunk_rows", lambda model, proba: 7)
    chunked = json.loads(invoke("evaluate", runs / name, data, "--json").stdout)
    assert chunked.keys() == whole.keys()
    for key, value in whole.items():
        if isinstance(value, float):
            assert chunked[key] == pytest.approx(value, rel=1e-12)
        else:
            assert chunked[key] == value

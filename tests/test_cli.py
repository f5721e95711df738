import json

import numpy as np
import pytest
from click.testing import CliRunner

from nncli import __version__
from nncli.cli import main

CONFIG = """data:
  path: small.csv
  target: label
model:
  hidden: [3]
  activation: tanh
training:
  alpha: 0.5
  batch: batch
  epochs: 30
output:
  dir: out
"""


def invoke(*args, input=None):
    return CliRunner().invoke(main, [str(a) for a in args], input=input)


def trained(workdir, write_config, config=CONFIG):
    result = invoke("train", write_config(config), "--quiet")
    assert result.exit_code == 0, result.output
    return workdir / "out"


# ------------------------------------------------------------------ train


def test_train_writes_the_model_history_and_metrics(workdir, write_config):
    result = invoke("train", write_config(CONFIG))
    assert result.exit_code == 0, result.output
    out = workdir / "out"
    assert sorted(p.name for p in out.iterdir()) == [
        "checkpoint.npz",
        "history.csv",
        "metrics.json",
        "model.npz",
    ]
    assert result.stdout == ""  # messages go to stderr
    assert "nncli: trained 3-3-1 (16 parameters) for 30 epochs" in result.stderr
    history = (out / "history.csv").read_text().splitlines()
    assert history[0] == "epoch,iteration,train_mean_batch_cost,val_cost,train_accuracy,val_accuracy,seconds"
    assert len(history) == 31 and history[-1].startswith("30,30,")
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["stop_reason"] == "completed" and metrics["epochs"] == 30
    assert metrics["train"]["rows"] == 6 and metrics["train"]["accuracy"] == 1.0
    assert metrics["validation"] is None and metrics["test"] is None
    costs = [float(line.split(",")[2]) for line in history[1:]]
    assert costs[-1] < costs[0] / 5  # J falls


def test_the_model_file_loads_without_pickle_and_records_everything(workdir, write_config):
    out = trained(workdir, write_config)
    with np.load(out / "model.npz", allow_pickle=False) as archive:
        assert sorted(archive.files) == ["W1", "W2", "b1", "b2", "meta"]
        assert archive["W1"].shape == (3, 3) and archive["b2"].shape == (1,)
        meta = json.loads(str(archive["meta"]))
    assert meta["format"] == "nncli-model" and meta["format_version"] == 2
    assert meta["layer_sizes"] == [3, 3, 1] and meta["output"] == "sigmoid" and meta["activation"] == "tanh"
    assert meta["input_shape"] == [3] and meta["layers"] == [
        {"type": "dense", "units": 3, "activation": "tanh"}
    ]
    assert meta["feature_names"] == ["a", "b", "c"] and meta["target_name"] == "label"
    assert meta["classes"] == ["x", "y"] and meta["nncli_version"] == __version__
    assert len(meta["mean"]) == 3 and meta["config"]["training"]["alpha"] == 0.5
    assert not list(out.glob(".*.tmp"))  # no temporary files left behind


def test_flags_override_the_config_and_the_same_seed_gives_the_same_model(workdir, write_config):
    path = write_config(CONFIG)
    for out in ("one", "two"):
        assert invoke("train", path, "--epochs", 5, "--seed", 3, "--out", out, "-q").exit_code == 0
    result = invoke(
        "train", path, "--set", "training.epochs=4", "--set", "model.hidden=[2]", "--out", "three", "-q"
    )
    assert result.exit_code == 0
    with np.load(workdir / "one/model.npz") as one, np.load(workdir / "two/model.npz") as two:
        assert all(one[k].tobytes() == two[k].tobytes() for k in ("W1", "b1", "W2", "b2"))
    assert len((workdir / "one/history.csv").read_text().splitlines()) == 6
    assert json.loads((workdir / "three/metrics.json").read_text())["layer_sizes"] == [3, 2, 1]


def test_an_existing_model_is_not_replaced_without_overwrite(workdir, write_config):
    out = trained(workdir, write_config)
    before = (out / "model.npz").read_bytes()
    result = invoke("train", workdir / "config.yaml", "-q")
    assert result.exit_code == 2
    assert (
        "already holds a trained model; pass --resume to continue it or --overwrite to replace it"
        in result.stderr
    )
    assert (out / "model.npz").read_bytes() == before
    assert invoke("train", workdir / "config.yaml", "-q", "--overwrite", "--seed", 9).exit_code == 0
    assert (out / "model.npz").read_bytes() != before


def test_divergence_stops_saves_the_best_weights_and_exits_3(workdir, write_config):
    (workdir / "reg.csv").write_text("x,y\n1,2\n2,4\n3,6\n4,8\n5,11\n")
    config = (
        "data: {path: reg.csv, task: regression}\nmodel: {hidden: [3], activation: tanh}\n"
        "training: {alpha: 50, beta: 0, batch: batch, epochs: 200}\noutput: {dir: out}\n"
    )
    result = invoke("train", write_config(config), "-q")
    assert result.exit_code == 3, result.output
    assert "training diverged in epoch" in result.stderr
    assert "try a smaller training.alpha (now 50)" in result.stderr and "Traceback" not in result.output
    metrics = json.loads((workdir / "out/metrics.json").read_text())
    history = (workdir / "out/history.csv").read_text().splitlines()[1:]
    first_cost = float(history[0].split(",")[2])
    assert metrics["stop_reason"] == "diverged" and metrics["epochs"] == len(history) < 200
    # in batch mode the best J is the first epoch's, measured at the initial weights, which are restored
    assert metrics["best_epoch"] == 1 and metrics["train"]["cost"] == pytest.approx(first_cost, rel=1e-12)
    with np.load(workdir / "out/model.npz") as archive:
        assert all(np.isfinite(archive[k]).all() for k in ("W1", "b1", "W2", "b2"))


def test_early_stopping_keeps_the_best_validation_weights(workdir, write_config):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 2))
    y = np.where(X[:, 0] + 0.8 * rng.normal(size=200) > 0, "pos", "neg")  # noisy: it overfits
    lines = ["u,v,label"] + [f"{a},{b},{c}" for (a, b), c in zip(X, y, strict=True)]
    (workdir / "noisy.csv").write_text("\n".join(lines) + "\n")
    config = (
        "data: {path: noisy.csv, validation_split: 0.3}\nmodel: {hidden: [32], activation: relu}\n"
        "training: {alpha: 0.3, epochs: 400, early_stopping: {patience: 5}}\noutput: {dir: out}\n"
    )
    assert invoke("train", write_config(config), "-q").exit_code == 0
    metrics = json.loads((workdir / "out/metrics.json").read_text())
    assert metrics["stop_reason"] == "early_stopping" and metrics["epochs"] < 400
    history = (workdir / "out/history.csv").read_text().splitlines()[1:]
    val_costs = [float(line.split(",")[3]) for line in history]
    best = int(np.argmin(val_costs))
    assert metrics["best_epoch"] == best + 1 and metrics["epochs"] == best + 1 + 5
    assert metrics["validation"]["cost"] == pytest.approx(val_costs[best], rel=1e-12)


# ------------------------------------------------------------------ bad input: exit 2, one sentence, no files


def _refused(result, fragment, workdir):
    assert result.exit_code == 2, result.output
    assert fragment in result.stderr, result.stderr
    assert result.stderr.startswith("nncli: error: ") and result.stderr.count("\n") == 1
    assert "Traceback" not in result.output
    assert not (workdir / "out").exists() and not (workdir / "runs").exists()


@pytest.mark.parametrize(
    ("edit", "fragment"),
    [
        (("alpha: 0.5", "alhpa: 0.5"), "unknown config key 'training.alhpa'; did you mean training.alpha?"),
        (("alpha: 0.5", "alpha: -1"), "training.alpha should be a finite number in (0, ∞), got -1"),
        (("alpha: 0.5", "lambda: -0.1"), "training.lambda should be a finite number in [0, ∞), got -0.1"),
        (("alpha: 0.5", "beta: 1"), "training.beta should be a finite number in [0, 1), got 1"),
        (("alpha: 0.5", "batch_size: 0"), "training.batch_size should be a whole number ≥ 1, got 0"),
        (("[3]", "[3, 0]"), "model.hidden should be a list of whole numbers ≥ 1"),
        (("activation: tanh", "activation: gelu"), "model.activation should be one of sigmoid, tanh, relu"),
        (
            ("activation: tanh", "output: tanh"),
            "model.output should be one of auto, sigmoid, softmax, linear",
        ),
        (("activation: tanh", "initializer: glorot"), "model.initializer should be one of zeros, uniform"),
        (("small.csv", "missing.csv"), "data file '{dir}/missing.csv' does not exist"),
        (
            ("target: label", "target: species"),
            "has no column 'species' (data.target); its columns are a, b, c",
        ),
        (("target: label", "target: label\n  features: [a, z]"), "has no column 'z' (data.features)"),
    ],
)
def test_bad_configs_are_refused(workdir, write_config, edit, fragment):
    result = invoke("train", write_config(CONFIG.replace(*edit)))
    _refused(result, fragment.replace("{dir}", str(workdir)), workdir)


@pytest.mark.parametrize(
    ("csv", "fragment"),
    [
        (
            "a,b,c,label\n0.1,1,5,x\n0.4,oops,3,y\n0.2,1,4,x\n",
            "line 3: column 'b' holds 'oops', which is not a finite number",
        ),
        (
            "a,b,c,label\n0.1,1,5,x\n0.4,,3,y\n0.2,1,4,x\n",
            "line 3: column 'b' is empty; fill it in or drop the row",
        ),
        ("a,b,c,label\n0.1,1,5,x\n0.4,1,3,y,7\n0.2,1,4,x\n", "line 3 has 5 fields but the header has 4"),
        ("a,b,c,label\n0.1,1,5,x\n0.4,1\n0.2,1,4,x\n", "line 3 has 2 fields but the header has 4"),
        ("a,b,c,label\n0.1,1,5,x\n", "has 1 data row(s); training needs at least 2"),
        ("a,b,c,label\n", "has 0 data row(s); training needs at least 2"),
        ("", "is empty; it needs a header row and data rows"),
        ("a,b,c,label\n0.1,1,5,x\n0.4,1,3,x\n", "target column 'label' holds one class only ('x')"),
        ("a,b,c,label\n0.1,1,5,x\n0.4,1,3,\n", "line 3: column 'label' is empty"),
        ("a,b,c,label\n0.1,1,1e999,x\n0.4,1,3,y\n", "line 2: column 'c' holds"),
    ],
)
def test_bad_data_is_refused_with_the_file_line_and_column(workdir, write_config, csv, fragment):
    (workdir / "small.csv").write_text(csv)
    _refused(invoke("train", write_config(CONFIG)), fragment, workdir)


def test_a_non_utf8_file_suggests_an_encoding(workdir, write_config):
    (workdir / "small.csv").write_bytes("a,b,c,label\n1,2,3,caf\xe9\n".encode("latin-1"))
    _refused(invoke("train", write_config(CONFIG)), "is not valid utf-8 text", workdir)
    result = invoke(
        "train", write_config(CONFIG.replace("target: label", "target: label\n  encoding: latin-1"))
    )
    assert "holds 1 data row" in result.stderr or "has 1 data row" in result.stderr


def test_fractional_targets_suggest_regression(workdir, write_config):
    (workdir / "small.csv").write_text("a,b,c,label\n1,2,3,0.5\n2,3,4,1.5\n")
    _refused(invoke("train", write_config(CONFIG)), "set data.task: regression", workdir)


def test_usage_errors_exit_2(workdir):
    assert invoke("train").exit_code == 2
    assert invoke("train", "config.yaml", "--epochs", 0).exit_code == 2
    assert invoke("frobnicate").exit_code == 2
    result = invoke("train", "nope.yaml")
    assert result.exit_code == 2 and "config file 'nope.yaml' does not exist" in result.stderr


# ------------------------------------------------------------------ predict


def test_predict_restores_labels_and_reports_accuracy(workdir, write_config):
    out = trained(workdir, write_config)
    result = invoke("predict", out / "model.npz", "small.csv", "--proba")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == "prediction,p_x,p_y"
    assert [line.split(",")[0] for line in lines[1:]] == ["x", "y", "x", "y", "x", "y"]
    probabilities = np.array([[float(v) for v in line.split(",")[1:]] for line in lines[1:]])
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0)
    assert "nncli: accuracy 1.0000 on 6 rows of 'small.csv'" in result.stderr


def test_predict_matches_columns_by_name_and_reads_stdin(workdir, write_config):
    out = trained(workdir, write_config)
    shuffled = "extra,c,b,a\nq,5,1.0,0.1\nq,1,2.5,0.9\n"
    result = invoke("predict", out / "model.npz", "-", input=shuffled)
    assert result.exit_code == 0, result.output
    assert result.stdout == "prediction\nx\ny\n"
    assert result.stderr == ""  # no target column: no accuracy


def test_predict_writes_a_file_with_o(workdir, write_config):
    out = trained(workdir, write_config)
    result = invoke("predict", out / "model.npz", "small.csv", "-o", "pred.csv")
    assert result.exit_code == 0 and result.stdout == ""
    assert (workdir / "pred.csv").read_text().splitlines()[1:] == ["x", "y", "x", "y", "x", "y"]


def test_predict_names_a_missing_feature_column(workdir, write_config):
    out = trained(workdir, write_config)
    result = invoke("predict", out / "model.npz", "-", input="a,b\n1,2\n")
    assert result.exit_code == 2
    assert "has no feature column 'c'; the model needs columns a, b, c" in result.stderr


def test_predict_refuses_files_that_are_not_models(workdir, write_config):
    out = trained(workdir, write_config)
    (workdir / "junk.npz").write_bytes(b"this is not a zip archive at all")
    np.savez(workdir / "plain.npz", W1=np.ones((2, 2)))
    np.savez(workdir / "objects.npz", meta=np.array([{"format": "nncli-model"}], dtype=object))
    good = (out / "model.npz").read_bytes()
    (workdir / "cut.npz").write_bytes(good[: len(good) // 2])
    expectations = {
        "junk.npz": "is not an nncli model file",
        "plain.npz": "is not an nncli model file",
        "objects.npz": "holds object arrays, which nncli never loads",
        "cut.npz": "is not an nncli model file",
        "absent.npz": "model file 'absent.npz' does not exist",
    }
    for name, fragment in expectations.items():
        result = invoke("predict", name, "small.csv")
        assert result.exit_code == 2, name
        assert fragment in result.stderr, (name, result.stderr)
        assert "Traceback" not in result.output


def test_predict_refuses_proba_for_regression(workdir, write_config):
    (workdir / "reg.csv").write_text("x,y\n1,2\n2,4\n3,6\n4,8\n")
    config = "data: {path: reg.csv, task: regression}\ntraining: {epochs: 5}\noutput: {dir: out}\n"
    assert invoke("train", write_config(config), "-q").exit_code == 0
    result = invoke("predict", workdir / "out/model.npz", "reg.csv", "--proba")
    assert result.exit_code == 2 and "--proba applies to classification models" in result.stderr


# ------------------------------------------------------------------ gradcheck


def test_gradcheck_without_config_checks_the_lecture_network():
    result = invoke("gradcheck")
    assert result.exit_code == 0, result.output
    assert "lecture check network, λ = 0: 3-5-3 sigmoid/sigmoid" in result.stdout
    assert "lecture check network, λ = 3" in result.stdout
    assert result.stdout.rstrip().endswith("PASS")
    overall = [
        float(line.split()[2]) for line in result.stdout.splitlines() if line.strip().startswith("all")
    ]
    assert len(overall) == 2 and all(value < 1e-9 for value in overall)


def test_gradcheck_fails_with_exit_1_when_the_tolerance_is_not_met():
    result = invoke("gradcheck", "--tolerance", 1e-15)
    assert result.exit_code == 1
    assert result.stdout.rstrip().endswith("FAIL")


def test_gradcheck_with_a_config_uses_its_network_and_data(workdir, write_config):
    config = CONFIG.replace("alpha: 0.5", "alpha: 0.5\n  lambda: 2")
    result = invoke("gradcheck", write_config(config), "--samples", 4)
    assert result.exit_code == 0, result.output
    assert "config.yaml, λ = 2, m = 4: 3-3-1 tanh/sigmoid" in result.stdout
    assert "W1         9 of 9" in result.stdout


def test_gradcheck_checks_a_subset_of_a_large_network(workdir, write_config):
    config = CONFIG.replace("[3]", "[60, 40]")
    result = invoke("gradcheck", write_config(config), "--max-params", 300)
    assert result.exit_code == 0, result.output
    checked = next(line for line in result.stdout.splitlines() if line.strip().startswith("all"))
    assert 300 <= int(checked.split()[1]) < 400


# ------------------------------------------------------------------ plot-cost


def test_plot_cost_writes_real_images(workdir, write_config):
    out = trained(workdir, write_config)
    result = invoke("plot-cost", out, "-o", "cost.png")
    assert result.exit_code == 0, result.output
    assert (workdir / "cost.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (workdir / "cost.png").stat().st_size > 5000
    assert invoke("plot-cost", out / "history.csv", "-o", "cost.svg").exit_code == 0
    assert "<svg" in (workdir / "cost.svg").read_text()
    assert invoke("plot-cost", out, "-o", "cost.pdf").exit_code == 0
    assert (workdir / "cost.pdf").read_bytes()[:5] == b"%PDF-"


def test_plot_cost_draws_in_the_terminal_without_o(workdir, write_config):
    out = trained(workdir, write_config)
    result = invoke("plot-cost", out, "--title", "my run")
    assert result.exit_code == 0, result.output
    assert "my run" in result.stdout and "training: mean batch J" in result.stdout
    assert "iteration" in result.stdout
    assert "\x1b[" not in result.stdout


def test_plot_cost_refuses_what_it_cannot_plot(workdir, write_config):
    out = trained(workdir, write_config)
    result = invoke("plot-cost", out, "-o", "cost.gif")
    assert result.exit_code == 2 and "should end in .png, .svg or .pdf" in result.stderr
    result = invoke("plot-cost", "small.csv")
    assert result.exit_code == 2 and "is not an nncli history file" in result.stderr
    result = invoke("plot-cost", "nowhere")
    assert result.exit_code == 2 and "history file 'nowhere' does not exist" in result.stderr


def test_version_and_help_show_examples():
    assert invoke("--version").stdout.strip() == f"nncli, version {__version__}"
    for command in ("train", "predict", "gradcheck", "plot-cost"):
        result = invoke(command, "--help")
        assert result.exit_code == 0 and "Example:" in result.stdout, command


def test_predict_streams_in_chunks_with_one_header_and_one_score(workdir, write_config, monkeypatch):
    import nncli.io.datasets

    out = trained(workdir, write_config)
    monkeypatch.setattr(nncli.io.datasets, "CHUNK_CELLS", 16)  # 4 rows of 3 features and a target
    rows = "a,b,c,label\n" + "0.1,1.0,5,x\n0.9,2.5,1,y\n" * 5
    (workdir / "many.csv").write_text(rows)
    result = invoke("predict", out / "model.npz", "many.csv", "--proba")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == "prediction,p_x,p_y" and len(lines) == 11
    assert [line.split(",")[0] for line in lines[1:]] == ["x", "y"] * 5
    assert "nncli: accuracy 1.0000 on 10 rows" in result.stderr


def test_predict_to_a_file_leaves_nothing_when_a_later_row_is_bad(workdir, write_config, monkeypatch):
    import nncli.io.datasets

    out = trained(workdir, write_config)
    monkeypatch.setattr(nncli.io.datasets, "CHUNK_CELLS", 8)  # 2 rows
    (workdir / "bad.csv").write_text("a,b,c\n0.1,1,5\n0.2,1,5\n0.3,1,5\n0.4,oops,5\n")
    result = invoke("predict", out / "model.npz", "bad.csv", "-o", "pred.csv")
    assert result.exit_code == 2
    assert "'bad.csv' line 5: column 'b' holds 'oops'" in result.stderr
    assert not (workdir / "pred.csv").exists() and not list(workdir.glob(".pred.csv.*"))


def test_delimiter_and_encoding_are_honoured_by_train_and_predict(workdir, write_config):
    rows = "a;b;c;label\n" + "0,1;1,0;5;café\n0,9;2,5;1;thé\n" * 3
    (workdir / "semi.csv").write_bytes(rows.replace(",", ".").encode("latin-1"))
    config = CONFIG.replace("small.csv", "semi.csv").replace(
        "target: label", "target: label\n  delimiter: ';'\n  encoding: latin-1"
    )
    assert invoke("train", write_config(config), "-q").exit_code == 0
    result = invoke("predict", workdir / "out/model.npz", "semi.csv")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[1:] == ["café", "thé"] * 3


def test_bom_crlf_and_a_constant_column_train_cleanly(workdir, write_config):
    text = "a,b,c,label\r\n" + "".join(f"{i / 10},7,{i % 3},{'xy'[i % 2]}\r\n" for i in range(8))
    (workdir / "small.csv").write_bytes(b"\xef\xbb\xbf" + text.encode())
    result = invoke("train", write_config(CONFIG), "-q")
    assert result.exit_code == 0, result.output
    metrics = json.loads((workdir / "out/metrics.json").read_text())
    assert np.isfinite(metrics["train"]["cost"])
    with np.load(workdir / "out/model.npz") as archive:
        meta = json.loads(str(archive["meta"]))
    assert meta["feature_names"] == ["a", "b", "c"] and meta["std"][1] == 1.0


@pytest.mark.parametrize(
    ("csv", "fragment"),
    [
        ("a,a,label\n1,2,x\n3,4,y\n", "names the column 'a' twice"),
        ("a,,label\n1,2,x\n3,4,y\n", "has no name for its column 2 in the header"),
        ("a,b,c,label\n0.1,1,5,x,9\n0.4,1,3,y\n", "line 2 has 5 fields but the header has 4"),
    ],
)
def test_repeated_names_and_a_long_first_row_are_refused(workdir, write_config, csv, fragment):
    (workdir / "small.csv").write_text(csv)
    _refused(invoke("train", write_config(CONFIG)), fragment, workdir)


def test_a_second_interrupt_stops_at_once_with_exit_130_and_no_traceback(workdir, write_config, monkeypatch):
    import nncli.pipeline

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(nncli.pipeline, "train_from_config", interrupted)
    result = invoke("train", write_config(CONFIG), "-q")
    assert result.exit_code == 130
    assert "stopped at once by a second interrupt" in result.stderr and "Traceback" not in result.output


def test_a_signal_while_the_data_loads_stops_at_once_and_writes_nothing(workdir, write_config, monkeypatch):
    import signal

    import nncli.pipeline

    real = nncli.pipeline.prepare

    def slow_prepare(*args, **kwargs):
        signal.raise_signal(signal.SIGTERM)  # arrives while the data loads
        return real(*args, **kwargs)

    monkeypatch.setattr(nncli.pipeline, "prepare", slow_prepare)
    result = invoke("train", write_config(CONFIG), "-q")
    assert result.exit_code == 143
    assert result.stderr == "nncli: error: stopped by SIGTERM before training started; nothing was written\n"
    assert not (workdir / "out").exists()


def test_divergence_from_a_huge_lambda_suggests_a_smaller_lambda(workdir, write_config):
    (workdir / "reg.csv").write_text("x,y\n1,2\n2,4\n3,6\n4,8\n5,11\n")
    config = (
        "data: {path: reg.csv, task: regression}\nmodel: {hidden: [3], activation: tanh}\n"
        "training: {alpha: 0.1, lambda: 1000, beta: 0, batch: batch, epochs: 200}\noutput: {dir: out}\n"
    )
    result = invoke("train", write_config(config), "-q")
    assert result.exit_code == 3, result.output
    assert "try a smaller training.lambda (now 1000): each step scales Θ by 1 − α·λ/m = -19" in result.stderr
    assert "training.alpha" not in result.stderr
    assert "Warning" not in result.stderr  # NumPy's overflow warnings stay inside nncli


def test_the_first_ctrl_c_in_gradcheck_says_what_happened(monkeypatch):
    import signal
    import sys

    def interrupted(*args, **kwargs):
        signal.raise_signal(signal.SIGINT)

    monkeypatch.setattr(sys.modules["nncli.model.gradcheck"], "lecture_check_problem", interrupted)
    result = invoke("gradcheck")
    assert result.exit_code == 130
    assert result.stderr == "nncli: error: stopped by SIGINT\n"


def test_a_signal_before_any_command_runs_is_one_line_not_a_traceback(monkeypatch, capsys):
    """The console script makes SIGINT stop nncli with one line before it imports anything heavy (a
    Ctrl-C while NumPy loads once printed a KeyboardInterrupt traceback)."""
    import signal

    import nncli.__main__ as entry
    import nncli.cli

    saved = {s: signal.getsignal(s) for s in entry.SIGNALS}
    monkeypatch.setattr(nncli.cli, "main", lambda: signal.raise_signal(signal.SIGINT))
    try:
        with pytest.raises(SystemExit) as stopped:
            entry.run()
        after = [signal.getsignal(s) for s in entry.SIGNALS]
    finally:
        for signum, handler in saved.items():
            signal.signal(signum, handler)
    assert stopped.value.code == 130
    assert capsys.readouterr().err == "nncli: error: stopped by SIGINT\n"
    assert after == [signal.SIG_DFL, signal.SIG_DFL]  # the interpreter's shutdown ends quietly


def test_python_dash_m_nncli_is_the_command_line():
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "nncli", "--version"], capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout == f"nncli, version {__version__}\n"


def test_predict_keeps_an_id_column_as_text_to_join_on(workdir, write_config):
    out = trained(workdir, write_config)
    (workdir / "ids.csv").write_text("id,a,b,c\n007,0.1,1.0,5\nNA-1,0.9,2.5,1\n,0.3,1.1,4\n")
    result = invoke("predict", out, "ids.csv", "--keep", "id", "--keep", "a", "--proba")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == "id,a,prediction,p_x,p_y"
    plain = invoke("predict", out, "ids.csv", "--proba").stdout.splitlines()
    assert [line.split(",")[:2] for line in lines[1:]] == [["007", "0.1"], ["NA-1", "0.9"], ["", "0.3"]]
    assert [line.split(",", 2)[2] for line in lines[1:]] == plain[1:]  # the predictions are unchanged
    piped = invoke("predict", out, "-", "--keep", "id,c", input=(workdir / "ids.csv").read_text())
    assert piped.exit_code == 0 and piped.stdout.splitlines()[1].startswith("007,5,")


def test_predict_keep_refuses_a_missing_or_clashing_column_before_writing(workdir, write_config):
    out = trained(workdir, write_config)
    for args, words in (
        (("--keep", "id"), "--keep 'id': 'small.csv' has no such column; its columns are a, b, c, label"),
        (("--keep", "prediction"), "--keep 'prediction' would give two output columns of that name"),
    ):
        result = invoke("predict", out, "small.csv", *args, "-o", "p.csv")
        assert result.exit_code == 2 and words in result.stderr
        assert not (workdir / "p.csv").exists()
    (workdir / "clash.csv").write_text("prediction,a,b,c\n1,0.1,1.0,5\n")
    result = invoke("predict", out, "clash.csv", "--keep", "prediction")
    assert result.exit_code == 2
    assert "would give two output columns of that name" in result.stderr and result.stdout == ""


def plot_body(text: str) -> list[str]:
    """The lines inside the plot's frames, legend lines left out."""
    return [
        line
        for line in text.splitlines()
        if "│" in line and "training" not in line and "validation" not in line
    ]


def test_the_terminal_plot_tells_training_from_validation_in_plain_text(workdir, write_config, monkeypatch):
    out = trained(
        workdir, write_config, CONFIG.replace("target: label", "target: label\n  validation_split: 0.34")
    )
    monkeypatch.setenv("COLUMNS", "72")
    text = invoke("plot-cost", out).stdout
    lines = text.splitlines()
    assert "\x1b[" not in text
    assert any("•• training: mean batch J" in line for line in lines)
    assert any("xx validation J" in line for line in lines)
    body = "".join(plot_body(text))
    assert body.count("•") > 10 and body.count("x") > 10  # both curves drawn, each with its own marker
    assert max(map(len, lines)) == 72
    ticks = next(line for line in lines if "┴" not in line and "┬" not in line and line.strip()[:1].isdigit()
                 and "┤" not in line)  # fmt: skip
    assert all(word.isdigit() for word in ticks.split())  # iterations as whole numbers


def test_the_plot_takes_a_log_axis_and_the_metric_beside_j(workdir, write_config, tmp_path):
    out = trained(workdir, write_config)
    history = (out / "history.csv").read_text().splitlines()
    diverged = [*history[:3], history[3].replace(history[3].split(",")[2], "1e301", 1), *history[4:]]
    (workdir / "diverged.csv").write_text("\n".join(diverged) + "\n")
    flat = invoke("plot-cost", "diverged.csv").stdout
    logged = invoke("plot-cost", "diverged.csv", "--log").stdout
    assert "J(Θ) (log scale)" in logged and "(log scale)" not in flat
    assert "J(Θ) (× 1e301)" in flat  # plotext draws nothing past 1e30: the axis is in units of 1e301
    assert "1e301┤" in logged and "0.01┤" in logged
    both = invoke("plot-cost", out, "--metric")
    assert both.exit_code == 0
    assert "training accuracy" in both.stdout and "accuracy over iterations" in both.stdout
    assert invoke("plot-cost", out, "--metric", "--log", "-o", "both.png").exit_code == 0
    assert (workdir / "both.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    (workdir / "bare.csv").write_text("iteration,train_cost\n1,0.5\n2,0.4\n")
    refused = invoke("plot-cost", "bare.csv", "--metric")
    assert refused.exit_code == 2 and "records no metric beside J" in refused.stderr

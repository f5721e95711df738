"""CSV files and streams that once hung nncli, took its memory, gave tracebacks or were silently wrong:
each now gives a result or one sentence, in bounded time and memory."""

import json
import subprocess
import sys
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from nncli.cli import main
from nncli.config import load_config
from nncli.errors import DataError
from nncli.io.datasets import MAX_LINE_BYTES, CsvSource, prepare, read_chunks
from nncli.pipeline import Model, load_trained_model, prediction_chunk_rows

NNCLI = str(Path(sys.executable).parent / "nncli")


def invoke(*args, input=None):
    return CliRunner().invoke(main, [str(a) for a in args], input=input)


def train(write_config, data="small.csv", extra="", out="out"):
    text = f"data: {{path: {data}{extra}}}\nmodel: {{hidden: [3]}}\ntraining: {{epochs: 3}}\n"
    return invoke("train", write_config(text + f"output: {{dir: {out}}}\n", f"{out}.yaml"), "-q")


# ------------------------------------------------------------------ bounded time and memory


def test_a_header_of_50000_columns_is_read_in_linear_time(workdir, write_config):
    n = 50_000
    rows = [",".join(f"c{i}" for i in range(n))]
    rows += [",".join(str((i * r) % 7) for i in range(n - 1)) + "," + "ab"[r % 2] for r in range(4)]
    (workdir / "wide.csv").write_text("\n".join(rows) + "\n")
    cfg = load_config(write_config("data: {path: wide.csv}\n"))
    prepared = prepare(cfg.data, "auto", 0)  # quadratic before: minutes at this width
    assert prepared.train[0].shape == (4, n - 1)


def test_an_endless_line_on_a_stream_is_refused_within_its_bound():
    source = CsvSource(Path("/dev/zero"))
    assert source.is_stream
    tracemalloc.start()
    with pytest.raises(DataError, match="has a line longer than 16 MiB"):
        list(read_chunks(source))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 8 * MAX_LINE_BYTES


def test_an_endless_stdin_is_refused_by_predict(workdir, write_config):
    assert train(write_config).exit_code == 0
    with open("/dev/zero", "rb") as zeros:
        done = subprocess.run(
            [NNCLI, "predict", "out/model.npz", "-"], stdin=zeros, cwd=workdir, capture_output=True
        )
    assert done.returncode == 2
    assert (
        done.stderr
        == b"nncli: error: 'standard input' has a line longer than 16 MiB; is it a CSV file "
        + (b"with one row per line?\n")
    )


def test_predict_chunks_by_the_widest_thing_it_computes(workdir, write_config):
    assert train(write_config).exit_code == 0
    model = load_trained_model(workdir / "out" / "model.npz")
    narrow = prediction_chunk_rows(model, proba=False)
    wide_net = Model(
        type(model.network)([3, 50_000, 2], output="sigmoid"), model.preprocessing, model.meta
    )  # a hidden layer of 50,000 units
    assert prediction_chunk_rows(wide_net, proba=False) == 8_000_000 // 50_000 < narrow
    many_classes = Model(
        model.network,
        type(model.preprocessing)(**{**model.preprocessing.__dict__, "classes": tuple(range(3000))}),
        model.meta,
    )
    assert prediction_chunk_rows(many_classes, proba=True) == 8_000_000 // (8 * 3000)


# ------------------------------------------------------------------ tracebacks that became sentences


def test_a_cell_longer_than_the_csv_modules_default_field_limit_is_named(workdir, write_config):
    (workdir / "cell.csv").write_text("a,b,label\n1," + "2" * 200_000 + ",x\n1,2,y\n")
    result = train(write_config, "cell.csv")
    assert result.exit_code == 2
    assert (
        "line 2: column 'b' holds '2222" in result.stderr and "which is not a finite number" in result.stderr
    )


def test_predict_from_a_closed_stdin_is_a_sentence(workdir, write_config):
    assert train(write_config).exit_code == 0
    done = subprocess.run(
        f"'{NNCLI}' predict out/model.npz - <&-", shell=True, cwd=workdir, capture_output=True, text=True
    )
    assert done.returncode == 2
    assert done.stderr == (
        "nncli: error: standard input is closed; pass the data as a file, or redirect it to standard input\n"
    )


# ------------------------------------------------------------------ silently wrong, now right or refused


def test_features_near_the_largest_float_are_standardized_not_zeroed(workdir, write_config):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 3))
    X[:, 1] *= 1e300
    y = X[:, 0] * 1e200
    lines = ["a,b,c,y"] + [",".join(repr(float(v)) for v in (*row, t)) for row, t in zip(X, y, strict=True)]
    (workdir / "huge.csv").write_text("\n".join(lines) + "\n")
    result = train(write_config, "huge.csv", ", task: regression")
    assert result.exit_code == 0, result.output
    with np.load(workdir / "out/model.npz") as archive:
        meta = json.loads(str(archive["meta"]))  # valid JSON: no Infinity
    assert meta["std"][1] == pytest.approx((X[:, 1] / 1e300).std() * 1e300, rel=1e-12)
    assert meta["target_std"] == pytest.approx((y / 1e200).std() * 1e200, rel=1e-12)
    predictions = invoke("predict", workdir / "out/model.npz", "huge.csv")
    assert predictions.exit_code == 0
    values = np.array(predictions.stdout.split()[1:], dtype=float)
    assert np.isfinite(values).all() and np.abs(values).max() > 1e190


def test_a_column_spanning_more_than_a_float_is_refused_naming_it(workdir, write_config):
    (workdir / "span.csv").write_text("a,b,y\n1.7e308,1,0\n-1.7e308,2,1\n0,3,0\n")
    result = train(write_config, "span.csv")
    assert result.exit_code == 2
    assert "column 'a' spans from -1.7e+308 to 1.7e+308" in result.stderr and "rescale it" in result.stderr


def test_a_whole_number_target_with_classes_for_most_rows_warns(workdir, write_config):
    rng = np.random.default_rng(0)
    lines = ["a,b,y"] + [f"{rng.normal()},{rng.normal()},{rng.integers(0, 1000)}" for _ in range(100)]
    (workdir / "numbers.csv").write_text("\n".join(lines) + "\n")
    result = train(write_config, "numbers.csv")
    assert result.exit_code == 0
    assert "nncli: warning: target column 'y' of" in result.stderr
    assert "if it is a number to predict, set data.task: regression" in result.stderr
    assert "warning" not in train(write_config, out="plain").stderr  # 2 classes in 6 rows: no warning


def test_predict_says_when_a_label_was_never_seen_in_training(workdir, write_config):
    assert train(write_config).exit_code == 0
    (workdir / "unseen.csv").write_text("a,b,c,label\n0.1,1.0,5,x\n0.4,1.5,3,zebra\n")
    result = invoke("predict", "out/model.npz", "unseen.csv")
    assert result.exit_code == 0
    assert "1 of 2 rows of 'unseen.csv' have a class the model never saw in training (such as 'zebra')" in (
        result.stderr
    )


# ------------------------------------------------------------------ messages that misled


@pytest.mark.parametrize(
    ("name", "text", "fragment"),
    [
        (
            "semi.csv",
            "a;b;label\n1;2;x\n3;4;y\n",
            "if its fields are separated by ';', set data.delimiter: ';'",
        ),
        ("cr.csv", "a,b,label\r1,2,x\r3,4,y\r5,6,x\r", "ends its lines with a carriage return alone"),
        (
            "textreg.csv",
            "a,b,y\n1,2,abc\n3,4,5\n",
            "column 'y' holds 'abc', which is not a finite number; a ",
        ),
    ],
)
def test_data_mistakes_are_named_for_what_they_are(workdir, write_config, name, text, fragment):
    (workdir / name).write_text(text)
    result = train(write_config, name, ", task: regression" if name == "textreg.csv" else "")
    assert result.exit_code == 2 and fragment in result.stderr
    if name == "textreg.csv":
        assert "a regression target must be numeric" in result.stderr


def test_a_pipe_or_device_as_training_data_is_called_what_it_is(workdir, write_config):
    result = train(write_config, "/dev/zero")
    assert result.exit_code == 2
    assert (
        "is a pipe or a device, not a regular file" in result.stderr and "save it to a file" in result.stderr
    )


def test_predict_reads_a_named_pipe_as_a_stream(workdir, write_config):
    assert train(write_config).exit_code == 0
    done = subprocess.run(
        f"'{NNCLI}' predict out/model.npz <(cat small.csv)",
        shell=True,
        executable="/bin/bash",
        cwd=workdir,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == invoke("predict", "out/model.npz", "small.csv").stdout


def test_a_header_only_csv_to_predict_gives_a_header_and_a_sentence(workdir, write_config):
    assert train(write_config).exit_code == 0
    (workdir / "header.csv").write_text("a,b,c,label\n")
    result = invoke("predict", "out/model.npz", "header.csv")
    assert result.exit_code == 0 and result.stdout == "prediction\n"
    assert "'header.csv' has no data rows, so there are no predictions" in result.stderr


def test_plot_cost_of_a_model_file_says_what_to_pass(workdir, write_config):
    assert train(write_config).exit_code == 0
    result = invoke("plot-cost", "out/model.npz")
    assert result.exit_code == 2
    assert "is a model or checkpoint file, not a history; pass the run folder" in result.stderr
    assert "encoding" not in result.stderr

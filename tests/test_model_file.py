"""Crafted model files and checkpoints: refused from the archive's directory and headers before anything
large is read, their records checked field by field; exit 2 and one sentence, never a traceback."""

import io
import json
import tracemalloc
import zipfile

import numpy as np
import pytest
from click.testing import CliRunner

from nncli.cli import main
from nncli.errors import ModelFileError
from nncli.io.model_file import load_checkpoint, load_model

CONFIG = """data: {path: small.csv, target: label}
model: {hidden: [3], activation: tanh}
training: {alpha: 0.5, batch: mini-batch, batch_size: 2, epochs: 4}
output: {dir: out}
"""


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture
def run(workdir, write_config):
    assert invoke("train", write_config(CONFIG), "-q").exit_code == 0
    return workdir / "out"


def read(path):
    with np.load(path, allow_pickle=False) as archive:
        arrays = {name: archive[name] for name in archive.files}
    return arrays, json.loads(str(arrays.pop("meta")))


def rewrite(path, arrays, meta_text):
    buffer = io.BytesIO()
    np.savez(buffer, meta=np.array(meta_text), **arrays)
    path.write_bytes(buffer.getvalue())


def refused(path, loader=load_model):
    with pytest.raises(ModelFileError) as caught:
        loader(path)
    return str(caught.value)


# ------------------------------------------------------------------ the archive


def test_a_member_that_would_expand_far_beyond_its_size_is_refused_unread(run):
    path = run / "model.npz"
    with (
        zipfile.ZipFile(path, "a", compression=zipfile.ZIP_DEFLATED) as archive,
        archive.open("W9.npy", "w") as w,
    ):
        np.lib.format.write_array_header_1_0(
            w, {"descr": "<f8", "fortran_order": False, "shape": (8_000_000,)}
        )
        zeros = bytes(1 << 20)
        for _ in range(61):
            w.write(zeros)
    assert path.stat().st_size < 200_000
    tracemalloc.start()
    message = refused(path)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert "its member 'W9' would expand to" in message
    assert peak < 5_000_000


def test_a_meta_record_beyond_its_bound_is_refused(run):
    path = run / "model.npz"
    arrays, meta = read(path)
    rewrite(path, arrays, json.dumps({**meta, "padding": "x" * 400_000}))  # 4 bytes a character in .npy
    assert "its meta record is" in refused(path) and "more than 1,048,576" in refused(path)


@pytest.mark.parametrize(
    ("member", "header", "message"),
    [
        ("../evil.npy", {"descr": "<f8", "fortran_order": False, "shape": (1,)}, "unexpected member"),
        ("W1.pkl", {"descr": "<f8", "fortran_order": False, "shape": (1,)}, "unexpected member"),
        ("W7.npy", {"descr": "<f8", "fortran_order": False, "shape": (10**6, 10**6)}, "does not fit its"),
        ("W7.npy", {"descr": "|O", "fortran_order": False, "shape": (1,)}, "object arrays"),
        ("W7.npy", {"descr": "<i8", "fortran_order": False, "shape": (1,)}, "should be floating-point"),
    ],
)
def test_members_are_checked_by_name_header_and_size(run, member, header, message):
    path = run / "model.npz"
    with zipfile.ZipFile(path, "a") as archive, archive.open(member, "w") as handle:
        np.lib.format.write_array_header_1_0(handle, header)
        handle.write(bytes(8))
    assert message in refused(path)


# ------------------------------------------------------------------ the model's meta record


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda m: m.update(config=[1, 2]), "'config' should be the resolved config"),
        (lambda m: m["config"]["data"].update(delimiter=";;"), "'config' should be the resolved config"),
        (lambda m: m["config"]["data"].update(encoding=8), "'config' should be the resolved config"),
        (lambda m: m["config"]["data"].update(encoding="klingon"), "'config' should be the resolved config"),
        (lambda m: m.update(layer_sizes=[3, "3", 1]), "'layer_sizes' should be sizes ≥ 1"),
        (lambda m: m.update(mean=["a", 0, 0]), "'mean' should be finite numbers"),
        (lambda m: m.update(std=[1, 0, 1]), "'std' should be finite numbers > 0"),
        (lambda m: m.update(classes="xy"), "'classes' should be null or distinct labels"),
        (lambda m: m.update(output_units=True), "'output_units' should be a whole number ≥ 1"),
        (lambda m: m.update(target_std=None), "'target_std' should be a finite number > 0"),
        (lambda m: m.update(activation="swish"), "'activation' should be an activation's name"),
        (lambda m: m.pop("feature_names"), "'feature_names' should be distinct column names, got None"),
    ],
)
def test_a_meta_record_with_wrong_types_is_refused_naming_the_field(run, change, message):
    path = run / "model.npz"
    arrays, meta = read(path)
    change(meta)
    rewrite(path, arrays, json.dumps(meta))
    assert message in refused(path)
    result = invoke("predict", path, "small.csv")
    assert result.exit_code == 2 and message in result.stderr and "Traceback" not in result.output


def test_a_deeply_nested_meta_record_is_damaged_not_a_recursion_error(run):
    path = run / "model.npz"
    arrays, _ = read(path)
    rewrite(path, arrays, "[" * 100_000 + "]" * 100_000)
    assert "its meta record is not valid JSON" in refused(path)


def test_a_run_folder_given_as_the_model_is_read_and_a_folder_without_one_is_explained(run, workdir):
    result = invoke("predict", run, "small.csv")
    assert result.exit_code == 0 and result.stdout.startswith("prediction\n")
    result = invoke("predict", workdir, "small.csv")
    assert result.exit_code == 2 and "is a folder with no model.npz in it" in result.stderr


# ------------------------------------------------------------------ the checkpoint's trainer record


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("epoch", "3", "'epoch' should be a whole number ≥ 0, got '3'"),
        ("epoch", -5, "'epoch' should be a whole number ≥ 0, got -5"),
        ("step", 10**9, "'step' should be a whole number below 3"),
        ("epoch_rng_state", [1, 2], "'epoch_rng_state' should be a PCG64 generator state"),
        ("epoch_rng_state", {"bit_generator": "MT19937", "state": {}}, "'epoch_rng_state' should be a PCG64"),
        ("engine", "bogus", "'engine' should be null, numpy, compiled or dask, got 'bogus'"),
        ("best_cost", "low", "'best_cost' should be null or a finite number"),
        ("seconds", -1.0, "'seconds' should be a finite number ≥ 0"),
    ],
)
def test_a_checkpoint_record_with_wrong_types_or_values_is_refused(run, workdir, field, value, message):
    path = run / "checkpoint.npz"
    arrays, meta = read(path)
    meta["trainer"][field] = value
    rewrite(path, arrays, json.dumps(meta))
    before = path.read_bytes()
    load_checkpoint(path)  # the archive itself is sound
    result = invoke("train", workdir / "config.yaml", "--resume", "--epochs", 8)
    assert result.exit_code == 2, result.output
    assert "checkpoint.npz' is damaged: its trainer record's " + message in result.stderr
    assert path.read_bytes() == before


def test_a_checkpoint_whose_history_disagrees_with_its_epochs_is_refused(run, workdir):
    path = run / "checkpoint.npz"
    arrays, meta = read(path)
    arrays["history"] = arrays["history"][:2]
    rewrite(path, arrays, json.dumps(meta))
    result = invoke("train", workdir / "config.yaml", "--resume", "--epochs", 8)
    assert result.exit_code == 2 and "not one row for each of 4 epochs" in result.stderr

"""Generated configs, CSV files and damaged model files: each ends in a valid result or an nncli error
(exit code 2 on the command line), never another exception, never a hang."""

import contextlib
import io
import json
import os
import tempfile
import tracemalloc
import warnings
import zipfile
from pathlib import Path

import numpy as np
import yaml
from click.testing import CliRunner
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from nncli.cli import main
from nncli.config import load_config, reference
from nncli.errors import NncliError
from nncli.io.datasets import prepare
from nncli.io.model_file import load_checkpoint
from nncli.model.network import Network
from nncli.pipeline import load_trained_model
from nncli.training.loop import Trainer

EXAMPLES = int(os.environ.get("NNCLI_FUZZ_EXAMPLES", "250"))  # raise it for a longer hunt
CASE_MEMORY = 500 * 2**20  # what one case may allocate, at its peak


def loaded_or_refused(load, content, name: str):
    """``load(path)`` of a file named ``name`` holding ``content`` (text or bytes), within ``CASE_MEMORY``:
    its result, or None when nncli refused the file with an NncliError (the case's event says why)."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / name
        path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
        try:
            with bounded_memory():
                result = load(path)
        except NncliError as error:
            event(f"refused: {str(error).split(': ', 1)[-1][:30]}")
            return None
    event("loaded")
    return result


@contextlib.contextmanager
def bounded_memory():
    """Fail a case whose allocations (Python's and NumPy's, as tracemalloc sees them) peak above
    ``CASE_MEMORY``: a few KB of input must never take gigabytes."""
    tracemalloc.start()
    try:
        yield
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert peak < CASE_MEMORY, f"the case allocated {peak / 2**20:.0f} MiB at its peak"


FUZZ = settings(max_examples=EXAMPLES, deadline=10_000, suppress_health_check=[HealthCheck.too_slow])
KEY_PATHS = [key for key, _, _ in reference()]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**20), 10**20),
    st.integers(0, 40),
    st.floats(allow_nan=True),
    st.floats(0, 1),
    st.text(max_size=12),
    st.sampled_from(["sigmoid", "relu", "softmax", "batch", "auto", "data.csv", "-1", ".inf"]),
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


@st.composite
def config_documents(draw):
    """A YAML text: mostly real key paths with values of any type, some unknown keys, some raw text."""
    if draw(st.integers(0, 9)) == 0:
        return draw(st.text(max_size=200))
    document: dict = {"data": {"path": "data.csv"}} if draw(st.booleans()) else {}
    keys = st.sampled_from(KEY_PATHS[1:]) | st.sampled_from(KEY_PATHS[1:]) | st.text(max_size=10)
    for path in draw(st.lists(keys, max_size=6)):
        section, _, key = path.partition(".")
        node = document.setdefault(section, {}) if key else document
        if isinstance(node, dict):
            node[key or section] = draw(values)
    return yaml.safe_dump(document)


@FUZZ
@given(config_documents())
def test_any_config_document_loads_or_is_refused_with_a_config_error(text):
    config = loaded_or_refused(load_config, text, "config.yaml")
    if config is None:
        return
    assert config.data.path.is_absolute()


cells = st.one_of(
    st.integers(-5, 5).map(str),
    st.floats(-1e6, 1e6).map(repr),
    st.sampled_from(
        [
            "",
            " ",
            "1e999",
            "-1e400",
            "nan",
            "abc",
            '"quoted, comma"',
            '"unclosed',
            "1,5",
            "１２",
            "0x10",
            "1_000",
            "9" * 400,
            "\\t",
        ]
    ),
)


@st.composite
def csv_bytes(draw):
    """CSV-like bytes: ragged rows, quotes, a BOM, CRLF, stray non-UTF-8 bytes, repeated or empty
    headers, huge numbers, constant columns, empty files and header-only files."""
    width = draw(st.integers(1, 5))
    header = draw(
        st.lists(st.sampled_from(["a", "b", "c", "label", "", "a b", "é"]), min_size=width, max_size=width)
    )
    rows = draw(st.lists(st.lists(cells, min_size=max(0, width - 2), max_size=width + 2), max_size=12))
    if draw(st.booleans()):  # a clean, well-formed table with a constant column and a two-class target
        header = ["x", "constant", "label"]
        rows = [
            [repr(draw(st.floats(-1e3, 1e3))), "7", draw(st.sampled_from(["p", "q"]))]
            for _ in range(draw(st.integers(0, 8)))
        ]
    newline = draw(st.sampled_from(["\n", "\r\n"]))
    text = newline.join(",".join(row) for row in [header, *rows]) + draw(st.sampled_from(["", newline]))
    data = text.encode("utf-8")
    if draw(st.booleans()):
        data = b"\xef\xbb\xbf" + data
    if draw(st.integers(0, 5)) == 0 and data:
        at = draw(st.integers(0, len(data)))
        data = data[:at] + draw(st.sampled_from([b"\xff", b"\xc3", b"\x00", b"\x80\x81"])) + data[at:]
    if draw(st.integers(0, 9)) == 0:
        data = b""
    return data


def _data_config(path: Path):
    return load_config(_write_config(path)).data


def _write_config(path: Path) -> Path:
    config = path.parent / "c.yaml"
    config.write_text(f"data: {{path: {path.name}}}\ntraining: {{epochs: 1}}\noutput: {{dir: out}}\n")
    return config


@FUZZ
@given(csv_bytes())
def test_any_csv_file_loads_to_finite_arrays_or_is_refused_with_a_data_error(data):
    prepared = loaded_or_refused(lambda path: prepare(_data_config(path), "auto", 0), data, "data.csv")
    if prepared is None:
        return
    X, Y = prepared.train
    assert np.isfinite(X).all() and np.isfinite(Y).all()  # a constant column gives zeros, not nan
    assert len(X) == len(Y) >= 2


@settings(max_examples=60, deadline=20_000, suppress_health_check=[HealthCheck.too_slow])
@given(csv_bytes())
def test_nncli_train_on_any_csv_exits_0_or_2_without_a_traceback(data):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "data.csv"
        path.write_bytes(data)
        result = CliRunner().invoke(main, ["train", str(_write_config(path)), "-q", "--out", f"{folder}/out"])
        assert result.exit_code in (0, 2), result.output
        assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
        if result.exit_code == 2:
            assert result.stderr.startswith("nncli: error: ") and result.stderr.count("\n") == 1
            assert not Path(f"{folder}/out").exists()


def _model_bytes() -> tuple[bytes, bytes]:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "d.csv"
        path.write_text("x,y,label\n1,2,a\n2,1,b\n3,3,a\n0,1,b\n")
        config = path.parent / "c.yaml"
        config.write_text("data: {path: d.csv}\ntraining: {epochs: 2}\noutput: {dir: out}\n")
        assert CliRunner().invoke(main, ["train", str(config), "-q"]).exit_code == 0
        return (path.parent / "out/model.npz").read_bytes(), (path.parent / "out/checkpoint.npz").read_bytes()


MODEL, CHECKPOINT = _model_bytes()


@st.composite
def damaged(draw, original: bytes):
    data = bytearray(original)
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "truncate", "insert", "zero"]))
        at = draw(st.integers(0, max(0, len(data) - 1)))
        if kind == "flip" and data:
            data[at] ^= draw(st.integers(1, 255))
        elif kind == "truncate":
            del data[at:]
        elif kind == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=16))
        elif data:
            data[at : at + draw(st.integers(1, 64))] = bytes(min(64, len(data) - at))
    return bytes(data)


@FUZZ
@given(damaged(MODEL))
def test_a_damaged_model_file_loads_or_is_refused_with_a_model_error(data):
    model = loaded_or_refused(load_trained_model, data, "model.npz")
    if model is None:
        return
    X = np.zeros((1, model.network.layer_sizes[0]))
    assert model.network.forward(X).shape == (1, model.network.layer_sizes[-1])


@FUZZ
@given(damaged(CHECKPOINT))
def test_a_damaged_checkpoint_loads_or_is_refused(data):
    loaded = loaded_or_refused(load_checkpoint, data, "checkpoint.npz")
    if loaded is not None:
        arrays, meta = loaded
        assert isinstance(meta, dict) and all(a.dtype.kind == "f" for a in arrays.values())


def test_a_model_file_with_a_pickled_payload_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "ran"
    payload = np.array([__import__("types").SimpleNamespace()], dtype=object)
    buffer = io.BytesIO()
    np.savez(buffer, meta=np.array('{"format": "nncli-model", "format_version": 1}'), W1=payload)
    (tmp_path / "evil.npz").write_bytes(buffer.getvalue())
    try:
        load_trained_model(tmp_path / "evil.npz")
    except NncliError as error:
        assert "object arrays" in str(error)
    assert not marker.exists()


# ------------------------------------------------------------------ hostile shapes: aliases, nesting, members


@st.composite
def yaml_with_aliases_and_nesting(draw):
    """YAML texts built to expand or to nest: anchors whose aliases multiply, recursive aliases, undefined
    aliases, lists nested hundreds deep, repeated keys, mixed into a real config."""
    lines = ["data: {path: data.csv}"] if draw(st.booleans()) else []
    fanout = draw(st.integers(1, 12))
    levels = draw(st.integers(0, 12))
    for level in range(levels):
        inner = f"*x{level - 1}" if level else "lol"
        lines.append(f"x{level}: &x{level} [{', '.join([inner] * fanout)}]")
    if draw(st.booleans()):
        depth = draw(st.integers(1, 700))
        lines.append("deep: " + "[" * depth + "]" * depth)
    if draw(st.integers(0, 4)) == 0:
        lines.append("loop: &loop [*loop]")
    if draw(st.integers(0, 4)) == 0:
        lines.append(f"ghost: *{draw(st.sampled_from(['nowhere', 'x99']))}")
    if draw(st.integers(0, 3)) == 0:
        key = draw(st.sampled_from(["data", "training", "x0", "model"]))
        lines.append(f"{key}: {{}}")
    if draw(st.booleans()):
        key = draw(st.sampled_from(KEY_PATHS))
        section, _, name = key.partition(".")
        alias = f"*x{draw(st.integers(0, max(0, levels - 1)))}" if levels else "1e-3"
        lines.append(f"{section}: {{{name}: {alias}}}")
    return "\n".join(draw(st.permutations(lines))) + "\n"


@FUZZ
@given(yaml_with_aliases_and_nesting())
def test_yaml_built_to_expand_or_nest_loads_or_is_refused_with_a_config_error(text):
    loaded_or_refused(load_config, text, "config.yaml")


HEADERS = st.fixed_dictionaries(
    {
        "descr": st.sampled_from(["<f8", "<f4", "<i8", "|O", "<U5", "|b1", "<c16"]),
        "fortran_order": st.booleans(),
        "shape": st.lists(st.integers(0, 10**7), max_size=5).map(tuple),
    }
)


@st.composite
def crafted_archives(draw, original: bytes):
    """An archive nncli wrote, with members added or replaced: any name, any .npy header, payloads of
    zeros up to 2 MiB, stored or deflated (so that the directory claims far more than the file holds)."""
    buffer = io.BytesIO(original)
    with zipfile.ZipFile(buffer, "a") as archive:
        for _ in range(draw(st.integers(1, 4))):
            name = draw(
                st.sampled_from(["W1.npy", "b2.npy", "W9.npy", "meta.npy", "x.pkl", "../up.npy", "theta.npy"])
            )
            method = draw(st.sampled_from([zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED]))
            info = zipfile.ZipInfo(name)
            info.compress_type = method
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # a duplicate name is one of the cases
                handle = archive.open(info, "w", force_zip64=True)
            with handle:
                np.lib.format.write_array_header_1_0(handle, draw(HEADERS))
                handle.write(bytes(draw(st.sampled_from([0, 8, 4096, 1 << 21]))))
    return buffer.getvalue()


@FUZZ
@given(crafted_archives(MODEL))
def test_a_model_with_crafted_members_loads_or_is_refused(data):
    loaded_or_refused(load_trained_model, data, "model.npz")


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8,
)


def _archive(original: bytes) -> tuple[dict, dict]:
    with np.load(io.BytesIO(original), allow_pickle=False) as archive:
        arrays = {name: archive[name] for name in archive.files}
    return arrays, json.loads(str(arrays.pop("meta")))


def _rewritten(arrays: dict, meta: dict) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, meta=np.array(json.dumps(meta)), **arrays)
    return buffer.getvalue()


@st.composite
def crafted_records(draw, original: bytes, record: str | None):
    """The archive's JSON record (or its ``record`` part) with fields replaced by any JSON value, removed,
    or nested deep."""
    arrays, meta = _archive(original)
    target = meta if record is None else meta[record]
    for _ in range(draw(st.integers(1, 3))):
        key = draw(st.sampled_from(sorted(target)))
        action = draw(st.sampled_from(["replace", "remove", "nest"]))
        if action == "replace":
            target[key] = draw(json_values)
        elif action == "remove":
            target.pop(key)
        else:
            depth = draw(st.integers(1, 3000))
            target[key] = json.loads("[" * depth + "]" * depth) if depth < 900 else [[[]]]
    return _rewritten(arrays, meta)


@FUZZ
@given(crafted_records(MODEL, None))
def test_a_model_whose_meta_fields_are_crafted_loads_or_is_refused(data):
    model = loaded_or_refused(load_trained_model, data, "model.npz")
    if model is None:
        return
    assert model.network.forward(np.zeros((1, model.network.layer_sizes[0]))).shape[0] == 1


@FUZZ
@given(crafted_records(CHECKPOINT, "trainer"))
def test_a_checkpoint_whose_trainer_record_is_crafted_resumes_or_is_refused(data):
    arrays, meta = load_checkpoint_bytes(data)
    trainer = Trainer(Network([2, 3, 1], output="sigmoid"), np.zeros((4, 2)), np.zeros((4, 1)), batch_size=2)
    try:
        with bounded_memory():
            trainer.restore(arrays, meta["trainer"])
    except (ValueError, KeyError) as error:
        event(f"refused: {str(error)[:30]}")
        return
    event("restored")
    trainer.run(trainer.state.epoch + 1)
    assert np.isfinite(trainer.net.theta).all()


def load_checkpoint_bytes(data: bytes):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "checkpoint.npz"
        path.write_bytes(data)
        return load_checkpoint(path)

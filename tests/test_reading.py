"""Reading a training CSV one range of lines per core gives exactly what reading it as one stream gives."""

import itertools
import os
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

import nncli.io.datasets as data
import nncli.io.line_ranges as line_ranges
from nncli.errors import DataError


@pytest.fixture
def split_small_files(monkeypatch):
    """Cut even small files, into three ranges (more threads than this machine may have cores); the
    list it yields counts the reads that the ranges completed without falling back to one stream."""
    monkeypatch.setattr(line_ranges, "MIN_BYTES_TO_SPLIT", 0)
    monkeypatch.setattr(data, "available_cores", lambda: 3)
    completed = []
    read_ranges = data._read_ranges

    def counted(*args):
        result = read_ranges(*args)
        completed.append(len(result[0]))
        return result

    monkeypatch.setattr(data, "_read_ranges", counted)
    return completed


def write_table(path: Path, rows: int, labels, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    values = rng.normal(size=(rows, 3)) * 10.0 ** rng.integers(-3, 4, size=(rows, 3))
    lines = ["a,b,c,label"]
    for row, label in zip(values, rng.choice(labels, size=rows), strict=True):
        lines.append(",".join(repr(float(v)) for v in row) + f",{label}")
    path.write_text("\n".join(lines) + "\n")
    return path


def read(path: Path, task: str = "classification"):
    source = data.CsvSource(path)
    columns = data.read_header(source)
    return data._read_training_rows(source, columns, columns[:-1], (columns[-1],), task)


def read_as_one_stream(path: Path, task: str = "classification", monkeypatch=None):
    monkeypatch.setattr(line_ranges, "MIN_BYTES_TO_SPLIT", 1 << 60)
    try:
        return read(path, task)
    finally:
        monkeypatch.setattr(line_ranges, "MIN_BYTES_TO_SPLIT", 0)


def assert_same(mine, theirs):
    assert mine[0].tobytes() == theirs[0].tobytes()
    assert np.array_equal(mine[1], theirs[1]) and mine[1].dtype == theirs[1].dtype
    assert mine[2] == theirs[2]


def test_ranges_cover_the_lines_after_the_header_and_end_at_line_breaks(tmp_path, monkeypatch):
    monkeypatch.setattr(line_ranges, "MIN_BYTES_TO_SPLIT", 0)
    path = write_table(tmp_path / "t.csv", 500, ["x", "y"])
    text = path.read_bytes()
    ranges = line_ranges.line_ranges(path, 3, "utf-8")
    assert len(ranges) == 3
    assert ranges[0].start == text.index(b"\n") + 1 and ranges[-1].end == len(text)
    for before, after in itertools.pairwise(ranges):
        assert before.end == after.start and text[before.end - 1 : before.end] == b"\n"
    assert sum(r.line_breaks for r in ranges) == 500
    for r in ranges:
        with line_ranges.open_range(path, r) as handle:
            assert handle.read() == text[r.start : r.end]


@settings(max_examples=150, deadline=None)
@given(
    lines=st.lists(st.text(alphabet="ab,1\n", max_size=6).map(str.encode), max_size=30),
    rows=st.integers(1, 7),
    block=st.integers(1, 9),
    last_break=st.booleans(),
)
def test_a_row_grid_holds_rows_lines_per_range_whatever_the_blocks_it_is_read_in(
    lines, rows, block, last_break
):
    """row_grid (the Dask partitions) against the file's lines after the header grouped by ``rows``, read
    in blocks of a few bytes so that cuts and blank lines fall on every block edge."""
    body = b"".join(line + b"\n" for line in lines)
    if not last_break:
        body = body.rstrip(b"\n") + b"1"
    text = b"x,label\n" + body
    saved = line_ranges.SCAN_BYTES
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "t.csv"
        path.write_bytes(text)
        try:
            line_ranges.SCAN_BYTES = block
            grid = line_ranges.row_grid(path, rows, "utf-8")
        finally:
            line_ranges.SCAN_BYTES = saved
    pieces = body.splitlines(keepends=True)
    expected = [b"".join(pieces[i : i + rows]) for i in range(0, len(pieces), rows)]
    assert [text[r.start : r.end] for r in grid] == expected
    assert [r.line_breaks for r in grid] == [piece.count(b"\n") for piece in expected]


def test_a_row_grid_refuses_what_cannot_be_cut(tmp_path):
    for content, encoding in [
        ('a,label\n1,x\n2,"y"\n', "utf-8"),
        ("a,label\n1,x\n", "utf-16"),
        ("a", "utf-8"),
    ]:
        path = tmp_path / "t.csv"
        path.write_bytes(content.encode(encoding))
        assert line_ranges.row_grid(path, 1, encoding) is None, content


@pytest.mark.parametrize(
    ("content", "encoding"),
    [
        ('a,label\n1,"x"\n2,y\n', "utf-8"),  # a quote: a field may hold a line break
        ("a,label\n1,x\n2,y\n", "utf-16"),  # b"\n" may be half of a character
        ("a,label", "utf-8"),  # no data lines
    ],
)
def test_files_that_cannot_be_cut_safely_are_read_as_one_range(tmp_path, monkeypatch, content, encoding):
    monkeypatch.setattr(line_ranges, "MIN_BYTES_TO_SPLIT", 0)
    path = tmp_path / "t.csv"
    path.write_bytes(content.encode(encoding))
    assert line_ranges.line_ranges(path, 2, encoding) == []


@pytest.mark.parametrize("labels", [["cat", "dog", " bird", "bird "], [3, 1, 2], [7.0, 2.0]])
def test_reading_in_ranges_equals_reading_one_stream(tmp_path, monkeypatch, split_small_files, labels):
    path = write_table(tmp_path / "t.csv", 3000, labels, seed=len(labels))
    in_ranges = read(path)
    assert split_small_files == [3000]  # read in ranges, not by falling back
    assert_same(in_ranges, read_as_one_stream(path, monkeypatch=monkeypatch))


def test_labels_first_met_in_a_later_range_keep_the_file_order(tmp_path, split_small_files, monkeypatch):
    path = tmp_path / "t.csv"
    rows = [f"{i},{'early' if i < 200 else 'late'}" for i in range(400)]
    path.write_text("a,label\n" + "\n".join(rows) + "\n")
    X, codes, labels = read(path)
    assert split_small_files == [400]
    assert labels == ["early", "late"]
    assert codes.tolist() == [0] * 200 + [1] * 200
    assert X[:, 0].tolist() == list(range(400))


def test_regression_targets_read_in_ranges(tmp_path, split_small_files, monkeypatch):
    path = write_table(tmp_path / "t.csv", 2000, [0.5, -1.25, 3.0])
    assert_same(read(path, "regression"), read_as_one_stream(path, "regression", monkeypatch))
    assert split_small_files == [2000]


def test_a_blank_line_inside_a_range_still_gives_every_row_in_order(tmp_path, split_small_files, monkeypatch):
    path = tmp_path / "t.csv"
    rows = [f"{i},{i % 3}" for i in range(300)]
    rows.insert(50, "")
    path.write_text("a,label\n" + "\n".join(rows) + "\n")
    X, codes, labels = read(path)
    assert split_small_files == []  # the ranges disagreed; one stream read it
    assert X[:, 0].tolist() == list(range(300))
    assert labels == [0, 1, 2] and codes.tolist() == [i % 3 for i in range(300)]


def numbered_rows(path: Path, replace: dict[int, str]) -> Path:
    """a,label and 300 rows i,i % 2, with some rows (0-based) replaced."""
    rows = [replace.get(i, f"{i},{i % 2}") for i in range(300)]
    path.write_text("a,label\n" + "\n".join(rows) + "\n")
    return path


def test_a_bad_cell_in_a_later_range_is_named_by_its_line_in_the_file(tmp_path, split_small_files):
    path = numbered_rows(tmp_path / "t.csv", {250: "oops,1"})
    with pytest.raises(DataError, match=r"line 252: column 'a' holds 'oops'"):
        read(path)


def test_a_long_row_in_a_later_range_is_refused(tmp_path, split_small_files):
    path = numbered_rows(tmp_path / "t.csv", {280: "1,0,9"})
    with pytest.raises(DataError, match=r"line 282 has 3 fields but the header has 2"):
        read(path)


cells = st.one_of(
    st.integers(-5, 300).map(str),
    st.floats(-1e6, 1e6, allow_nan=False).map(repr),
    st.sampled_from(["", " 7", "x", "nan", "inf", "1e-3", "  ", "True"]),
)
labels = st.sampled_from(["a", " a", "b", "1", "2", "2.0", "", "NA", "yes"])


@st.composite
def tables(draw):
    """A CSV text: a header a,b,label, rows of mostly numbers with now and then a bad cell, a short or
    long row, a blank line."""
    lines = ["a,b,label"]
    clean = draw(st.booleans())  # half the tables hold only numbers and good labels
    for _ in range(draw(st.integers(1, 60))):
        if clean:
            number = st.integers(-5, 300).map(str) | st.floats(-1e6, 1e6).map(repr)
            label = st.sampled_from(["a", " a", "b", "1", "2", "2.0"])
            lines.append(f"{draw(number)},{draw(number)},{draw(label)}")
            continue
        shape = draw(st.integers(0, 30))
        if shape == 0:
            lines.append("")
        elif shape == 1:
            lines.append(draw(cells))
        elif shape == 2:
            lines.append(",".join(draw(st.lists(cells, min_size=4, max_size=4))))
        else:
            lines.append(f"{draw(cells)},{draw(cells)},{draw(labels)}")
    return "\n".join(lines) + draw(st.sampled_from(["\n", ""]))


def outcome(path: Path, task: str):
    try:
        X, targets, found = read(path, task)
    except DataError as error:
        return str(error)
    return X.tobytes(), targets.tobytes(), targets.dtype.str, found


@settings(max_examples=int(os.environ.get("NNCLI_FUZZ_EXAMPLES", "150")), deadline=None)
@given(tables(), st.sampled_from(["classification", "regression"]))
@example("a,b,label\n0,0,a\n0,True,a\n", "classification")  # b typed as booleans in one range only
def test_any_table_reads_the_same_in_ranges_and_as_one_stream(text, task):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "t.csv"
        path.write_text(text)
        saved = line_ranges.MIN_BYTES_TO_SPLIT, data.available_cores
        try:
            line_ranges.MIN_BYTES_TO_SPLIT, data.available_cores = 0, lambda: 3
            in_ranges = outcome(path, task)
            line_ranges.MIN_BYTES_TO_SPLIT = 1 << 60
            as_one_stream = outcome(path, task)
        finally:
            line_ranges.MIN_BYTES_TO_SPLIT, data.available_cores = saved
    assert in_ranges == as_one_stream


@pytest.mark.parametrize(
    "names",
    [["a", "b", "c"], ["b", "c"], ["c", "a"], ["a", "c"], ["flag", "a"], ["b"]],
)
@pytest.mark.parametrize("label", [[1, 2, 1, 3], ["x", "y", "x", "z"]])
def test_feature_columns_as_floats_equal_pandas_own_selection(names, label):
    """Numeric tables are converted whole and the features taken from the result (a view for a run of
    columns, a copy otherwise); a table with a text column is selected first. Either way the values and
    their order are pandas' own selection's."""
    import pandas as pd

    frame = pd.DataFrame(
        {
            "a": [1, 2, 3, 4],
            "b": [0.5, -1.5, 2.25, 1e300],
            "label": label,
            "c": [7, 8, 9, -10],
            "flag": [True, False, True, True],
        }
    )
    expected = frame[names].to_numpy(dtype=np.float64)
    values = data._as_floats(frame, names)
    assert values.dtype == np.float64 and values.shape == (4, len(names))
    assert np.array_equal(values, expected)


@pytest.mark.parametrize("block", [1, 3, 1024])
def test_training_rows_kept_in_place_equal_a_copy_of_them(block):
    rng = np.random.default_rng(5)
    X = rng.normal(size=(50, 4))
    train, _ = data.split_rows(50, rng.integers(0, 3, 50), 0.3, rng)
    expected = X[train]
    kept = data._keep_rows(X, train, block)
    assert np.shares_memory(kept, X) and kept.shape == (len(train), 4)
    assert np.array_equal(kept, expected)


@pytest.mark.parametrize("block", [1, 3, 512])
def test_column_mean_and_std_in_blocks_equal_numpys(block):
    rng = np.random.default_rng(6)
    X = rng.normal(loc=3.0, scale=[1.0, 10.0, 1e-3, 0.0], size=(50, 4))
    mean, std = data._column_mean_std(X, block)
    np.testing.assert_allclose(mean, X.mean(axis=0), rtol=1e-14)
    np.testing.assert_allclose(std[:3], X.std(axis=0)[:3], rtol=1e-12)
    assert std[3] == 1.0  # a constant column: standardized to zeros, not nan


def test_a_feature_missing_from_a_numeric_table_is_not_taken_from_another_column():
    import pandas as pd

    frame = pd.DataFrame({"a": [1, 2], "b": [3, 4], "c": [5, 6]})
    with pytest.raises(KeyError):
        data._as_floats(frame, ["a", "z"])


def test_numeric_columns_read_without_a_buffer_never_share_the_frames_memory():
    """Standardizing X in place must not change the table it came from."""
    import pandas as pd

    frame = pd.DataFrame({"a": [1.0, 2.0], "b": [3.0, 4.0], "y": [0.5, 0.25]})
    X = data.numeric_matrix(frame, ["a", "b"], data.CsvSource(None))
    X -= 10.0
    assert frame["a"].tolist() == [1.0, 2.0] and frame["b"].tolist() == [3.0, 4.0]


@pytest.mark.parametrize("task", ["multilabel", "regression"])
def test_several_targets_read_in_ranges_equal_one_stream(tmp_path, monkeypatch, split_small_files, task):
    rng = np.random.default_rng(5)
    rows = 3000
    X = rng.normal(size=(rows, 2))
    Y = rng.integers(0, 2, size=(rows, 3)) if task == "multilabel" else rng.normal(size=(rows, 3)) * 1e3
    lines = ["a,b,t1,t2,t3"] + [",".join(repr(float(v)) for v in (*x, *y)) for x, y in zip(X, Y, strict=True)]
    path = tmp_path / "t.csv"
    path.write_text("\n".join(lines) + "\n")
    source = data.CsvSource(path)
    columns = data.read_header(source)
    in_ranges = data._read_training_rows(source, columns, ["a", "b"], ("t1", "t2", "t3"), task)
    assert split_small_files == [rows]
    monkeypatch.setattr(line_ranges, "MIN_BYTES_TO_SPLIT", 1 << 60)
    whole = data._read_training_rows(source, columns, ["a", "b"], ("t1", "t2", "t3"), task)
    assert_same(in_ranges, whole)
    assert in_ranges[1].shape == (rows, 3) and np.array_equal(in_ranges[1], Y.astype(float))

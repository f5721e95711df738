import os

import hypothesis
import numpy as np
import pytest


def one_hot(labels, k):
    return np.eye(k)[labels]


def targets_for(output, rng, m, k):
    """Random targets of the kind each output unit expects."""
    if output == "softmax":
        return one_hot(rng.integers(0, k, size=m), k)
    if output == "sigmoid":
        return rng.integers(0, 2, size=(m, k)).astype(float)
    return rng.normal(size=(m, k))


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


ROOT = __import__("pathlib").Path(__file__).resolve().parent.parent

SMALL_CSV = """a,b,c,label
0.1,1.0,5,x
0.4,1.5,3,y
0.2,0.5,4,x
0.9,2.5,1,y
0.3,1.1,4,x
0.8,2.1,2,y
"""


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """A temporary folder that is also the current one, holding small.csv."""
    (tmp_path / "small.csv").write_text(SMALL_CSV)
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def write_config(workdir):
    """write_config(text) -> path of a YAML config in the work folder."""

    def write(text: str, name: str = "config.yaml"):
        path = workdir / name
        path.write_text(text)
        return path

    return write


# In CI, property tests draw the same examples every run, so a red build is always reproducible.
hypothesis.settings.register_profile("ci", derandomize=True, deadline=None)
if os.environ.get("CI"):
    hypothesis.settings.load_profile("ci")

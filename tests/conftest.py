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

"""nncli: neural networks trained by exact, vectorized backpropagation, from a YAML config and a CSV file.

The public Python API::

    from nncli import Network, gradcheck, train

The names are imported when first used, so that ``import nncli`` (and the command line's start) loads
nothing heavy.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_API = {
    "Network": "nncli.model.network",
    "GradcheckReport": "nncli.model.gradcheck",
    "gradcheck": "nncli.model.gradcheck",
    "History": "nncli.training.loop",
    "train": "nncli.training.loop",
}

__all__ = ["GradcheckReport", "History", "Network", "__version__", "gradcheck", "train"]


def __getattr__(name: str):
    if name not in _API:
        raise AttributeError(f"module 'nncli' has no attribute {name!r}")
    value = getattr(importlib.import_module(_API[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_API])

"""nncli: fully connected neural networks trained by exact, vectorized backpropagation.

The public Python API::

    from nncli import Network, gradcheck, train
"""

from nncli.gradcheck import GradcheckReport, gradcheck
from nncli.network import Network
from nncli.train import History, train

__version__ = "0.1.0"

__all__ = ["GradcheckReport", "History", "Network", "__version__", "gradcheck", "train"]

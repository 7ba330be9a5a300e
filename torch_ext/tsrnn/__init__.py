"""tsrnn: fused LSTM and GRU kernels for PyTorch, as drop-in nn.LSTM / nn.GRU replacements.

``import tsrnn`` loads torch and the ops only; the forecasting job and the benchmark are in ``tsrnn.app``.
"""

from . import _ops
from ._ops import gru, lstm
from .convert import convert, to_torch
from .modules import GRU, LSTM

__version__ = "0.1.0"
__all__ = ["LSTM", "GRU", "lstm", "gru", "convert", "to_torch"]

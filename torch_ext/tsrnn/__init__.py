"""tsrnn: fused LSTM and GRU kernels for PyTorch (C on the CPU), as drop-in nn.LSTM / nn.GRU replacements."""

from . import _ops
from ._ops import gru, lstm
from .convert import convert, to_torch
from .forecast import TorchRNNForecaster
from .modules import GRU, LSTM

__version__ = "0.1.0"
__all__ = ["LSTM", "GRU", "lstm", "gru", "convert", "to_torch", "TorchRNNForecaster"]

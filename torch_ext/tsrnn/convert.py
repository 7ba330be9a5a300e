"""One-line swaps between nn.LSTM / nn.GRU and their tsrnn twins inside any model."""

from __future__ import annotations

import copy

from torch import nn

from .modules import GRU, LSTM

__all__ = ["convert", "to_torch"]

_TO_TSRNN = {nn.LSTM: LSTM, nn.GRU: GRU}
_TO_TORCH = {LSTM: nn.LSTM, GRU: nn.GRU}


def _config(rnn: nn.RNNBase) -> dict:
    cfg = dict(
        input_size=rnn.input_size, hidden_size=rnn.hidden_size, num_layers=rnn.num_layers, bias=rnn.bias,
        batch_first=rnn.batch_first, dropout=rnn.dropout, bidirectional=rnn.bidirectional,
    )
    if rnn.mode == "LSTM":
        cfg["proj_size"] = rnn.proj_size
    return cfg


def _twin(rnn: nn.RNNBase, cls) -> nn.RNNBase:
    """A module of class cls with rnn's configuration that shares rnn's Parameter objects (so an optimizer
    built on the old parameters keeps working) and its training mode."""
    first = getattr(rnn, rnn._flat_weights_names[0])
    twin = cls(**_config(rnn), device="meta", dtype=first.dtype)
    for name in rnn._flat_weights_names:
        setattr(twin, name, getattr(rnn, name))
    twin._init_flat_weights()  # refresh nn.RNNBase's weak references to the (now shared) parameters
    twin.train(rnn.training)
    return twin


def _swap(model: nn.Module, table: dict, check=None) -> nn.Module:
    if type(model) in table:
        if check:
            check(model)
        return _twin(model, table[type(model)])
    for name, child in model.named_children():
        new = _swap(child, table, check)
        if new is not child:
            setattr(model, name, new)
    return model


def convert(model: nn.Module, inplace: bool = False) -> nn.Module:
    """Replaces every nn.LSTM / nn.GRU in ``model`` (or ``model`` itself) with tsrnn.LSTM / tsrnn.GRU holding the
    same parameters. Subclasses of nn.LSTM / nn.GRU are left alone (their forward may differ).

    With ``inplace=False`` (default) the model is deep-copied first; with ``inplace=True`` the swapped modules
    share the original Parameter objects, so an existing optimizer keeps training them."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"tsrnn.convert expects an nn.Module, got {type(model).__name__}")
    return _swap(model if inplace else copy.deepcopy(model), _TO_TSRNN)


def _check_expressible(rnn: nn.RNNBase) -> None:
    if isinstance(rnn, GRU) and not rnn.reset_after:
        raise ValueError(
            "tsrnn.to_torch: a tsrnn.GRU with reset_after=False has no nn.GRU equivalent "
            "(nn.GRU applies the reset gate after the recurrent product)"
        )


def to_torch(model: nn.Module, inplace: bool = False) -> nn.Module:
    """The inverse of :func:`convert`: tsrnn.LSTM / tsrnn.GRU back to nn.LSTM / nn.GRU with the same parameters
    (the path to ONNX export and torch.export). Raises ValueError for a GRU with reset_after=False."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"tsrnn.to_torch expects an nn.Module, got {type(model).__name__}")
    return _swap(model if inplace else copy.deepcopy(model), _TO_TORCH, _check_expressible)

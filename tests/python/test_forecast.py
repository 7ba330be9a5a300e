"""The notebook's forecaster on both backends: same data, same initial weights, same batches, same losses."""

import numpy as np
import pytest
import torch

import tsrnn
import tsrnn.app
from tsrnn.__main__ import main
from tsrnn.app.forecast import compare_backends, make_toy_series, split_and_scale


@pytest.fixture(scope="module")
def data():
    t, y = make_toy_series(n=900, noise=0.18, seed=42)
    return split_and_scale(t, y, seq_len=60)


def test_notebook_shapes(data):
    assert data.X_train.shape == (570, 60, 1) and data.y_train.shape == (570, 1)
    assert data.X_test.shape == (270, 60, 1) and data.y_test.shape == (270, 1)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_backends_agree_per_epoch(data, cell):
    runs = compare_backends(data, cell, hidden=32, epochs=3, seed=42)
    a, b = runs["tsrnn"]["history"], runs["torch"]["history"]
    rel = np.abs(a - b) / np.abs(b)
    assert rel.max() < 1e-4, f"per-epoch losses differ: tsrnn {a}, torch {b}"
    assert a[-1] < a[0], "loss did not go down"


def test_forecaster_rejects_bad_arguments():
    with pytest.raises(ValueError, match="rnn_type"):
        tsrnn.app.TorchRNNForecaster("rnn")
    with pytest.raises(ValueError, match="backend"):
        tsrnn.app.TorchRNNForecaster("lstm", backend="cudnn")
    assert isinstance(tsrnn.app.TorchRNNForecaster("gru", backend="tsrnn").rnn, tsrnn.GRU)
    assert type(tsrnn.app.TorchRNNForecaster("gru", backend="torch").rnn) is torch.nn.GRU


def test_cli_rejects_bad_options():
    for bad in (["forecast", "--epochs", "0"], ["forecast", "--cells", "rnn"], ["forecast", "--hidden", "x"],
                ["forecast", "--backends", "cudnn"], ["forecast", "--backends", "torch,torch"]):
        with pytest.raises(SystemExit) as e:
            main(bad)
        assert e.value.code == 2
    with pytest.raises(ValueError, match="too short"):
        split_and_scale(np.arange(10.0), np.arange(10.0), seq_len=20)

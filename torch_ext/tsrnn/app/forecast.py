"""The seed notebook's one-step-ahead forecaster, with a backend switch between tsrnn and torch.nn.

Data, model and training follow the notebook the project grew from: a toy series (n=900, noise 0.18, seed 42), a 70/30
time split, scaling by the train mean/std, windows of 60 values -> the next value, an LSTM or GRU of hidden size
32 with a linear head on the last hidden state, Adam (lr 1e-3), batch 64 shuffled, gradient clipping at 1.0.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ..modules import GRU, LSTM

__all__ = [
    "ForecastData",
    "TorchRNNForecaster",
    "make_toy_series",
    "make_windows",
    "split_and_scale",
    "train_forecaster",
    "compare_backends",
]

CELLS = ("lstm", "gru")
BACKENDS = ("tsrnn", "torch")


def make_toy_series(n: int = 800, noise: float = 0.15, seed: int = 42):
    """The notebook's series: two seasonalities, a trend and Gaussian noise. Returns (t, y) float64 arrays."""
    rng = np.random.default_rng(seed)
    t = np.arange(n, dtype=float)
    y = 1.2 * np.sin(2 * np.pi * t / 50) + 0.6 * np.sin(2 * np.pi * t / 17 + 0.8) + 0.0025 * t
    y += noise * rng.normal(size=n)
    return t, y


def make_windows(series: np.ndarray, seq_len: int):
    """Sliding windows: X (N, seq_len, 1), y (N, 1) the value right after each window, and its index."""
    n_windows = len(series) - seq_len
    if n_windows < 1:
        raise ValueError(f"series of length {len(series)} is too short for windows of {seq_len} values")
    starts = np.arange(n_windows)
    X = np.stack([series[s : s + seq_len] for s in starts]).astype(float)[:, :, None]
    target_idx = starts + seq_len
    y = series[target_idx].astype(float)[:, None]
    return X, y, target_idx


@dataclass
class ForecastData:
    """A scaled series split in time, with its windows. Arrays are float64, as in the notebook."""

    t: np.ndarray
    y: np.ndarray
    split_t: int
    mean: float
    std: float
    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    t_train: np.ndarray
    t_test: np.ndarray

    def unscale(self, values: np.ndarray) -> np.ndarray:
        return values * self.std + self.mean


def split_and_scale(t: np.ndarray, y: np.ndarray, seq_len: int = 60, train_fraction: float = 0.7) -> ForecastData:
    """70/30 split by time, scaling by the train part's mean/std, windows labelled train or test by target."""
    split_t = int(train_fraction * len(y))
    mean = float(y[:split_t].mean())
    std = float(y[:split_t].std() + 1e-8)
    X_all, y_all, target_idx = make_windows((y - mean) / std, seq_len)
    train = target_idx < split_t
    if not train.any() or train.all():
        raise ValueError(
            f"series of length {len(y)} with seq_len {seq_len} leaves no train or no test window; "
            "use a longer series or a shorter --seq-len"
        )
    return ForecastData(
        t=t, y=y, split_t=split_t, mean=mean, std=std,
        X_train=X_all[train], y_train=y_all[train], X_test=X_all[~train], y_test=y_all[~train],
        t_train=t[target_idx[train]], t_test=t[target_idx[~train]],
    )


class TorchRNNForecaster(nn.Module):
    """Recurrent layer + linear head on the last hidden state (the notebook's model), on either backend."""

    def __init__(self, rnn_type: str, input_size: int = 1, hidden_size: int = 32, backend: str = "tsrnn"):
        super().__init__()
        rnn_type = rnn_type.lower()
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
        classes = {"tsrnn": {"lstm": LSTM, "gru": GRU}, "torch": {"lstm": nn.LSTM, "gru": nn.GRU}}[backend]
        if rnn_type not in classes:
            raise ValueError("rnn_type must be 'lstm' or 'gru'")
        self.rnn_type = rnn_type
        self.backend = backend
        self.rnn = classes[rnn_type](input_size, hidden_size, batch_first=True)
        self.head = nn.Linear(hidden_size, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.rnn(x)
        return self.head(out[:, -1, :])


def train_forecaster(
    model: nn.Module,
    X: np.ndarray,
    y: np.ndarray,
    *,
    epochs: int = 40,
    lr: float = 1e-3,
    batch_size: int = 64,
    max_grad_norm: float = 1.0,
    seed: int = 42,
    on_epoch=None,
) -> np.ndarray:
    """The notebook's training loop. Batches are drawn from a generator seeded with ``seed``, so two models
    trained with the same seed see the same batches in the same order. Returns the per-epoch mean loss."""
    X_t = torch.tensor(X, dtype=torch.float32)
    y_t = torch.tensor(y, dtype=torch.float32)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    loss_fn = nn.MSELoss()
    gen = torch.Generator().manual_seed(seed)
    history = []
    for epoch in range(1, epochs + 1):
        model.train()
        total = 0.0
        for idx in torch.randperm(len(X_t), generator=gen).split(batch_size):
            xb, yb = X_t[idx], y_t[idx]
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(model(xb), yb)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
            opt.step()
            total += float(loss.item()) * len(idx)
        history.append(total / len(X_t))
        if on_epoch is not None:
            on_epoch(epoch, history[-1])
    return np.asarray(history, dtype=float)


def _warm_up(model: nn.Module, X: np.ndarray) -> None:
    """One forward + backward on a throwaway copy, so one-time costs (library dispatch caches, first-touch
    allocations) stay out of the training time; the model itself and its gradients are untouched."""
    twin = copy.deepcopy(model)
    twin(torch.tensor(X, dtype=torch.float32)).sum().backward()


def compare_backends(
    data: ForecastData, cell: str, *, hidden: int = 32, epochs: int = 40, seed: int = 42, batch_size: int = 64,
    backends=BACKENDS, on_epoch=None,
) -> dict:
    """Train the same initial model on every backend with the same batches. Returns per backend: the
    trained model, its loss history and its training time in seconds."""
    torch.manual_seed(seed)
    reference = TorchRNNForecaster(cell, input_size=data.X_train.shape[-1], hidden_size=hidden, backend="torch")
    init_state = {k: v.clone() for k, v in reference.state_dict().items()}
    runs = {}
    for backend in backends:
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
        model = TorchRNNForecaster(cell, input_size=data.X_train.shape[-1], hidden_size=hidden, backend=backend)
        model.load_state_dict(init_state)
        _warm_up(model, data.X_train[:batch_size])
        start = time.perf_counter()
        history = train_forecaster(
            model, data.X_train, data.y_train, epochs=epochs, seed=seed, batch_size=batch_size,
            on_epoch=(lambda e, l, b=backend: on_epoch(b, e, l)) if on_epoch else None,
        )
        runs[backend] = {"model": model, "history": history, "seconds": time.perf_counter() - start}
    return runs

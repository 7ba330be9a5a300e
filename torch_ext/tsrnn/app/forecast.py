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
    "speed_ratio",
    "Trainer",
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


class Trainer:
    """The notebook's training loop for one model, one epoch per call of ``epoch()``: Adam, MSE, shuffled batches
    from a generator seeded with ``seed`` (two trainers with the same seed see the same batches in the same order),
    gradient-norm clipping. The data are moved to the model's device once."""

    def __init__(self, model: nn.Module, X: np.ndarray, y: np.ndarray, *, lr: float = 1e-3, batch_size: int = 64,
                 max_grad_norm: float = 1.0, seed: int = 42):
        device = next(model.parameters()).device
        self.model, self.batch_size, self.max_grad_norm = model, batch_size, max_grad_norm
        self.X = torch.tensor(X, dtype=torch.float32, device=device)
        self.y = torch.tensor(y, dtype=torch.float32, device=device)
        self.opt = torch.optim.Adam(model.parameters(), lr=lr)
        self.loss_fn = nn.MSELoss()
        self.gen = torch.Generator().manual_seed(seed)

    def step(self, idx: torch.Tensor) -> float:
        """One optimizer step on the rows ``idx``; returns the batch's mean loss."""
        xb, yb = self.X[idx], self.y[idx]
        self.opt.zero_grad(set_to_none=True)
        loss = self.loss_fn(self.model(xb), yb)
        loss.backward()
        nn.utils.clip_grad_norm_(self.model.parameters(), self.max_grad_norm)
        self.opt.step()
        return float(loss.item())

    def epoch(self) -> float:
        """One pass over the data in a fresh shuffled order; returns the epoch's mean loss."""
        self.model.train()
        total = 0.0
        for idx in torch.randperm(len(self.X), generator=self.gen).split(self.batch_size):
            total += self.step(idx.to(self.X.device)) * len(idx)
        return total / len(self.X)

    def warm_up(self, steps: int) -> None:
        """``steps`` optimizer steps of a throwaway copy (model and optimizer) on the real batch shapes, the last
        one the epoch's short tail batch when there is one, so one-time costs (dispatch caches, workspace and
        allocator growth, first-touch pages) stay out of the timed epochs. This trainer is left untouched: its
        weights, optimizer state and batch order."""
        if steps < 1:
            return
        twin = copy.copy(self)
        twin.model = copy.deepcopy(self.model)
        twin.opt = torch.optim.Adam(twin.model.parameters(), lr=self.opt.param_groups[0]["lr"])
        twin.model.train()
        n, b = len(self.X), self.batch_size
        sizes = [min(b, n)] * steps
        if n % b and n > b:
            sizes[-1] = n % b
        for size in sizes:
            twin.step(torch.arange(size, device=self.X.device))
        _sync(self.X.device)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


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
    """The notebook's training loop (see ``Trainer``); returns the per-epoch mean loss."""
    trainer = Trainer(model, X, y, lr=lr, batch_size=batch_size, max_grad_norm=max_grad_norm, seed=seed)
    history = []
    for epoch in range(1, epochs + 1):
        history.append(trainer.epoch())
        if on_epoch is not None:
            on_epoch(epoch, history[-1])
    return np.asarray(history, dtype=float)


def compare_backends(
    data: ForecastData, cell: str, *, hidden: int = 32, epochs: int = 40, seed: int = 42, batch_size: int = 64,
    backends=BACKENDS, device: str = "cpu", warmup_steps: int = 3, on_epoch=None,
) -> dict:
    """Train the same initial model on every backend with the same batches.

    Timing: each backend is first warmed up (``Trainer.warm_up``), then the backends train alternately, one epoch
    each in turn (A B A B ...), so a slow phase of the machine falls on all of them alike and no backend pays the
    process's one-time costs for the others. Returns per backend: the trained model, its per-epoch loss history,
    its per-epoch times in seconds and their sum."""
    for backend in backends:
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    torch.manual_seed(seed)
    reference = TorchRNNForecaster(cell, input_size=data.X_train.shape[-1], hidden_size=hidden, backend="torch")
    init_state = {k: v.clone() for k, v in reference.state_dict().items()}
    trainers = {}
    for backend in backends:
        model = TorchRNNForecaster(cell, input_size=data.X_train.shape[-1], hidden_size=hidden, backend=backend)
        model.load_state_dict(init_state)
        trainers[backend] = Trainer(model.to(device), data.X_train, data.y_train, batch_size=batch_size, seed=seed)
    for trainer in trainers.values():
        trainer.warm_up(warmup_steps)
    history = {b: [] for b in backends}
    times = {b: [] for b in backends}
    for epoch in range(1, epochs + 1):
        for backend, trainer in trainers.items():
            start = time.perf_counter()
            loss = trainer.epoch()
            _sync(trainer.X.device)
            times[backend].append(time.perf_counter() - start)
            history[backend].append(loss)
            if on_epoch is not None:
                on_epoch(backend, epoch, loss)
    return {
        b: {"model": trainers[b].model, "history": np.asarray(history[b]), "epoch_seconds": np.asarray(times[b]),
            "seconds": float(sum(times[b]))}
        for b in backends
    }


def speed_ratio(numerator: np.ndarray, denominator: np.ndarray) -> dict:
    """Per-epoch time ratios numerator / denominator of two backends trained alternately (epoch k of one against
    epoch k of the other): their median and interquartile range, and the number of epoch pairs."""
    r = np.asarray(numerator, dtype=float) / np.asarray(denominator, dtype=float)
    q25, q50, q75 = np.percentile(r, [25, 50, 75])
    return {"median": float(q50), "q25": float(q25), "q75": float(q75), "pairs": int(len(r))}

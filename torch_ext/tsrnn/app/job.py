"""The main job: the seed notebook's forecasting workflow on tsrnn and torch.nn side by side, one report.

Steps: load the series (the notebook's toy series or a CSV column) -> 70/30 time split, scale, windows ->
for each cell, train the same initial model on each backend with the same batches -> test MSE/MAE in original
units, a recursive rollout from the first test window, gate activations from the kernel's saved activations ->
``metrics.json`` and a self-contained ``report.html`` in the output folder, and a table on the terminal.
"""

from __future__ import annotations

import csv
import json
import math
import os
import sys
from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from ..convert import convert
from .forecast import BACKENDS, ForecastData, compare_backends, make_toy_series, split_and_scale

GATE_NAMES = {"lstm": ("i", "f", "o", "g", "c"), "gru": ("z", "r", "candidate")}


@dataclass
class JobConfig:
    epochs: int = 40
    hidden: int = 32
    seq_len: int = 60
    cells: tuple = ("lstm", "gru")
    backends: tuple = BACKENDS
    csv: str | None = None
    column: str | None = None
    out: str = "report"
    seed: int = 42
    rollout_steps: int = 200
    extra: dict = field(default_factory=dict)


class DataError(ValueError):
    """The user's series cannot be used; the message says why and where."""


def read_csv_column(path: str, column: str) -> np.ndarray:
    """One numeric column of a CSV file with a header row, as float64. Every problem is a DataError naming the
    file, the column and, for a bad value, its line."""
    if not os.path.isfile(path):
        raise DataError(f"--csv {path!r}: no such file")
    try:
        with open(path, newline="") as f:
            reader = csv.reader(f)
            header = next(reader, None)
            if not header:
                raise DataError(f"--csv {path!r}: the file is empty (expected a header row naming the columns)")
            header = [h.strip() for h in header]
            if column not in header:
                raise DataError(f"--csv {path!r}: no column {column!r}; the columns are {header}")
            k = header.index(column)
            values = []
            for line, row in enumerate(reader, start=2):
                if not row or all(not cell.strip() for cell in row):
                    continue  # blank line
                cell = row[k].strip() if k < len(row) else ""
                if cell == "":
                    raise DataError(f"--csv {path!r}, line {line}: column {column!r} is empty (missing value)")
                try:
                    value = float(cell)
                except ValueError:
                    raise DataError(f"--csv {path!r}, line {line}: column {column!r} holds {cell!r}, "
                                    "which is not a number") from None
                if not math.isfinite(value):
                    raise DataError(f"--csv {path!r}, line {line}: column {column!r} holds {cell!r}; "
                                    "NaN and infinite values are not allowed")
                values.append(value)
    except UnicodeDecodeError as e:
        raise DataError(f"--csv {path!r}: not a text CSV file ({e.reason})") from None
    except csv.Error as e:
        raise DataError(f"--csv {path!r}: malformed CSV ({e})") from None
    return np.asarray(values, dtype=float)


def load_data(cfg: JobConfig) -> tuple[ForecastData, str]:
    if cfg.csv is None:
        if cfg.column is not None:
            raise DataError("--column needs --csv")
        t, y = make_toy_series(n=900, noise=0.18, seed=cfg.seed)
        source = f"the notebook's toy series (n=900, noise 0.18, seed {cfg.seed})"
    else:
        if cfg.column is None:
            raise DataError("--csv needs --column NAME (the column holding the series)")
        y = read_csv_column(cfg.csv, cfg.column)
        need = math.ceil((cfg.seq_len + 2) / 0.7) + 1
        if len(y) < need:
            raise DataError(f"--csv {cfg.csv!r}: column {cfg.column!r} has {len(y)} values; windows of "
                            f"{cfg.seq_len} with a 70/30 split need at least {need}")
        if np.ptp(y[: int(0.7 * len(y))]) == 0:
            raise DataError(f"--csv {cfg.csv!r}: column {cfg.column!r} is constant over the training part; "
                            "there is nothing to learn and it cannot be scaled")
        t = np.arange(len(y), dtype=float)
        source = f"{cfg.csv} column {cfg.column!r} (n={len(y)})"
    try:
        return split_and_scale(t, y, seq_len=cfg.seq_len), source
    except ValueError as e:
        raise DataError(str(e)) from None


def predict(model, X: np.ndarray) -> np.ndarray:
    model.eval()
    with torch.no_grad():
        return model(torch.tensor(X, dtype=torch.float32)).numpy()[:, 0].astype(float)


def rollout(model, window: np.ndarray, steps: int) -> np.ndarray:
    """Recursive forecast: feed each prediction back as the newest value of the window (scaled units)."""
    model.eval()
    window = torch.tensor(window, dtype=torch.float32).reshape(1, -1, 1)
    preds = []
    with torch.no_grad():
        for _ in range(steps):
            y_hat = model(window)  # (1, 1)
            preds.append(float(y_hat))
            window = torch.cat([window[:, 1:], y_hat.reshape(1, 1, 1)], dim=1)
    return np.asarray(preds)


def gate_maps(model, x_one: np.ndarray) -> dict:
    """Gate activations for one window, read from the kernel's saved activations (not recomputed): a dict of
    name -> (H, T) array. A torch-backend model is converted to tsrnn (same weights) to read them."""
    rnn = model.rnn if model.backend == "tsrnn" else convert(model.rnn)
    rnn.eval()
    with torch.no_grad():
        *_, (saved,) = rnn(torch.tensor(x_one, dtype=torch.float32).reshape(1, -1, 1), return_gates=True)
    H = rnn.hidden_size
    s = saved[:, 0, :].numpy().T  # (S, T)
    if model.rnn_type == "lstm":  # [i f g o | c | h]
        parts = {"i": s[0:H], "f": s[H:2 * H], "g": s[2 * H:3 * H], "o": s[3 * H:4 * H], "c": s[4 * H:5 * H]}
    else:  # [r z n | hn | h]
        parts = {"r": s[0:H], "z": s[H:2 * H], "candidate": s[2 * H:3 * H]}
    return {name: parts[name] for name in GATE_NAMES[model.rnn_type]}


class _Progress:
    """A one-line progress bar on a terminal; a line every 10 epochs otherwise (logs, CI)."""

    def __init__(self, epochs: int, stream=sys.stderr):
        self.epochs, self.stream = epochs, stream
        self.tty = hasattr(stream, "isatty") and stream.isatty()

    def __call__(self, label: str, epoch: int, loss: float) -> None:
        if self.tty:
            done = int(30 * epoch / self.epochs)
            end = "\n" if epoch == self.epochs else ""
            self.stream.write(f"\r{label:<12} [{'#' * done}{'.' * (30 - done)}] epoch {epoch:>3}/{self.epochs} "
                              f"loss {loss:.6f}{end}")
            self.stream.flush()
        elif epoch == 1 or epoch % 10 == 0 or epoch == self.epochs:
            print(f"{label:<12} epoch {epoch:>3}/{self.epochs} loss {loss:.6f}", file=self.stream, flush=True)


def run_job(cfg: JobConfig, log=print) -> dict:
    data, source = load_data(cfg)
    log(f"data: {source}; train windows {data.X_train.shape}, test windows {data.X_test.shape}; "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    progress = _Progress(cfg.epochs)
    y_true_test = data.unscale(data.y_test[:, 0])
    steps = min(cfg.rollout_steps, len(data.y) - data.split_t)
    seed_window = (data.y[data.split_t - cfg.seq_len:data.split_t] - data.mean) / data.std
    runs, gates, results = {}, {}, []
    for cell in cfg.cells:
        trained = compare_backends(
            data, cell, hidden=cfg.hidden, epochs=cfg.epochs, seed=cfg.seed, backends=cfg.backends,
            on_epoch=lambda b, e, loss, c=cell: progress(f"{c}/{b}", e, loss),
        )
        for backend, run in trained.items():
            pred = data.unscale(predict(run["model"], data.X_test))
            roll = data.unscale(rollout(run["model"], seed_window, steps))
            runs[(cell, backend)] = {"history": run["history"], "pred": pred, "rollout": roll}
            results.append({
                "cell": cell, "backend": backend,
                "test_mse": float(np.mean((pred - y_true_test) ** 2)),
                "test_mae": float(np.mean(np.abs(pred - y_true_test))),
                "rollout_mae": float(np.mean(np.abs(roll - data.y[data.split_t:data.split_t + steps]))),
                "final_loss": float(run["history"][-1]),
                "train_seconds": run["seconds"],
            })
        first = "tsrnn" if "tsrnn" in trained else cfg.backends[0]
        gates[cell] = gate_maps(trained[first]["model"], data.X_test[0])
    comparisons = []
    if set(BACKENDS) <= set(cfg.backends):
        for cell in cfg.cells:
            a, b = runs[(cell, "tsrnn")]["history"], runs[(cell, "torch")]["history"]
            rel = np.abs(a - b) / np.maximum(np.abs(b), 1e-12)
            t_ts = next(r["train_seconds"] for r in results if r["cell"] == cell and r["backend"] == "tsrnn")
            t_nn = next(r["train_seconds"] for r in results if r["cell"] == cell and r["backend"] == "torch")
            comparisons.append({"cell": cell, "max_rel_loss_diff": float(rel.max()),
                                "worst_epoch": int(rel.argmax()) + 1, "speedup": t_nn / t_ts})
    metrics = {
        "config": {k: v for k, v in asdict(cfg).items() if k != "extra"},
        "source": source,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "results": results,
        "backend_comparison": comparisons,
        "loss_history": {f"{c}/{b}": r["history"].tolist() for (c, b), r in runs.items()},
    }
    os.makedirs(cfg.out, exist_ok=True)
    with open(os.path.join(cfg.out, "metrics.json"), "w") as f:
        json.dump(metrics, f, indent=1)
    from .report import write_report

    write_report(os.path.join(cfg.out, "report.html"), cfg, data, runs, gates, metrics, steps)
    log("")
    log(format_table(metrics))
    log(f"\nwrote {os.path.join(cfg.out, 'report.html')} and {os.path.join(cfg.out, 'metrics.json')}")
    return metrics


def format_table(metrics: dict) -> str:
    lines = [f"{'cell':<5} {'backend':<7} {'test MSE':>9} {'test MAE':>9} {'rollout MAE':>11} {'final loss':>10} "
             f"{'train s':>8}"]
    for r in metrics["results"]:
        lines.append(f"{r['cell']:<5} {r['backend']:<7} {r['test_mse']:>9.4f} {r['test_mae']:>9.4f} "
                     f"{r['rollout_mae']:>11.4f} {r['final_loss']:>10.6f} {r['train_seconds']:>8.2f}")
    for c in metrics["backend_comparison"]:
        lines.append(f"{c['cell']}: largest per-epoch relative loss difference tsrnn vs torch "
                     f"{c['max_rel_loss_diff']:.2e} (epoch {c['worst_epoch']}); "
                     f"training speed torch/tsrnn {c['speedup']:.2f}x")
    return "\n".join(lines)

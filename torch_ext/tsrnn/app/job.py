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
from .forecast import BACKENDS, ForecastData, compare_backends, make_toy_series, speed_ratio, split_and_scale

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
    device: str = "cpu"
    warmup_steps: int = 3
    progress: bool | None = None  # None: a progress bar only when stderr is a terminal
    extra: dict = field(default_factory=dict)


class JobError(ValueError):
    """The job cannot run as asked; the message names the option or input at fault."""


class DataError(JobError):
    """The user's series cannot be used; the message says why and where."""


def check_device(device: str) -> torch.device:
    """The torch.device for ``--device``, or a JobError saying why this machine cannot train there."""
    if device == "cpu":
        return torch.device("cpu")
    if device != "cuda":
        raise JobError(f"--device must be cpu or cuda, got {device!r}")
    if torch.version.cuda is None:
        raise JobError(f"--device cuda: this torch ({torch.__version__}) is built without CUDA; install a CUDA "
                       "build of torch, or use --device cpu")
    if not torch.cuda.is_available():
        raise JobError(f"--device cuda: torch {torch.__version__} (CUDA {torch.version.cuda}) sees no GPU "
                       "(torch.cuda.is_available() is False); check the driver and CUDA_VISIBLE_DEVICES, or use "
                       "--device cpu")
    for op in ("tsrnn::lstm", "tsrnn::gru"):
        if not torch._C._dispatch_has_kernel_for_dispatch_key(op, "CUDA"):
            raise JobError(f"--device cuda: this tsrnn build has no CUDA kernel for {op} (built without the CUDA "
                           "Toolkit); rebuild with nvcc on the PATH, or use --device cpu")
    return torch.device("cuda")


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


def _device(model) -> torch.device:
    return next(model.parameters()).device


def predict(model, X: np.ndarray) -> np.ndarray:
    model.eval()
    with torch.no_grad():
        return model(torch.tensor(X, dtype=torch.float32, device=_device(model))).cpu().numpy()[:, 0].astype(float)


def rollout(model, window: np.ndarray, steps: int) -> np.ndarray:
    """Recursive forecast: feed each prediction back as the newest value of the window (scaled units)."""
    model.eval()
    window = torch.tensor(window, dtype=torch.float32, device=_device(model)).reshape(1, -1, 1)
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
        x = torch.tensor(x_one, dtype=torch.float32, device=_device(model)).reshape(1, -1, 1)
        *_, (saved,) = rnn(x, return_gates=True)
    H = rnn.hidden_size
    s = saved[:, 0, :].cpu().numpy().T  # (S, T)
    if model.rnn_type == "lstm":  # [i f g o | c | h]
        parts = {"i": s[0:H], "f": s[H:2 * H], "g": s[2 * H:3 * H], "o": s[3 * H:4 * H], "c": s[4 * H:5 * H]}
    else:  # [r z n | hn | h]
        parts = {"r": s[0:H], "z": s[H:2 * H], "candidate": s[2 * H:3 * H]}
    return {name: parts[name] for name in GATE_NAMES[model.rnn_type]}


class _Progress:
    """One tqdm bar per training run (cell/backend): epoch, loss, elapsed. Off when ``enabled`` is False; with None,
    tqdm's own rule: on only when the stream is a terminal, so logs and CI get none."""

    def __init__(self, epochs: int, enabled: bool | None, stream=None):
        self.epochs, self.enabled, self.stream = epochs, enabled, stream if stream is not None else sys.stderr
        self.bars = {}

    def __call__(self, label: str, epoch: int, loss: float) -> None:
        from tqdm.auto import tqdm

        bar = self.bars.get(label)
        if bar is None:
            bar = self.bars[label] = tqdm(total=self.epochs, desc=f"{label:<11}", unit="epoch", file=self.stream,
                                          position=len(self.bars), leave=True, dynamic_ncols=True,
                                          disable=None if self.enabled is None else not self.enabled,
                                          bar_format="{desc} {bar} {n_fmt}/{total_fmt} epochs [{elapsed}] {postfix}")
        bar.set_postfix_str(f"loss {loss:.6f}", refresh=False)
        bar.update(1)

    def close(self) -> None:
        for bar in self.bars.values():
            bar.close()
        self.bars = {}


def run_job(cfg: JobConfig, log=print) -> dict:
    device = check_device(cfg.device)
    if cfg.warmup_steps < 0:
        raise JobError(f"--warmup-steps must be 0 or more, got {cfg.warmup_steps}")
    data, source = load_data(cfg)
    from .bench import machine_info, tf32

    machine = machine_info(str(device), peak=False)
    threads = (f"GPU {machine['gpu']}" if device.type == "cuda"
               else f"{machine['processor']}, {machine['cores']} cores, {torch.get_num_threads()} threads")
    log(f"data: {source}; train windows {data.X_train.shape}, test windows {data.X_test.shape}; "
        f"torch {torch.__version__}, {threads}")
    y_true_test = data.unscale(data.y_test[:, 0])
    steps = min(cfg.rollout_steps, len(data.y) - data.split_t)
    seed_window = (data.y[data.split_t - cfg.seq_len:data.split_t] - data.mean) / data.std
    runs, gates, results = {}, {}, []
    # On a GPU both backends train in full fp32: cuDNN's default TF32 would make nn.* the less accurate one and
    # its loss curve differ from tsrnn's by more than rounding.
    with tf32(False if device.type == "cuda" else None):
        for cell in cfg.cells:
            progress = _Progress(cfg.epochs, cfg.progress)
            try:
                trained = compare_backends(
                    data, cell, hidden=cfg.hidden, epochs=cfg.epochs, seed=cfg.seed, backends=cfg.backends,
                    device=device, warmup_steps=cfg.warmup_steps,
                    on_epoch=lambda b, e, loss, c=cell: progress(f"{c}/{b}", e, loss),
                )
            finally:
                progress.close()
            for backend, run in trained.items():
                pred = data.unscale(predict(run["model"], data.X_test))
                roll = data.unscale(rollout(run["model"], seed_window, steps))
                runs[(cell, backend)] = {"history": run["history"], "epoch_seconds": run["epoch_seconds"],
                                         "pred": pred, "rollout": roll}
                results.append({
                    "cell": cell, "backend": backend,
                    "test_mse": float(np.mean((pred - y_true_test) ** 2)),
                    "test_mae": float(np.mean(np.abs(pred - y_true_test))),
                    "rollout_mae": float(np.mean(np.abs(roll - data.y[data.split_t:data.split_t + steps]))),
                    "final_loss": float(run["history"][-1]),
                    "train_seconds": run["seconds"],
                    "median_epoch_seconds": float(np.median(run["epoch_seconds"])),
                })
            first = "tsrnn" if "tsrnn" in trained else cfg.backends[0]
            gates[cell] = gate_maps(trained[first]["model"], data.X_test[0])
    comparisons = []
    if set(BACKENDS) <= set(cfg.backends):
        for cell in cfg.cells:
            ts, nn_ = runs[(cell, "tsrnn")], runs[(cell, "torch")]
            rel = np.abs(ts["history"] - nn_["history"]) / np.maximum(np.abs(nn_["history"]), 1e-12)
            ratio = speed_ratio(nn_["epoch_seconds"], ts["epoch_seconds"])
            comparisons.append({"cell": cell, "max_rel_loss_diff": float(rel.max()),
                                "worst_epoch": int(rel.argmax()) + 1, "speedup": ratio["median"],
                                "speedup_q25": ratio["q25"], "speedup_q75": ratio["q75"],
                                "epoch_pairs": ratio["pairs"]})
    metrics = {
        "config": {k: v for k, v in asdict(cfg).items() if k not in ("extra", "progress")},
        "source": source,
        "torch": torch.__version__,
        "device": threads,
        "machine": machine,
        "threads": torch.get_num_threads(),
        "timing": (f"each backend warmed up with {cfg.warmup_steps} optimizer steps on a copy, then the backends "
                   f"trained alternately one epoch each ({' '.join(cfg.backends)} ...); speedup = median over epochs "
                   "of torch's epoch time / tsrnn's epoch time, with the interquartile range"),
        "results": results,
        "backend_comparison": comparisons,
        "loss_history": {f"{c}/{b}": r["history"].tolist() for (c, b), r in runs.items()},
        "epoch_seconds": {f"{c}/{b}": r["epoch_seconds"].tolist() for (c, b), r in runs.items()},
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
             f"{'ms/epoch':>9} {'train s':>8}"]
    for r in metrics["results"]:
        lines.append(f"{r['cell']:<5} {r['backend']:<7} {r['test_mse']:>9.4f} {r['test_mae']:>9.4f} "
                     f"{r['rollout_mae']:>11.4f} {r['final_loss']:>10.6f} {1e3 * r['median_epoch_seconds']:>9.1f} "
                     f"{r['train_seconds']:>8.2f}")
    lines.append("(ms/epoch: the median epoch; train s: all timed epochs, warm-up excluded)")
    for c in metrics["backend_comparison"]:
        lines.append(f"{c['cell']}: largest per-epoch relative loss difference tsrnn vs torch "
                     f"{c['max_rel_loss_diff']:.2e} (epoch {c['worst_epoch']}); training speed torch/tsrnn "
                     f"{speed_text(c)}")
    return "\n".join(lines)


def speed_text(c: dict) -> str:
    """'1.71x (IQR 1.65-1.78x over 40 alternating epoch pairs)' from a backend_comparison entry."""
    return (f"{c['speedup']:.2f}x (median; IQR {c['speedup_q25']:.2f}-{c['speedup_q75']:.2f}x over "
            f"{c['epoch_pairs']} alternating epoch pairs)")

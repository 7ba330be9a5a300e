"""The main job end to end: report and metrics written, backends agree, CSV input, every bad CSV refused."""

import json
import os

import numpy as np
import pytest

from tsrnn.__main__ import main
from tsrnn.app.job import JobConfig, run_job


def test_job_end_to_end(tmp_path, capsys):
    out = tmp_path / "report"
    assert main(["forecast", "--epochs", "2", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "test MSE" in printed and "largest per-epoch relative loss difference" in printed
    html = (out / "report.html").read_text()
    assert html.startswith("<!DOCTYPE html>") and "plotly" in html.lower()
    for title in ("Series and the train", "Training loss", "One-step-ahead", "Recursive rollout", "Time per epoch",
                  "activations for the first test window"):
        assert title in html, f"report lacks the figure {title!r}"
    assert "src=\"http" not in html, "the report must be self-contained (no external scripts)"
    metrics = json.loads((out / "metrics.json").read_text())
    assert {(r["cell"], r["backend"]) for r in metrics["results"]} == {
        ("lstm", "tsrnn"), ("lstm", "torch"), ("gru", "tsrnn"), ("gru", "torch")}
    for r in metrics["results"]:
        assert np.isfinite([r["test_mse"], r["test_mae"], r["rollout_mae"]]).all()
    for c in metrics["backend_comparison"]:
        assert c["max_rel_loss_diff"] < 1e-4, c
    hist = metrics["loss_history"]
    for cell in ("lstm", "gru"):
        a, b = np.array(hist[f"{cell}/tsrnn"]), np.array(hist[f"{cell}/torch"])
        assert len(a) == 2 and (np.abs(a - b) / np.abs(b)).max() < 1e-4


def test_gates_come_from_the_kernel(tmp_path):
    from tsrnn.app import TorchRNNForecaster
    from tsrnn.app.job import gate_maps

    model = TorchRNNForecaster("lstm", hidden_size=4)
    maps = gate_maps(model, np.random.default_rng(0).normal(size=(60, 1)))
    assert list(maps) == ["i", "f", "o", "g", "c"]
    assert all(m.shape == (4, 60) for m in maps.values())
    assert all(((m > 0) & (m < 1)).all() for k, m in maps.items() if k in "ifo")
    gru = TorchRNNForecaster("gru", hidden_size=3, backend="torch")  # converted to read the kernel's gates
    assert list(gate_maps(gru, np.zeros((10, 1)))) == ["z", "r", "candidate"]


def _write_csv(path, rows):
    path.write_text("\n".join(rows) + "\n")
    return str(path)


def test_csv_input_single_backend(tmp_path):
    t = np.arange(300)
    values = np.sin(t / 7.0) + 0.01 * t
    path = _write_csv(tmp_path / "s.csv", ["time,load"] + [f"{i},{v:.6f}" for i, v in zip(t, values)])
    cfg = JobConfig(epochs=1, hidden=8, seq_len=20, cells=("gru",), backends=("tsrnn",), csv=path, column="load",
                    out=str(tmp_path / "out"))
    metrics = run_job(cfg, log=lambda *a: None)
    assert metrics["source"].startswith(path) and len(metrics["results"]) == 1
    assert metrics["backend_comparison"] == []
    assert os.path.isfile(tmp_path / "out" / "report.html")


BAD_CSVS = {
    "missing_column": (["time,value", "0,1.0"] * 1, "no column 'load'"),
    "non_numeric": (["load"] + ["1.0"] * 50 + ["abc"] + ["2.0"] * 100, "line 52.*not a number"),
    "nan": (["load"] + ["1.0", "2.0"] * 40 + ["nan"] + ["2.0"] * 100, "NaN"),
    "empty_cell": (["a,load"] + ["1,2.0"] * 60 + ["1,"] + ["1,2.0"] * 60, "missing value"),
    "too_short": (["load"] + [str(float(i)) for i in range(30)], "at least"),
    "constant": (["load"] + ["3.0"] * 200, "constant"),
    "empty_file": ([""], "empty"),
}


@pytest.mark.parametrize("case", sorted(BAD_CSVS))
def test_bad_csv_is_refused_with_a_clear_message(tmp_path, capsys, case):
    rows, message = BAD_CSVS[case]
    path = _write_csv(tmp_path / "bad.csv", rows)
    assert main(["forecast", "--epochs", "1", "--csv", path, "--column", "load", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and __import__("re").search(message, err), err
    assert not os.path.exists(tmp_path / "o"), "nothing may be written for a refused input"


def test_missing_file_and_column_flags(tmp_path, capsys):
    assert main(["forecast", "--csv", str(tmp_path / "nope.csv"), "--column", "x"]) == 2
    assert "no such file" in capsys.readouterr().err
    assert main(["forecast", "--csv", str(tmp_path / "nope.csv")]) == 2
    assert "--column" in capsys.readouterr().err
    assert main(["forecast", "--column", "x"]) == 2
    assert "--csv" in capsys.readouterr().err


def test_speed_ratio_does_not_depend_on_the_backend_order(tmp_path):
    """Warm-up plus alternating epochs: the median torch/tsrnn epoch-time ratio is the same (within 15%) whichever
    backend --backends names first. Both orders run in this one process and only their ratios are compared."""
    from tsrnn.app.forecast import compare_backends, speed_ratio
    from tsrnn.app.job import JobConfig, load_data

    data, _ = load_data(JobConfig())
    for cell in ("lstm", "gru"):
        ratios = {}
        for order in (("tsrnn", "torch"), ("torch", "tsrnn")):
            runs = compare_backends(data, cell, hidden=32, epochs=8, seed=42, backends=order)
            assert [len(runs[b]["epoch_seconds"]) for b in order] == [8, 8]
            ratios[order] = speed_ratio(runs["torch"]["epoch_seconds"], runs["tsrnn"]["epoch_seconds"])["median"]
        a, b = ratios.values()
        assert abs(a / b - 1) <= 0.15, f"{cell}: torch/tsrnn {a:.2f}x with tsrnn first, {b:.2f}x with torch first"


def test_metrics_keep_every_epoch_time(tmp_path):
    metrics = run_job(JobConfig(epochs=3, cells=("gru",), out=str(tmp_path / "o"), warmup_steps=1),
                      log=lambda *a: None)
    saved = json.loads((tmp_path / "o" / "metrics.json").read_text())
    for key in ("gru/tsrnn", "gru/torch"):
        times = saved["epoch_seconds"][key]
        assert len(times) == 3 and all(t > 0 for t in times)
    (c,) = saved["backend_comparison"]
    assert c["epoch_pairs"] == 3 and c["speedup_q25"] <= c["speedup"] <= c["speedup_q75"]
    per_pair = np.array(saved["epoch_seconds"]["gru/torch"]) / np.array(saved["epoch_seconds"]["gru/tsrnn"])
    assert c["speedup"] == pytest.approx(float(np.median(per_pair)))
    assert metrics["config"]["warmup_steps"] == 1 and "alternately" in saved["timing"]


def test_progress_bar_only_on_a_terminal(tmp_path, capsys):
    cfg = dict(epochs=2, hidden=8, cells=("lstm",), backends=("tsrnn",), out=str(tmp_path / "o"))
    run_job(JobConfig(**cfg), log=lambda *a: None)  # stderr is captured here: not a terminal
    assert capsys.readouterr().err == ""
    run_job(JobConfig(**cfg, progress=True), log=lambda *a: None)
    err = capsys.readouterr().err
    assert "lstm/tsrnn" in err and "2/2 epochs" in err and "loss " in err, err


def test_warm_up_leaves_the_model_untouched():
    import torch

    from tsrnn.app import TorchRNNForecaster
    from tsrnn.app.forecast import Trainer

    model = TorchRNNForecaster("lstm", hidden_size=8)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    rng = np.random.default_rng(0)
    trainer = Trainer(model, rng.normal(size=(70, 12, 1)), rng.normal(size=(70, 1)), batch_size=32)
    trainer.warm_up(3)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert not trainer.opt.state, "the warm-up must not touch the trainer's optimizer"
    assert all(p.grad is None for p in model.parameters())


def test_device_cuda(tmp_path, capsys, monkeypatch):
    import torch

    out = tmp_path / "o"
    if torch.cuda.is_available():
        assert main(["forecast", "--device", "cuda", "--epochs", "2", "--out", str(out)]) == 0
        metrics = json.loads((out / "metrics.json").read_text())
        assert metrics["device"].startswith("GPU") and len(metrics["results"]) == 4
        assert all(c["max_rel_loss_diff"] < 1e-3 for c in metrics["backend_comparison"])
        return
    assert main(["forecast", "--device", "cuda", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --device cuda: ") and "--device cpu" in err, err
    assert not out.exists()
    # a CUDA build of torch that sees no GPU
    monkeypatch.setattr(torch.version, "cuda", "13.0")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert main(["forecast", "--device", "cuda", "--out", str(out)]) == 2
    assert "sees no GPU" in capsys.readouterr().err and not out.exists()


@pytest.mark.parametrize("args, option", [
    (["--device", "gpu"], "--device"), (["--warmup-steps", "-1"], "--warmup-steps"),
    (["--warmup-steps", "two"], "--warmup-steps"), (["--epochs", "0"], "--epochs"), (["--seq-len", "x"], "--seq-len"),
])
def test_bad_option_values_name_the_option(tmp_path, capsys, args, option):
    with pytest.raises(SystemExit) as e:
        main(["forecast", *args, "--out", str(tmp_path / "o")])
    assert e.value.code == 2
    assert f"argument {option}" in capsys.readouterr().err
    assert not os.path.exists(tmp_path / "o")

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
    for title in ("Series and the train", "Training loss", "One-step-ahead", "Recursive rollout", "gate activations"):
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

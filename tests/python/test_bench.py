"""The benchmark harness: validates before timing, writes JSON, chart and the README table."""

import json

import pytest
import torch

from tsrnn.app import bench
from tsrnn.__main__ import main


def test_bench_small_grid_writes_json_chart_and_table(tmp_path, capsys, monkeypatch):
    # blocks of 50 ms: every call of these tiny points is far shorter, even on a loaded machine
    monkeypatch.setattr(bench, "MIN_SAMPLE_SECONDS", 0.05)
    out, chart = tmp_path / "b.json", tmp_path / "b.svg"
    assert main(["bench", "--H", "8", "--B", "2", "--T", "5", "--reps", "2", "--out", str(out),
                 "--chart", str(chart)]) == 0
    doc = json.loads(out.read_text())
    assert {"date", "torch", "threads", "processor"} <= doc["machine"].keys()
    assert len(doc["results"]) == 4  # 2 cells x 2 modes
    for r in doc["results"]:
        assert r["max_rel_err"] < 1e-4 and r["tsrnn_ms"] > 0 and r["torch_ms"] > 0
        assert r["speedup"] == pytest.approx(r["torch_ms"] / r["tsrnn_ms"])
        # calls of a few microseconds are timed in blocks, the same block for both sides
        assert 1 < r["calls_per_sample"] <= bench.MAX_CALLS_PER_SAMPLE
    svg = chart.read_text()
    assert svg.startswith("<svg") and svg.count("<rect") >= 4 and len(svg) < 20_000  # small, static, one bar a point
    capsys.readouterr()
    again = tmp_path / "again.svg"
    assert main(["bench", "--table", str(out), "--chart", str(again)]) == 0
    table = capsys.readouterr().out
    assert "| lstm | forward | 2 | 5 | 8 | 8 |" in table and "python -m tsrnn bench --H 8" in table
    assert again.read_text() == svg  # the chart of a committed JSON, made again from it


def test_peak_probe_measures_the_cpu():
    """The probe is built with the op library; its peak is positive, fp64 at most fp32, and every result's
    percentage of it follows from its GFLOP/s."""
    assert bench.peak_binary() is not None, "peak_gflops was not built next to the op library"
    peak = bench.measure_peak(1)
    assert peak["threads"] == 1 and peak["vector_bits"] in (128, 256, 512)
    assert 0 < peak["fp64_gflops"] <= peak["fp32_gflops"] * 1.1
    r = {"tsrnn_gflops": peak["fp32_gflops"] / 4, "device": "cpu"}
    assert bench.percent_of_peak(r, {"peak": peak}) == pytest.approx(25.0)
    assert bench.percent_of_peak(r, {"peak": None}) is None


def test_calls_per_sample_makes_blocks_of_the_minimum_length():
    assert bench.calls_per_sample(2 * bench.MIN_SAMPLE_SECONDS) == 1
    assert bench.calls_per_sample(bench.MIN_SAMPLE_SECONDS) == 1
    assert bench.calls_per_sample(bench.MIN_SAMPLE_SECONDS / 10) == 10
    assert bench.calls_per_sample(bench.MIN_SAMPLE_SECONDS / 10.5) == 11  # never a block shorter than the minimum
    assert bench.calls_per_sample(1e-12) == bench.MAX_CALLS_PER_SAMPLE
    assert bench.calls_per_sample(0.0) == bench.MAX_CALLS_PER_SAMPLE


def test_timed_returns_seconds_per_call_of_the_block():
    calls = []
    per_call = bench._timed(lambda: calls.append(1), "cpu", number=7)
    assert len(calls) == 7 and per_call > 0


def test_grid_has_the_named_points_and_no_duplicates():
    points = bench.grid()
    assert len(points) == len(set(points))
    shapes = {(p.B, p.T, p.D, p.H) for p in points}
    for s in bench.NAMED:
        assert (s["B"], s["T"], s["D"], s["H"]) in shapes
    assert (256, 256, 1024, 1024) in shapes


def test_validation_refuses_a_wrong_kernel(monkeypatch):
    p = bench.Point("gru", "forward", B=2, T=4, D=3, H=5)
    ours, theirs = bench._modules(p)
    with torch.no_grad():
        ours.weight_hh_l0.mul_(1.01)  # a kernel that computes something slightly different
    with pytest.raises(AssertionError, match="relative error"):
        bench.validate(p, ours, theirs, torch.randn(2, 4, 3))


def test_bench_refuses_cuda_without_a_gpu(capsys):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU; the refusal is for machines without one")
    assert main(["bench", "--device", "cuda", "--H", "8", "--B", "1", "--T", "2"]) == 2
    assert "cuda" in capsys.readouterr().err


def test_a_failing_point_is_reported_and_the_run_goes_on(tmp_path, capsys, monkeypatch):
    """A point that fails validation (or raises in a kernel) lands in 'failed' with its message; the other points
    are still measured, and the command exits 1."""
    monkeypatch.setattr(bench, "MIN_SAMPLE_SECONDS", 0.005)
    real_validate = bench.validate

    def validate(p, ours, theirs, x):
        if p.cell == "gru":
            raise AssertionError(f"{p}: output differs from nn.*: relative error 3.0e-03")
        return real_validate(p, ours, theirs, x)

    monkeypatch.setattr(bench, "validate", validate)
    out = tmp_path / "b.json"
    assert main(["bench", "--H", "4", "--B", "1", "--T", "3", "--reps", "2", "--modes", "forward",
                 "--out", str(out)]) == 1
    doc = json.loads(out.read_text())
    assert [r["cell"] for r in doc["results"]] == ["lstm"]
    assert [(f["cell"], f["mode"]) for f in doc["failed"]] == [("gru", "forward")]
    assert "relative error 3.0e-03" in doc["failed"][0]["error"]
    assert "FAILED" in capsys.readouterr().out
    assert "failed:" in bench.markdown_table(doc)


def test_each_point_is_in_the_json_as_soon_as_it_is_measured(tmp_path, monkeypatch):
    out = tmp_path / "b.json"
    seen = []
    real_time_point = bench.time_point

    def time_point(p, **kw):
        seen.append([r["cell"] for r in json.loads(out.read_text())["results"]] if out.exists() else None)
        return real_time_point(p, **kw)

    monkeypatch.setattr(bench, "time_point", time_point)
    monkeypatch.setattr(bench, "MIN_SAMPLE_SECONDS", 0.005)
    points = [bench.Point(c, "forward", B=1, T=2, D=3, H=4) for c in ("lstm", "gru")]
    bench.run(points, reps=2, out=str(out), log=lambda *a: None)
    assert seen == [None, ["lstm"]]  # the first point was on disk before the second was timed
    assert not (tmp_path / "b.json.tmp").exists()


def test_tf32_switch_restores_the_flags():
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    with bench.tf32(False):
        assert not torch.backends.cudnn.allow_tf32 and not torch.backends.cuda.matmul.allow_tf32
        with bench.tf32(True):
            assert torch.backends.cudnn.allow_tf32 and torch.backends.cuda.matmul.allow_tf32
        assert not torch.backends.cudnn.allow_tf32
    with bench.tf32(None):
        assert (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32) == saved
    assert (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32) == saved


def test_cuda_named_points_are_the_gpu_targets():
    shapes = [(s["B"], s["T"], s["H"]) for s in bench.named_points("cuda")]
    assert shapes == [(64, 60, 32), (64, 256, 512), (64, 256, 1024)]
    assert bench.named_points("cpu") == bench.NAMED


def test_every_point_has_the_torch_mm_ceiling(monkeypatch):
    """torch.mm's rate on the point's step product (B x H) @ (H x G*H), measured in the same run."""
    monkeypatch.setattr(bench, "MIN_SAMPLE_SECONDS", 0.005)
    doc = bench.run([bench.Point("gru", "train", B=3, T=2, D=5, H=8)], reps=2, log=lambda *a: None)
    (r,) = doc["results"]
    assert r["mm_shape"] == "3x8 @ 8x24" and r["mm_gflops"] > 0
    assert r["mm_gflops"] == pytest.approx(2 * 3 * 8 * 24 / (r["mm_ms"] / 1e3) / 1e9)
    assert "torch.mm GFLOP/s" in bench.markdown_table(doc)


def _need_onnxruntime():
    """onnxruntime and onnx are test-only dependencies (scripts/setup.sh installs them); the package needs neither."""
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")


def test_onnxruntime_peer_is_validated_and_timed_interleaved(monkeypatch, capsys, tmp_path):
    _need_onnxruntime()
    monkeypatch.setattr(bench, "MIN_SAMPLE_SECONDS", 0.005)
    out = tmp_path / "p.json"
    assert main(["bench", "--H", "8", "--B", "1", "--T", "1,4", "--reps", "2", "--cells", "lstm",
                 "--peers", "onnxruntime", "--out", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert doc["peers"] == ["onnxruntime"]
    forward = [r for r in doc["results"] if r["mode"] == "forward"]
    train = [r for r in doc["results"] if r["mode"] == "train"]
    assert len(forward) == 2 and len(train) == 2
    for r in forward:
        assert r["ort_max_rel_err"] < 1e-4 and r["ort_ms"] > 0
        assert r["speedup_vs_ort"] == pytest.approx(r["ort_ms"] / r["tsrnn_ms"])
    assert not any("ort_ms" in r for r in train), "ONNX Runtime does not train: no train figure"
    table = bench.markdown_table(doc)
    assert "| ORT ms | vs ORT |" in table and "ONNX Runtime" in table


def test_onnxruntime_peer_that_disagrees_is_a_failed_point(monkeypatch):
    _need_onnxruntime()
    import numpy as np

    monkeypatch.setattr(bench, "MIN_SAMPLE_SECONDS", 0.005)
    real_call = bench.OrtPeer.__call__
    monkeypatch.setattr(bench.OrtPeer, "__call__", lambda self: real_call(self) + np.float32(0.01))
    doc = bench.run([bench.Point("gru", "forward", B=1, T=3, D=4, H=4)], reps=2, log=lambda *a: None,
                    peers=("onnxruntime",))
    assert doc["results"] == [] and "ONNX Runtime's output differs" in doc["failed"][0]["error"]


def test_peers_refused_clearly(monkeypatch, capsys):
    with pytest.raises(SystemExit) as e:
        main(["bench", "--peers", "tensorrt"])
    assert e.value.code == 2 and "argument --peers" in capsys.readouterr().err
    monkeypatch.setitem(__import__("sys").modules, "onnxruntime", None)  # as if not installed
    assert main(["bench", "--H", "4", "--B", "1", "--T", "2", "--peers", "onnxruntime"]) == 2
    err = capsys.readouterr().err
    assert "needs the onnxruntime package" in err and "tsrnn itself needs neither" in err


def test_table_of_the_named_points_only(tmp_path, capsys):
    row = dict(cell="lstm", mode="forward", device="cpu", tsrnn_ms=1.0, torch_ms=2.0, speedup=2.0, tsrnn_gflops=1.0,
               torch_gflops=0.5, tsrnn_pct_peak=None, mm_gflops=3.0)
    doc = {"command": "python -m tsrnn bench --grid", "machine": {"processor": "x", "cores": 2, "torch": "t",
           "threads": 2, "date": "2026-12-07"}, "failed": [],
           "results": [{**row, **bench.NAMED[1]}, {**row, "B": 64, "T": 60, "D": 256, "H": 256}]}
    path = tmp_path / "g.json"
    path.write_text(json.dumps(doc))
    assert main(["bench", "--table", str(path), "--named"]) == 0
    table = capsys.readouterr().out
    assert "| lstm | forward | 64 | 100 | 256 | 256 |" in table and "| 64 | 60 | 256 | 256 |" not in table
    assert main(["bench", "--table", str(path)]) == 0
    assert "| 64 | 60 | 256 | 256 |" in capsys.readouterr().out

"""The benchmark harness: validates before timing, writes JSON, chart and the README table."""

import json

import pytest
import torch

from tsrnn import bench
from tsrnn.__main__ import main


def test_bench_small_grid_writes_json_chart_and_table(tmp_path, capsys, monkeypatch):
    # blocks of 50 ms: every call of these tiny points is far shorter, even on a loaded machine
    monkeypatch.setattr(bench, "MIN_SAMPLE_SECONDS", 0.05)
    out, chart = tmp_path / "b.json", tmp_path / "b.html"
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
    assert "plotly" in chart.read_text().lower()
    capsys.readouterr()
    assert main(["bench", "--table", str(out)]) == 0
    table = capsys.readouterr().out
    assert "| lstm | forward | 2 | 5 | 8 | 8 |" in table and "python -m tsrnn bench --H 8" in table


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

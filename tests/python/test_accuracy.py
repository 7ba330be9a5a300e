"""Accuracy against an fp64 truth (tsrnn.app.accuracy): at long T and many rows T * B, every fp32 output and gradient
of tsrnn is at least about as accurate as nn.*'s, error <= 1.5 x nn.*'s + 1e-7 (max|fp32 - fp64| / max|fp64|).
The figures are deterministic, so this is a test, not a benchmark."""

import pytest

from tsrnn.app import accuracy

POINTS = [
    accuracy.AccuracyPoint(cell, T, B, D, H)
    for cell in ("lstm", "gru")
    for T, B, D, H in [(2000, 64, 1, 32), (100, 1024, 16, 64)]  # long T; many rows (128,000 and 102,400)
]


@pytest.mark.parametrize("p", POINTS, ids=lambda p: f"{p.cell}-T{p.T}-B{p.B}-D{p.D}-H{p.H}")
def test_at_least_as_accurate_as_nn(p):
    r = accuracy.measure(p)
    assert set(r["tensors"]) >= {"y", "h_n", "grad x", "grad h0", "grad weight_ih_l0", "grad weight_hh_l0",
                                 "grad bias_ih_l0", "grad bias_hh_l0"}
    assert not accuracy.within_bound(r), "\n".join(accuracy.within_bound(r))


def test_relative_error():
    import torch

    truth = torch.tensor([1.0, -4.0], dtype=torch.float64)
    assert accuracy.relative_error(torch.tensor([1.0, -4.0]), truth) == 0.0
    assert accuracy.relative_error(torch.tensor([1.5, -4.0]), truth) == pytest.approx(0.125)
    assert accuracy.relative_error(torch.zeros(2), torch.zeros(2, dtype=torch.float64)) == 0.0
    assert accuracy.relative_error(torch.ones(2), torch.zeros(2, dtype=torch.float64)) == float("inf")


def test_run_records_the_machine_and_makes_a_table():
    doc = accuracy.run([accuracy.AccuracyPoint("gru", 3, 2, 1, 4)], log=lambda *a: None, command="c")
    assert doc["kind"] == "accuracy" and doc["machine"]["processor"] and doc["machine"]["cores"] >= 1
    assert "peak" not in doc["machine"]  # no FMA probe for an accuracy run
    table = accuracy.markdown_table(doc)
    assert doc["machine"]["processor"] in table and "| gru | 3 | 2 | 1 | 4 | 6 | grad bias_ih_l0 |" in table

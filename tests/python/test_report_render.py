"""report.html as a user sees it: rendered by headless Chromium (scripts/setup.sh installs chromium-headless-shell),
with no JavaScript error, every figure drawn, gates on their fixed scales, labelled colour bars, no text overlapping
and no legend over the data."""

import pytest

from report_browser import check_report, find_browser
from tsrnn.app.job import JobConfig, run_job

pytestmark = pytest.mark.skipif(
    find_browser() is None,
    reason="no Chromium on this machine: scripts/setup.sh installs chromium-headless-shell with apt-get; "
    "without apt (or Debian's package) no browser can be installed here")

FIGURES = ("Series and the train", "Training loss", "Time per epoch", "One-step-ahead", "Recursive rollout",
           "LSTM: activations", "GRU: activations")
GATES = {"input gate i", "forget gate f", "output gate o", "update gate z", "reset gate r"}
TANH = {"candidate g (tanh)", "candidate n (tanh)"}


@pytest.fixture(scope="module")
def found(tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    run_job(JobConfig(epochs=2, out=str(out), warmup_steps=1), log=lambda *a: None)
    return check_report(str(out / "report.html"))


def test_no_javascript_error(found):
    assert found["errors"] == []


def test_every_figure_drew(found):
    plots = found["plots"]
    assert [next(t for t in FIGURES if p["title"].startswith(t)) for p in plots] == list(FIGURES)
    for p in plots:
        assert p["drawn"], p["title"]
        heatmaps = [t for t in p["traces"] if t["type"] == "heatmap"]
        if heatmaps:
            assert p["heatmaps_drawn"] == len(heatmaps) == p["colorbars_drawn"], p
        else:
            assert p["lines_drawn"] == len(p["traces"]) > 0, p


def test_heatmap_scales_and_colour_bars(found):
    heatmaps = [t for p in found["plots"] for t in p["traces"] if t["type"] == "heatmap"]
    assert len(heatmaps) == 8
    for t in heatmaps:
        assert t["colorbar"] == t["name"], t
        if t["name"] in GATES:
            assert (t["zmin"], t["zmax"]) == (0, 1), t
        elif t["name"] in TANH:
            assert (t["zmin"], t["zmax"]) == (-1, 1), t
        else:
            assert t["name"] == "cell state c" and t["zmin"] == -t["zmax"] > -10, t


def test_no_overlapping_text_and_legends_clear_of_data(found):
    for p in found["plots"]:
        assert p["overlaps"] == [], p["title"]
        assert not p["legend_covers_data"], p["title"]


def test_the_checker_sees_errors_and_undrawn_plots(tmp_path):
    """The probe itself can fail: a thrown error, a console.error and a plot div Plotly never drew are reported."""
    page = tmp_path / "bad.html"
    page.write_text('<!DOCTYPE html><html><head><meta charset="utf-8"></head><body>'
                    '<div class="plotly-graph-div"></div>'
                    '<script>console.error("boom"); throw new Error("broken figure");</script></body></html>')
    found = check_report(str(page))
    assert any("broken figure" in e for e in found["errors"]) and any("boom" in e for e in found["errors"])
    assert [p["drawn"] for p in found["plots"]] == [False]

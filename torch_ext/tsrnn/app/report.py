"""The job's report: one self-contained HTML file (Plotly's JavaScript inlined once) with the figures and tables."""

from __future__ import annotations

import html

import numpy as np


# Per panel: colour bar title, value range (None: symmetric about 0 at the panel's largest |value|), colour scale.
_SIGMOID = (0.0, 1.0)
_TANH = (-1.0, 1.0)
_PANELS = {
    "i": ("input gate i", _SIGMOID, "Viridis"),
    "f": ("forget gate f", _SIGMOID, "Viridis"),
    "o": ("output gate o", _SIGMOID, "Viridis"),
    "g": ("candidate g (tanh)", _TANH, "RdBu_r"),
    "c": ("cell state c", None, "RdBu_r"),
    "z": ("update gate z", _SIGMOID, "Viridis"),
    "r": ("reset gate r", _SIGMOID, "Viridis"),
    "candidate": ("candidate n (tanh)", _TANH, "RdBu_r"),
}
# Legends sit to the right of the plotting area, outside it, so they never cover a curve.
_LEGEND = dict(orientation="v", x=1.02, xanchor="left", y=1, yanchor="top")


def _line_chart(title: str, xaxis: str, yaxis: str):
    import plotly.graph_objects as go

    fig = go.Figure()
    fig.update_layout(title=title, xaxis_title=xaxis, yaxis_title=yaxis, legend=_LEGEND, margin=dict(t=60, r=20))
    # a gap between the axes' tick labels, so the first x label and the lowest y label never touch at the corner
    fig.update_xaxes(ticklabelstandoff=4)
    fig.update_yaxes(ticklabelstandoff=4)
    return fig


def _gate_figure(cell: str, maps: dict):
    """One heatmap per gate, each with its own labelled colour bar on its own scale: gates on [0, 1], tanh
    candidates on [-1, 1], the cell state symmetric about 0."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    names = list(maps)
    cols = min(3, len(names))
    rows = (len(names) + cols - 1) // cols
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=[_PANELS[n][0] for n in names],
                        horizontal_spacing=0.13, vertical_spacing=0.16 if rows > 1 else 0.1)
    for k, name in enumerate(names):
        label, zrange, scale = _PANELS[name]
        z = maps[name]
        if zrange is None:
            m = float(np.abs(z).max()) or 1.0
            zrange = (-m, m)
        row, col = k // cols + 1, k % cols + 1
        sub = fig.get_subplot(row, col)
        (x0, x1), (y0, y1) = sub.xaxis.domain, sub.yaxis.domain
        fig.add_trace(go.Heatmap(
            z=z, zmin=zrange[0], zmax=zrange[1], colorscale=scale, name=label,
            colorbar=dict(title=dict(text=label, side="right", font=dict(size=11)), x=x1 + 0.005, xanchor="left",
                          y=(y0 + y1) / 2, len=y1 - y0, thickness=10, tickfont=dict(size=10)),
            hovertemplate="step %{x}, unit %{y}: %{z:.3f}<extra>" + label + "</extra>",
        ), row=row, col=col)
        fig.update_xaxes(title_text="time step", title_standoff=4, row=row, col=col)
        fig.update_yaxes(title_text="hidden unit", title_standoff=2, row=row, col=col)
    fig.update_layout(title=f"{cell.upper()}: activations for the first test window (from the kernel's saved "
                            "activations)",
                      height=360 * rows + 40, margin=dict(t=90, b=50, l=60, r=40))
    return fig


def _figures(cfg, data, runs, gates, steps):
    import plotly.graph_objects as go

    figs = []
    fig = _line_chart("Series and the train/test split", "time index", "value")
    fig.add_trace(go.Scatter(x=data.t, y=data.y, mode="lines", name="series"))
    fig.add_vline(x=data.t[data.split_t], line_dash="dash", line_color="black")
    figs.append(fig)

    fig = _line_chart("Training loss per epoch (both backends, same initial weights and batches)", "epoch",
                      "MSE (scaled units)")
    for (cell, backend), run in runs.items():
        fig.add_trace(go.Scatter(y=run["history"], x=np.arange(1, len(run["history"]) + 1), mode="lines",
                                 name=f"{cell.upper()} / {backend}",
                                 line=dict(dash="solid" if backend == "tsrnn" else "dot")))
    figs.append(fig)

    fig = _line_chart("Time per epoch (backends trained alternately, one epoch each in turn, after a warm-up)",
                      "epoch", "milliseconds")
    for (cell, backend), run in runs.items():
        fig.add_trace(go.Scatter(y=1e3 * run["epoch_seconds"], x=np.arange(1, len(run["epoch_seconds"]) + 1),
                                 mode="lines+markers", name=f"{cell.upper()} / {backend}", marker=dict(size=4),
                                 line=dict(dash="solid" if backend == "tsrnn" else "dot")))
    fig.update_yaxes(rangemode="tozero")
    figs.append(fig)

    fig = _line_chart("One-step-ahead predictions on the test region", "time index", "value")
    fig.add_trace(go.Scatter(x=data.t_test, y=data.unscale(data.y_test[:, 0]), mode="lines", name="true"))
    for (cell, backend), run in runs.items():
        fig.add_trace(go.Scatter(x=data.t_test, y=run["pred"], mode="lines", name=f"{cell.upper()} / {backend}"))
    figs.append(fig)

    t_roll = data.t[data.split_t:data.split_t + steps]
    fig = _line_chart(f"Recursive rollout, {steps} steps from the first test window", "time index", "value")
    fig.add_trace(go.Scatter(x=t_roll, y=data.y[data.split_t:data.split_t + steps], mode="lines", name="true"))
    for (cell, backend), run in runs.items():
        fig.add_trace(go.Scatter(x=t_roll, y=run["rollout"], mode="lines", name=f"{cell.upper()} / {backend}"))
    figs.append(fig)

    for cell, maps in gates.items():
        figs.append(_gate_figure(cell, maps))
    return figs


def _table(rows: list[dict], columns: list[tuple[str, str, str]]) -> str:
    head = "".join(f"<th>{html.escape(title)}</th>" for _, title, _ in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{format(r[key], fmt) if fmt else html.escape(str(r[key]))}</td>"
                         for key, _, fmt in columns) + "</tr>"
        for r in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def write_report(path: str, cfg, data, runs, gates, metrics, steps) -> None:
    figs = _figures(cfg, data, runs, gates, steps)
    parts = [fig.to_html(full_html=False, include_plotlyjs=(k == 0), default_height="450px")
             for k, fig in enumerate(figs)]
    results = _table(metrics["results"], [
        ("cell", "cell", ""), ("backend", "backend", ""), ("test_mse", "test MSE", ".4f"),
        ("test_mae", "test MAE", ".4f"), ("rollout_mae", f"rollout MAE ({steps} steps)", ".4f"),
        ("final_loss", "final train loss", ".6f"), ("median_epoch_seconds", "median epoch (s)", ".4f"),
        ("train_seconds", "timed epochs (s)", ".2f"),
    ])
    comparison = ""
    if metrics["backend_comparison"]:
        comparison = "<h2>tsrnn against torch.nn</h2>" + _table(metrics["backend_comparison"], [
            ("cell", "cell", ""), ("max_rel_loss_diff", "largest per-epoch relative loss difference", ".2e"),
            ("worst_epoch", "at epoch", ""), ("speedup", "training speed torch / tsrnn (median)", ".2f"),
            ("speedup_q25", "25th percentile", ".2f"), ("speedup_q75", "75th percentile", ".2f"),
            ("epoch_pairs", "epoch pairs", ""),
        ]) + f"<p>{html.escape(metrics['timing'])}.</p>"
    c = metrics["config"]
    doc = f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>tsrnn forecast report</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:auto;padding:1em}}
table{{border-collapse:collapse;margin:1em 0}}td,th{{border:1px solid #bbb;padding:4px 8px;text-align:right}}</style>
</head><body>
<h1>tsrnn forecast report</h1>
<p>Data: {html.escape(metrics['source'])}. One-step-ahead forecaster (window {c['seq_len']}, hidden {c['hidden']}),
{c['epochs']} epochs, Adam lr 1e-3, batch 64, gradient clipping 1.0, seed {c['seed']};
torch {html.escape(metrics['torch'])}, {html.escape(metrics['device'])}. Errors are in the series' own units.</p>
<h2>Test metrics</h2>{results}{comparison}
{''.join(parts)}
</body></html>
"""
    with open(path, "w", encoding="utf-8") as f:
        f.write(doc)

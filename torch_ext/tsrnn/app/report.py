"""The job's report: one self-contained HTML file (Plotly's JavaScript inlined once) with the figures and tables."""

from __future__ import annotations

import html

import numpy as np


def _figures(cfg, data, runs, gates, steps):
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    legend = dict(orientation="h", yanchor="bottom", y=1.02, xanchor="right", x=1)
    figs = []

    fig = go.Figure(go.Scatter(x=data.t, y=data.y, mode="lines", name="series"))
    fig.add_vline(x=data.t[data.split_t], line_dash="dash", line_color="black")
    fig.update_layout(title="Series and the train/test split", xaxis_title="time index", yaxis_title="value",
                      legend=legend)
    figs.append(fig)

    fig = go.Figure()
    for (cell, backend), run in runs.items():
        fig.add_trace(go.Scatter(y=run["history"], x=np.arange(1, len(run["history"]) + 1), mode="lines",
                                 name=f"{cell.upper()} / {backend}",
                                 line=dict(dash="solid" if backend == "tsrnn" else "dot")))
    fig.update_layout(title="Training loss per epoch (both backends, same initial weights and batches)",
                      xaxis_title="epoch", yaxis_title="MSE (scaled units)", legend=legend)
    figs.append(fig)

    fig = go.Figure(go.Scatter(x=data.t_test, y=data.unscale(data.y_test[:, 0]), mode="lines", name="true"))
    for (cell, backend), run in runs.items():
        fig.add_trace(go.Scatter(x=data.t_test, y=run["pred"], mode="lines", name=f"{cell.upper()} / {backend}"))
    fig.update_layout(title="One-step-ahead predictions on the test region", xaxis_title="time index",
                      yaxis_title="value", legend=legend)
    figs.append(fig)

    t_roll = data.t[data.split_t:data.split_t + steps]
    fig = go.Figure(go.Scatter(x=t_roll, y=data.y[data.split_t:data.split_t + steps], mode="lines", name="true"))
    for (cell, backend), run in runs.items():
        fig.add_trace(go.Scatter(x=t_roll, y=run["rollout"], mode="lines", name=f"{cell.upper()} / {backend}"))
    fig.update_layout(title=f"Recursive rollout, {steps} steps from the first test window",
                      xaxis_title="time index", yaxis_title="value", legend=legend)
    figs.append(fig)

    for cell, maps in gates.items():
        names = list(maps)
        cols = 3 if len(names) > 3 else len(names)
        rows = (len(names) + cols - 1) // cols
        fig = make_subplots(rows=rows, cols=cols, subplot_titles=[f"{cell.upper()} {n}" for n in names],
                            horizontal_spacing=0.06, vertical_spacing=0.12)
        for k, name in enumerate(names):
            fig.add_trace(go.Heatmap(z=maps[name], coloraxis="coloraxis"), row=k // cols + 1, col=k % cols + 1)
        fig.update_layout(title=f"{cell.upper()}: gate activations for the first test window "
                                "(from the kernel's saved activations)",
                          height=330 * rows, coloraxis=dict(colorscale="Viridis"))
        fig.update_xaxes(title_text="time step")
        fig.update_yaxes(title_text="hidden unit")
        figs.append(fig)
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
        ("final_loss", "final train loss", ".6f"), ("train_seconds", "training time (s)", ".2f"),
    ])
    comparison = ""
    if metrics["backend_comparison"]:
        comparison = "<h2>tsrnn against torch.nn</h2>" + _table(metrics["backend_comparison"], [
            ("cell", "cell", ""), ("max_rel_loss_diff", "largest per-epoch relative loss difference", ".2e"),
            ("worst_epoch", "at epoch", ""), ("speedup", "training speed torch / tsrnn", ".2f"),
        ])
    c = metrics["config"]
    doc = f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>tsrnn forecast report</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:auto;padding:1em}}
table{{border-collapse:collapse;margin:1em 0}}td,th{{border:1px solid #bbb;padding:4px 8px;text-align:right}}</style>
</head><body>
<h1>tsrnn forecast report</h1>
<p>Data: {html.escape(metrics['source'])}. One-step-ahead forecaster (window {c['seq_len']}, hidden {c['hidden']}),
{c['epochs']} epochs, Adam lr 1e-3, batch 64, gradient clipping 1.0, seed {c['seed']};
torch {html.escape(metrics['torch'])}, {metrics['threads']} threads. Errors are in the series' own units.</p>
<h2>Test metrics</h2>{results}{comparison}
{''.join(parts)}
</body></html>
"""
    with open(path, "w", encoding="utf-8") as f:
        f.write(doc)

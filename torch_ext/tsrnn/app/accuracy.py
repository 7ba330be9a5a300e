"""Accuracy against an fp64 truth: tsrnn's and nn.*'s fp32 error on every output and gradient, side by side.

For one point (cell, T, B, D, H), nn.* (fp32, its own initialization) gives the weights; tsrnn.LSTM / GRU load them,
and an fp64 copy of nn.* with the same weights and the same inputs is the truth. Each side computes the outputs
(y, h_n[, c_n]) and the gradients of one fixed random linear function of them with respect to x, h0[, c0] and every
parameter. The error of a tensor is max|fp32 - fp64| / max|fp64| (0 when the truth is 0). Unlike timing, these
figures are deterministic: the same on every run of the same build, so tests can hold them to a bound.

``python -m tsrnn bench --accuracy`` runs the grid below (rows T * B from 1 to about 10^6) and writes JSON and a table.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from ..modules import GRU, LSTM
from .bench import machine_info

# (D, H) classes and the (T, B) of each; T * B runs from 1 to 1,024,000 rows for the small sizes
GRID = {
    (1, 32): [(1, 1), (60, 64), (2000, 64), (4000, 256)],
    (16, 64): [(1, 1), (60, 64), (300, 64), (2000, 64)],
    (256, 256): [(1, 1), (10, 64), (100, 64)],
}


@dataclass(frozen=True)
class AccuracyPoint:
    cell: str
    T: int
    B: int
    D: int
    H: int

    @property
    def rows(self) -> int:
        return self.T * self.B


def grid(cells=("lstm", "gru")) -> list[AccuracyPoint]:
    return [AccuracyPoint(c, T, B, D, H) for c in cells for (D, H), tbs in GRID.items() for T, B in tbs]


def _run(module, x, states, cotangents):
    """Outputs and the gradients of sum(out * cotangent) w.r.t. x, the states and the parameters, by name."""
    x = x.detach().requires_grad_()
    states = tuple(s.detach().requires_grad_() for s in states)
    y, final = module(x, states if len(states) == 2 else states[0])
    finals = final if isinstance(final, tuple) else (final,)
    outputs = {"y": y, "h_n": finals[0]}
    if len(finals) == 2:
        outputs["c_n"] = finals[1]
    loss = sum((o * cotangents[name].to(o.dtype)).sum() for name, o in outputs.items())
    names = ["x", "h0", "c0"][: 1 + len(states)] + [n for n, _ in module.named_parameters()]
    grads = torch.autograd.grad(loss, [x, *states, *module.parameters()])
    result = {name: o.detach() for name, o in outputs.items()}
    result.update({f"grad {n}": g.detach() for n, g in zip(names, grads)})
    return result


def relative_error(got: torch.Tensor, truth: torch.Tensor) -> float:
    scale = truth.abs().max().item() if truth.numel() else 0.0
    if scale == 0.0:
        return 0.0 if got.numel() == 0 or got.abs().max().item() == 0.0 else float("inf")
    return (got.double() - truth).abs().max().item() / scale


def measure(p: AccuracyPoint, seed: int = 0) -> dict:
    """Every output's and gradient's error, tsrnn's and nn.*'s, against the fp64 truth."""
    ours_cls, theirs_cls = (LSTM, nn.LSTM) if p.cell == "lstm" else (GRU, nn.GRU)
    torch.manual_seed(seed)
    theirs = theirs_cls(p.D, p.H, batch_first=True)
    ours = ours_cls(p.D, p.H, batch_first=True)
    ours.load_state_dict(theirs.state_dict())
    truth_module = theirs_cls(p.D, p.H, batch_first=True, dtype=torch.float64)
    truth_module.load_state_dict({k: v.double() for k, v in theirs.state_dict().items()})

    g = torch.Generator().manual_seed(seed + 1)
    x = torch.randn(p.B, p.T, p.D, generator=g)
    states = tuple(torch.randn(1, p.B, p.H, generator=g) for _ in range(2 if p.cell == "lstm" else 1))
    cotangents = {"y": torch.randn(p.B, p.T, p.H, generator=g, dtype=torch.float64),
                  "h_n": torch.randn(1, p.B, p.H, generator=g, dtype=torch.float64),
                  "c_n": torch.randn(1, p.B, p.H, generator=g, dtype=torch.float64)}

    truth = _run(truth_module, x.double(), tuple(s.double() for s in states), cotangents)
    got = {"tsrnn": _run(ours, x, states, cotangents), "torch": _run(theirs, x, states, cotangents)}
    tensors = {}
    for name, t in truth.items():
        e_ours, e_theirs = relative_error(got["tsrnn"][name], t), relative_error(got["torch"][name], t)
        tensors[name] = {"tsrnn_err": e_ours, "torch_err": e_theirs,
                         "ratio": e_ours / e_theirs if e_theirs > 0 else (1.0 if e_ours == 0 else float("inf"))}
    return {**asdict(p), "rows": p.rows, "tensors": tensors}


def within_bound(r: dict, factor: float = 1.5, slack: float = 1e-7) -> list[str]:
    """The tensors of one measure() result whose tsrnn error exceeds factor * nn.*'s + slack (empty: all within)."""
    return [f"{name}: tsrnn {e['tsrnn_err']:.2e} > {factor} x nn.* {e['torch_err']:.2e} + {slack:.0e}"
            for name, e in r["tensors"].items() if not e["tsrnn_err"] <= factor * e["torch_err"] + slack]


def run(points: list[AccuracyPoint], log=print, command: str | None = None) -> dict:
    doc = {"kind": "accuracy", "command": command, "machine": machine_info("cpu", peak=False), "results": []}
    log(f"{'cell':<5} {'T':>5} {'B':>4} {'D':>4} {'H':>4} {'rows':>8} | worst tensor: tsrnn err, nn.* err, ratio")
    for p in points:
        r = measure(p)
        doc["results"].append(r)
        name, e = max(r["tensors"].items(), key=lambda kv: kv[1]["ratio"])
        log(f"{p.cell:<5} {p.T:>5} {p.B:>4} {p.D:>4} {p.H:>4} {p.rows:>8} | {name}: {e['tsrnn_err']:.2e}, "
            f"{e['torch_err']:.2e}, {e['ratio']:.2f}x")
    return doc


def markdown_table(doc: dict) -> str:
    """One row per point and tensor: tsrnn's and nn.*'s error against fp64 and their ratio."""
    m = doc["machine"]
    lines = [f"{m['processor']}, torch {m['torch']}, {m['threads']} threads, {m['date'][:10]}. Command: "
             f"`{doc.get('command') or 'python -m tsrnn bench --accuracy'}`. Error: max|fp32 - fp64| / max|fp64|.", "",
             "| cell | T | B | D | H | rows | tensor | tsrnn err | nn.* err | ratio |",
             "| --- | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: |"]
    for r in doc["results"]:
        for name, e in r["tensors"].items():
            lines.append(f"| {r['cell']} | {r['T']} | {r['B']} | {r['D']} | {r['H']} | {r['rows']} | {name} | "
                         f"{e['tsrnn_err']:.2e} | {e['torch_err']:.2e} | {e['ratio']:.2f}x |")
    return "\n".join(lines)

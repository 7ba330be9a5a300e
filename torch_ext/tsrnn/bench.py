"""Side-by-side benchmark of tsrnn against nn.LSTM / nn.GRU, reusable from Python and from ``python -m tsrnn bench``.

Order of work per point (llm.c's harness): seeded inputs -> validate tsrnn against nn.* with identical weights
(outputs and gradients) -> warm up -> time tsrnn and nn.* interleaved A B A B in one process -> median.
A figure from an unvalidated point is never reported.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import statistics
import time
from dataclasses import asdict, dataclass

import torch
from torch import nn

from .modules import GRU, LSTM

NOTEBOOK_SHAPE = dict(B=64, T=60, D=1, H=32)
GATES = {"lstm": 4, "gru": 3}


@dataclass
class Point:
    cell: str
    mode: str  # "forward" (no grad) or "train" (forward + backward)
    B: int
    T: int
    D: int
    H: int
    device: str = "cpu"


def flops(p: Point) -> float:
    """Matrix-product FLOPs of one call: forward 2*T*B*G*H*(D+H); train adds grad of inputs/states and of the
    weights, twice that again."""
    fwd = 2.0 * p.T * p.B * GATES[p.cell] * p.H * (p.D + p.H)
    return fwd if p.mode == "forward" else 3.0 * fwd


def _modules(p: Point):
    cls_ours, cls_theirs = (LSTM, nn.LSTM) if p.cell == "lstm" else (GRU, nn.GRU)
    torch.manual_seed(0)
    theirs = cls_theirs(p.D, p.H, batch_first=True).to(p.device)
    ours = cls_ours(p.D, p.H, batch_first=True).to(p.device)
    ours.load_state_dict(theirs.state_dict())
    return ours, theirs


def _step(module, x, mode):
    if mode == "forward":
        with torch.no_grad():
            return module(x)[0]
    module.zero_grad(set_to_none=True)
    out = module(x)[0]
    out.sum().backward()
    return out


def validate(p: Point, ours, theirs, x) -> float:
    """Largest |tsrnn - nn| over outputs (and every gradient in train mode); raises if beyond tolerance."""
    worst = 0.0
    outs = []
    for m in (ours, theirs):
        xi = x.clone().requires_grad_(p.mode == "train")
        out = _step(m, xi, p.mode)
        grads = [xi.grad] + [q.grad for q in m.parameters()] if p.mode == "train" else []
        outs.append([out.detach()] + grads)
    for a, b in zip(*outs, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)
        worst = max(worst, float((a - b).abs().max()))
    return worst


def _sync(device):
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def time_point(p: Point, reps: int = 30, warmup: int = 5, min_seconds: float = 0.2) -> dict:
    ours, theirs = _modules(p)
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(p.B, p.T, p.D, generator=gen).to(p.device)
    err = validate(p, ours, theirs, x)
    times = {"tsrnn": [], "torch": []}
    for _ in range(warmup):
        _step(ours, x, p.mode), _step(theirs, x, p.mode)
    _sync(p.device)
    start = time.perf_counter()
    while len(times["tsrnn"]) < reps or (time.perf_counter() - start < min_seconds and len(times["tsrnn"]) < 20 * reps):
        for name, m in (("tsrnn", ours), ("torch", theirs)):  # interleaved A B A B
            t0 = time.perf_counter()
            _step(m, x, p.mode)
            _sync(p.device)
            times[name].append(time.perf_counter() - t0)
    med = {k: statistics.median(v) for k, v in times.items()}
    return {
        **asdict(p),
        "max_abs_err": err,
        "reps": len(times["tsrnn"]),
        "tsrnn_ms": med["tsrnn"] * 1e3,
        "torch_ms": med["torch"] * 1e3,
        "speedup": med["torch"] / med["tsrnn"],
        "tsrnn_gflops": flops(p) / med["tsrnn"] / 1e9,
        "torch_gflops": flops(p) / med["torch"] / 1e9,
    }


def machine_info() -> dict:
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": platform.machine(),
        "processor": _cpu_name(),
        "cores": os.cpu_count(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "python": platform.python_version(),
    }


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def run(points: list[Point], reps: int = 30, out: str | None = None, log=print) -> dict:
    results = []
    log(f"{'cell':<5} {'mode':<8} {'B':>4} {'T':>4} {'D':>5} {'H':>5} | {'tsrnn ms':>9} {'torch ms':>9} "
        f"{'speedup':>8} | {'tsrnn GF/s':>10}")
    for p in points:
        r = time_point(p, reps=reps)
        results.append(r)
        log(f"{p.cell:<5} {p.mode:<8} {p.B:>4} {p.T:>4} {p.D:>5} {p.H:>5} | {r['tsrnn_ms']:>9.3f} "
            f"{r['torch_ms']:>9.3f} {r['speedup']:>7.2f}x | {r['tsrnn_gflops']:>10.1f}")
    doc = {"machine": machine_info(), "results": results}
    if out:
        os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
        with open(out, "w") as f:
            json.dump(doc, f, indent=1)
        log(f"wrote {out}")
    return doc

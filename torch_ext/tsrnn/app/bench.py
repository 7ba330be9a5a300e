"""Side-by-side benchmark of tsrnn against nn.LSTM / nn.GRU, reusable from Python and from ``python -m tsrnn bench``.

Order of work per point (llm.c's harness): seeded inputs -> validate tsrnn against nn.* with identical weights
(outputs and every gradient) -> warm up -> time tsrnn and nn.* interleaved A B A B in one process -> median.
A figure from an unvalidated point is never reported.

Each sample times a block of `number` calls in a row (timeit's way), the same number for both sides, enough that
the faster side's block lasts MIN_SAMPLE_SECONDS; points whose calls take longer time one call per sample. Timing
single calls of a few microseconds A B A B would measure each call with caches and branch predictors just filled by
the other library's call.

On CUDA, blocks are timed with CUDA events. nn.* runs cuDNN, which by default uses TF32 for fp32 RNNs
(torch.backends.cudnn.allow_tf32): validation runs both sides in true fp32 (TF32 off), and nn.* is timed twice,
interleaved with tsrnn: TF32 off ("torch_ms", the same arithmetic as tsrnn) and with torch's default flags as the
process found them ("torch_tf32_ms"). Every point is written to the JSON as soon as it is measured; a point that
fails (validation, a kernel error, out of memory) is reported in "failed" and the run goes on.
"""

from __future__ import annotations

import datetime
import html
import itertools
import json
import math
import os
import platform
import statistics
import subprocess
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass

import torch
from torch import nn

from .. import _ops
from ..modules import GRU, LSTM

GATES = {"lstm": 4, "gru": 3}
NOTEBOOK_SHAPE = dict(B=64, T=60, D=1, H=32)
GRID_H = (32, 64, 128, 256, 512, 1024)
GRID_B = (1, 64, 256)
GRID_T = (60, 256)
# Points the CPU targets name; never skipped, whatever they cost.
NAMED = [dict(NOTEBOOK_SHAPE), dict(B=64, T=100, D=256, H=256), dict(B=64, T=100, D=512, H=512),
         dict(B=1, T=1, D=32, H=32), dict(B=1, T=60, D=32, H=32)]
# The GPU targets' points: the notebook shape, and B 64 T 256 at H 512 and 1024 (D = H).
NAMED_CUDA = [dict(NOTEBOOK_SHAPE), dict(B=64, T=256, D=512, H=512), dict(B=64, T=256, D=1024, H=1024)]
SKIP_SECONDS = 2.0  # on the CPU, grid points where one nn.* forward takes longer are left out
MIN_SAMPLE_SECONDS = 1e-3  # shortest timed block of calls
MAX_CALLS_PER_SAMPLE = 1000


@dataclass(frozen=True)
class Point:
    cell: str
    mode: str  # "forward" (no grad) or "train" (forward + backward)
    B: int
    T: int
    D: int
    H: int
    device: str = "cpu"

    @property
    def shape(self) -> dict:
        return dict(B=self.B, T=self.T, D=self.D, H=self.H)


def flops(p: Point) -> float:
    """Matrix-product FLOPs of one call: forward 2*T*B*G*H*(D+H); a train step adds the gradients of the inputs
    and states and of the weights, twice the forward's again."""
    fwd = 2.0 * p.T * p.B * GATES[p.cell] * p.H * (p.D + p.H)
    return fwd if p.mode == "forward" else 3.0 * fwd


def grid(cells=("lstm", "gru"), modes=("forward", "train"), Hs=GRID_H, Bs=GRID_B, Ts=GRID_T, device="cpu",
         named=True) -> list[Point]:
    """The grid (D = H), plus the notebook shape and the named points, without duplicates."""
    shapes = [dict(B=B, T=T, D=H, H=H) for H, B, T in itertools.product(Hs, Bs, Ts)]
    if named:
        shapes = NAMED + [s for s in shapes if s not in NAMED]
    return [Point(c, m, device=device, **s) for c in cells for m in modes for s in shapes]


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
    """Worst relative error ||tsrnn - nn|| / ||nn|| over the output (and, in train mode, the input gradient and
    every parameter gradient). Raises AssertionError past 1e-4 (fp32; sums over T*B rows in another order).
    On CUDA both run with TF32 off, so nn.* (cuDNN) computes in fp32 as tsrnn does."""
    results = []
    for m in (ours, theirs):
        xi = x.clone().requires_grad_(p.mode == "train")
        with tf32(False if p.device.startswith("cuda") else None):
            out = _step(m, xi, p.mode).detach()
        grads = [xi.grad] + [q.grad for q in m.parameters()] if p.mode == "train" else []
        results.append([out] + grads)
    worst = 0.0
    names = ["output"] + (["grad input"] + [n for n, _ in ours.named_parameters()] if p.mode == "train" else [])
    for name, a, b in zip(names, *results, strict=True):
        err = float((a - b).double().norm() / b.double().norm().clamp_min(1e-30))
        if not err < 1e-4:
            raise AssertionError(f"{p}: {name} differs from nn.*: relative error {err:.2e}")
        worst = max(worst, err)
    return worst


def named_points(device: str) -> list[dict]:
    return NAMED_CUDA if device.startswith("cuda") else NAMED


@contextmanager
def tf32(enabled: bool | None):
    """cuDNN and cuBLAS TF32 for fp32 on (True), off (False), or as the process has them (None); restored after."""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    if enabled is not None:
        torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = enabled
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


def _timed(fn, device, number: int = 1) -> float:
    """Seconds per call of `number` calls in a row (CUDA: between two events, after the queue drained)."""
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(number):
            fn()
        end.record()
        end.synchronize()
        return start.elapsed_time(end) / 1e3 / number
    t0 = time.perf_counter()
    for _ in range(number):
        fn()
    return (time.perf_counter() - t0) / number


def calls_per_sample(seconds_per_call: float) -> int:
    """How many calls one timed block holds so that it lasts MIN_SAMPLE_SECONDS (1 for calls that long)."""
    if not seconds_per_call > 0:
        return MAX_CALLS_PER_SAMPLE
    return max(1, min(MAX_CALLS_PER_SAMPLE, math.ceil(MIN_SAMPLE_SECONDS / seconds_per_call)))


PEERS = ("onnxruntime",)


class OrtPeer:
    """What a user deploying the model would run instead: the nn.* module, same weights, exported to ONNX
    (``export``: torch.onnx's TorchScript exporter, opset 17, batch and time dynamic) and run by ONNX Runtime's CPU
    provider with ``threads`` intra-op threads, called as users do: ``session.run`` on a numpy array (a view of the
    input tensor). Forward only (ONNX Runtime does not train). onnxruntime is optional: a missing one is a clear
    RuntimeError."""

    def __init__(self, model: bytes, x: torch.Tensor, threads: int):
        self.check_available()
        import onnxruntime

        opts = onnxruntime.SessionOptions()
        opts.intra_op_num_threads = self.threads = threads
        opts.inter_op_num_threads = 1
        # ORT's pool threads spin after each run by default; interleaved with tsrnn and nn.* on the same cores they
        # would take a core from the side timed next (tsrnn at the notebook shape: 0.27 ms alone, 0.94 ms right
        # after an ORT block), so the pool sleeps between runs instead.
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        opts.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = onnxruntime.InferenceSession(model, opts, providers=["CPUExecutionProvider"])
        self.version = onnxruntime.__version__
        self.x = x.detach().cpu().contiguous().numpy()

    def __call__(self):
        return self.session.run(["y"], {"x": self.x})[0]

    @staticmethod
    def export(module: nn.Module, x: torch.Tensor) -> bytes:
        """The module's output y as an ONNX model (input "x", output "y", B and T dynamic)."""
        import io
        import warnings

        class OutputOnly(nn.Module):
            def __init__(self, rnn):
                super().__init__()
                self.rnn = rnn

            def forward(self, inp):
                return self.rnn(inp)[0]

        buf = io.BytesIO()
        with warnings.catch_warnings():  # the TorchScript exporter's deprecation notice
            warnings.simplefilter("ignore")
            torch.onnx.export(OutputOnly(module).eval(), (x,), buf, dynamo=False, input_names=["x"],
                              output_names=["y"], opset_version=17,
                              dynamic_axes={"x": {0: "B", 1: "T"}, "y": {0: "B", 1: "T"}})
        return buf.getvalue()

    @staticmethod
    def check_available() -> None:
        """A RuntimeError naming what is missing: onnxruntime to run the model, onnx for torch.onnx's exporter."""
        for package in ("onnxruntime", "onnx"):
            try:
                __import__(package)
            except ImportError:
                raise RuntimeError(f"tsrnn bench: --peers onnxruntime needs the {package} package "
                                   "(pip install onnxruntime onnx; tsrnn itself needs neither)") from None


def best_ort(module: nn.Module, x: torch.Tensor) -> OrtPeer:
    """ONNX Runtime at its faster thread count for this point, 1 (no pool: the caller's thread) or torch's: at
    small shapes waking a pool costs more than it brings."""
    OrtPeer.check_available()
    model = OrtPeer.export(module, x)
    peers = [OrtPeer(model, x, n) for n in sorted({1, torch.get_num_threads()})]
    if len(peers) == 1:
        return peers[0]
    for q in peers:
        q()
    best = [min(_timed(q, "cpu", calls_per_sample(_timed(q, "cpu"))) for _ in range(5)) for q in peers]
    return peers[best.index(min(best))]


def mm_ceiling(p: Point, reps: int) -> dict:
    """torch.mm's rate on the point's step product, h_{t-1} W_hh^T: (B x H) times (H x G*H), into a preallocated
    output: what one per-step GEMM call of the platform's BLAS reaches at this shape (medians of blocks of calls)."""
    g = torch.Generator().manual_seed(2)
    a = torch.randn(p.B, p.H, generator=g).to(p.device)
    w = torch.randn(p.H, GATES[p.cell] * p.H, generator=g).to(p.device)
    o = torch.empty(p.B, GATES[p.cell] * p.H, device=p.device)
    fn = lambda: torch.mm(a, w, out=o)  # noqa: E731
    number = calls_per_sample(min(_timed(fn, p.device) for _ in range(3)))
    t = statistics.median(_timed(fn, p.device, number) for _ in range(max(5, reps)))
    return {"mm_shape": f"{p.B}x{p.H} @ {p.H}x{GATES[p.cell] * p.H}", "mm_ms": t * 1e3,
            "mm_gflops": 2.0 * p.B * p.H * GATES[p.cell] * p.H / t / 1e9}


def time_point(p: Point, reps: int = 20, warmup: int = 3, min_seconds: float = 0.3, skip_slow: bool = False,
               peers=()):
    """Validated, interleaved timing of one point; None when skip_slow and one nn.* forward takes > 2 s.
    peers: ("onnxruntime",) adds ONNX Runtime (forward points on the CPU) to the interleaved sides."""
    ours, theirs = _modules(p)
    x = torch.randn(p.B, p.T, p.D, generator=torch.Generator().manual_seed(1)).to(p.device)
    probe = _timed(lambda: _step(theirs, x, "forward"), p.device)
    if skip_slow and probe > SKIP_SECONDS:
        return None
    err = validate(p, ours, theirs, x)
    cuda = p.device.startswith("cuda")
    # name -> one call; precision: tsrnn never uses TF32; on CUDA nn.* twice, in fp32 and as torch ships
    sides = {"tsrnn": lambda: _step(ours, x, p.mode), "torch": lambda: _step(theirs, x, p.mode)}
    precision = {"tsrnn": None, "torch": False if cuda else None}
    if cuda:
        sides["torch_tf32"] = sides["torch"]
        precision["torch_tf32"] = None
    peer_info = {}
    if "onnxruntime" in peers and p.mode == "forward" and not cuda:
        ort = best_ort(theirs, x)
        with torch.no_grad():
            want = theirs(x)[0]
        got = torch.from_numpy(ort())
        ort_err = float((got - want).double().norm() / want.double().norm().clamp_min(1e-30))
        if not ort_err < 1e-4:
            raise AssertionError(f"{p}: ONNX Runtime's output differs from nn.*: relative error {ort_err:.2e}")
        sides["onnxruntime"] = ort
        peer_info = {"ort_version": ort.version, "ort_threads": ort.threads, "ort_spinning": False,
                     "ort_max_rel_err": ort_err}

    def call(name, number=1):
        with tf32(precision.get(name)):
            return _timed(sides[name], p.device, number)

    warm = {name: [call(name) for _ in range(warmup)] for name in sides}
    number = calls_per_sample(min(min(v) for v in warm.values()))
    times = {name: [] for name in sides}
    start = time.perf_counter()
    while len(times["tsrnn"]) < reps or (time.perf_counter() - start < min_seconds and len(times["tsrnn"]) < 20 * reps):
        for name in sides:  # interleaved A B A B (A B C ... with more sides)
            times[name].append(call(name, number))
    med = {k: statistics.median(v) for k, v in times.items()}
    result = {
        **asdict(p),
        "max_rel_err": err,
        "reps": len(times["tsrnn"]),
        "calls_per_sample": number,
        "tsrnn_ms": med["tsrnn"] * 1e3,
        "torch_ms": med["torch"] * 1e3,
        "speedup": med["torch"] / med["tsrnn"],
        "tsrnn_gflops": flops(p) / med["tsrnn"] / 1e9,
        "torch_gflops": flops(p) / med["torch"] / 1e9,
    }
    if "onnxruntime" in med:
        result.update(peer_info, ort_ms=med["onnxruntime"] * 1e3, speedup_vs_ort=med["onnxruntime"] / med["tsrnn"])
    if cuda:
        result.update({
            "torch_precision": "fp32 (cudnn.allow_tf32 = matmul.allow_tf32 = False)",
            "torch_tf32_precision": "torch's defaults as found: cudnn.allow_tf32 = "
            f"{torch.backends.cudnn.allow_tf32}, matmul.allow_tf32 = {torch.backends.cuda.matmul.allow_tf32}",
            "torch_tf32_ms": med["torch_tf32"] * 1e3,
            "speedup_vs_tf32": med["torch_tf32"] / med["tsrnn"],
        })
    with tf32(False if cuda else None):
        result.update(mm_ceiling(p, reps))
    return result


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def peak_binary() -> str | None:
    """The peak probe (scripts/peak_gflops.c, built by CMake): next to the package when installed, else next to
    the op library of a dev build."""
    package = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # tsrnn/, where the wheel installs it
    for folder in (package, os.path.dirname(_ops.LIBRARY_PATH)):
        path = os.path.join(folder, "peak_gflops")
        if os.access(path, os.X_OK):
            return path
    return None


def measure_peak(threads: int) -> dict | None:
    """The CPU's measured FMA peak at `threads` threads: {"fp32_gflops", "fp64_gflops", "vector_bits", ...}, or
    None when the probe was not built."""
    path = peak_binary()
    if path is None:
        return None
    out = subprocess.run([path, str(threads)], check=True, capture_output=True, text=True, timeout=120).stdout
    return json.loads(out)


def machine_info(device: str = "cpu", peak: bool = True) -> dict:
    """Date, CPU model, cores, versions and threads; on CUDA the GPU, else (with peak) the measured FMA peak."""
    info = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": platform.machine(),
        "processor": _cpu_name(),
        "cores": os.cpu_count(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "python": platform.python_version(),
    }
    if device.startswith("cuda"):
        props = torch.cuda.get_device_properties(device)
        info.update(gpu=props.name, sms=props.multi_processor_count, cuda=torch.version.cuda,
                    cudnn=torch.backends.cudnn.version(), capability=f"{props.major}.{props.minor}")
    elif peak:
        info["peak"] = measure_peak(torch.get_num_threads())
    return info


def percent_of_peak(r: dict, machine: dict) -> float | None:
    """tsrnn's achieved fp32 GFLOP/s at a CPU point as a percentage of the measured peak."""
    peak = (machine.get("peak") or {}).get("fp32_gflops")
    return 100.0 * r["tsrnn_gflops"] / peak if peak and r.get("device", "cpu") == "cpu" else None


def _point_label(p) -> str:
    g = p if isinstance(p, dict) else asdict(p)
    return f"{g['cell']:<5} {g['mode']:<8} {g['B']:>4} {g['T']:>4} {g['D']:>5} {g['H']:>5}"


def header(device: str = "cpu", peers=()) -> str:
    tf32_col = f" {'TF32 ms':>9} {'vs TF32':>8}" if device.startswith("cuda") else ""
    ort_col = f" {'ORT ms':>9} {'vs ORT':>7}" if "onnxruntime" in peers else ""
    return (f"{'cell':<5} {'mode':<8} {'B':>4} {'T':>4} {'D':>5} {'H':>5} | {'tsrnn ms':>9} {'torch ms':>9} "
            f"{'speedup':>8}{tf32_col}{ort_col} | {'tsrnn GF/s':>10} {'torch GF/s':>10} {'mm GF/s':>8}")


def format_row(r: dict, peers=()) -> str:
    tf32_col = f" {r['torch_tf32_ms']:>9.3f} {r['speedup_vs_tf32']:>7.2f}x" if "torch_tf32_ms" in r else ""
    ort_col = ""
    if "onnxruntime" in peers:
        ort_col = f" {r['ort_ms']:>9.3f} {r['speedup_vs_ort']:>6.2f}x" if "ort_ms" in r else f" {'-':>9} {'-':>7}"
    return (f"{_point_label(r)} | {r['tsrnn_ms']:>9.3f} {r['torch_ms']:>9.3f} {r['speedup']:>7.2f}x{tf32_col}"
            f"{ort_col} | {r['tsrnn_gflops']:>10.1f} {r['torch_gflops']:>10.1f} {r['mm_gflops']:>8.1f}")


def write_json(doc: dict, path: str) -> None:
    """Whole or not at all: a run killed mid-write leaves the previous version."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        json.dump(doc, f, indent=1)
    os.replace(tmp, path)


def run(points: list[Point], reps: int = 20, out: str | None = None, chart: str | None = None, log=print,
        skip_slow: bool = False, command: str | None = None, peers=()) -> dict:
    if any(p.device.startswith("cuda") for p in points) and not torch.cuda.is_available():
        raise RuntimeError("tsrnn bench: --device cuda asked for, but torch.cuda.is_available() is False")
    bad = [q for q in peers if q not in PEERS]
    if bad:
        raise RuntimeError(f"tsrnn bench: --peers: unknown peer(s) {bad}; known: {', '.join(PEERS)}")
    if "onnxruntime" in peers:
        OrtPeer.check_available()
    device = points[0].device if points else "cpu"
    named = [dict(s) for s in named_points(device)]
    results, skipped, failed = [], [], []
    machine = machine_info(device)
    doc = {"command": command, "machine": machine, "peers": list(peers), "results": results, "skipped": skipped,
           "failed": failed}
    if machine.get("peak"):
        pk = machine["peak"]
        log(f"measured peak at {pk['threads']} threads ({pk['vector_bits']}-bit FMA): fp32 {pk['fp32_gflops']:.1f} "
            f"GFLOP/s, fp64 {pk['fp64_gflops']:.1f} GFLOP/s")
    if device.startswith("cuda"):
        log(f"{machine['gpu']}, CUDA {machine['cuda']}, cuDNN {machine['cudnn']}; torch ms: nn.* with TF32 off; "
            "TF32 ms: nn.* with torch's default flags")
    log(header(device, peers))
    for p in points:
        try:
            r = time_point(p, reps=reps, skip_slow=skip_slow and p.device == "cpu" and p.shape not in named,
                           peers=peers)
        except (AssertionError, RuntimeError) as e:  # a wrong result, a kernel's error, CUDA out of memory
            failed.append({**asdict(p), "error": f"{type(e).__name__}: {e}"})
            log(f"{_point_label(p)} | FAILED: {type(e).__name__}: {e}")
            if p.device.startswith("cuda"):
                torch.cuda.empty_cache()
            r = False
        if r is None:
            skipped.append(asdict(p))
            log(f"{_point_label(p)} | skipped: one nn.* forward > {SKIP_SECONDS:.0f} s")
        elif r:
            r["tsrnn_pct_peak"] = percent_of_peak(r, machine)
            results.append(r)
            log(format_row(r, peers))
        if out:
            write_json(doc, out)
    if out:
        log(f"wrote {out}")
    if failed:
        log(f"{len(failed)} point(s) failed (listed under 'failed'" + (f" in {out})" if out else ")"))
    if chart:
        write_chart(doc, chart)
        log(f"wrote {chart}")
    return doc


SERIES_COLORS = {("lstm", "forward"): "#1f77b4", ("lstm", "train"): "#aec7e8", ("gru", "forward"): "#d62728",
                 ("gru", "train"): "#ff9896"}


def chart_svg(doc: dict) -> str:
    """Speedup (nn.* time / tsrnn time, log scale) per shape and (cell, mode) as a small static SVG bar chart."""
    rows = doc["results"]
    shapes = list(dict.fromkeys((r["B"], r["T"], r["D"], r["H"]) for r in rows))
    series = [k for k in SERIES_COLORS if any((r["cell"], r["mode"]) == k for r in rows)]
    by_key = {(r["cell"], r["mode"], r["B"], r["T"], r["D"], r["H"]): r["speedup"] for r in rows}
    bar, gap, left, top, height, bottom = 14, 18, 56, 40, 260, 56
    width = left + max(1, len(shapes)) * (len(series) * bar + gap) + 150
    speedups = [v for v in by_key.values() if v > 0] or [1.0]
    lo, hi = min(0.5, min(speedups) / 1.2), max(2.0, max(speedups) * 1.2)

    def y_of(v):
        return top + height * (math.log(hi) - math.log(v)) / (math.log(hi) - math.log(lo))

    m = doc["machine"]
    title = (f"tsrnn vs nn.* — {m.get('gpu', m.get('processor', ''))}, torch {m.get('torch', '')}, "
             f"{m.get('threads', '')} threads, {m.get('date', '')[:10]}")
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{top + height + bottom}" '
           f'font-family="sans-serif" font-size="11">',
           f'<text x="{left}" y="20" font-size="13">{html.escape(title)}</text>']
    for tick in (0.5, 1, 2, 5, 10, 20, 50, 100):
        if lo <= tick <= hi:
            y = y_of(tick)
            dash = ' stroke-dasharray="4 3"' if tick == 1 else ""
            out.append(f'<line x1="{left}" x2="{width - 150}" y1="{y:.1f}" y2="{y:.1f}" stroke="#888"{dash}/>')
            out.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{tick}x</text>')
    for i, (B, T, D, H) in enumerate(shapes):
        x0 = left + gap / 2 + i * (len(series) * bar + gap)
        for j, (cell, mode) in enumerate(series):
            v = by_key.get((cell, mode, B, T, D, H))
            if v:
                y = y_of(v)
                out.append(f'<rect x="{x0 + j * bar:.1f}" y="{min(y, y_of(1)):.1f}" width="{bar - 2}" '
                           f'height="{abs(y_of(1) - y):.1f}" fill="{SERIES_COLORS[(cell, mode)]}">'
                           f'<title>{cell} {mode} B{B} T{T} D{D} H{H}: {v:.2f}x</title></rect>')
        cx = x0 + len(series) * bar / 2
        out.append(f'<text x="{cx:.1f}" y="{top + height + 16}" text-anchor="middle">B{B} T{T}</text>')
        out.append(f'<text x="{cx:.1f}" y="{top + height + 30}" text-anchor="middle">D{D} H{H}</text>')
    for j, (cell, mode) in enumerate(series):
        y = top + 10 + 18 * j
        out.append(f'<rect x="{width - 140}" y="{y - 9}" width="12" height="12" fill="{SERIES_COLORS[(cell, mode)]}"/>')
        out.append(f'<text x="{width - 122}" y="{y + 1}">{cell.upper()} {mode}</text>')
    out.append(f'<text x="14" y="{top + height / 2}" transform="rotate(-90 14 {top + height / 2})" '
               f'text-anchor="middle">speedup over nn.* (x)</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def write_chart(doc: dict, path: str) -> None:
    """The speedup chart as an SVG file (a few KB, no dependency); a path ending in .html gets the SVG in a page."""
    svg = chart_svg(doc)
    with open(path, "w") as f:
        f.write(f"<!doctype html>\n<html><body>\n{svg}</body></html>\n" if path.endswith(".html") else svg)


def markdown_table(doc: dict, named_only: bool = False) -> str:
    """The README's results table, generated from a benchmark JSON (named_only: just the device's named points,
    for a grid's JSON, which holds them too)."""
    m = doc["machine"]
    if named_only:
        device = "cuda" if "gpu" in m else "cpu"
        keep = [dict(s) for s in named_points(device)]
        shape = lambda r: {k: r[k] for k in ("B", "T", "D", "H")}  # noqa: E731
        doc = {**doc, "results": [r for r in doc["results"] if shape(r) in keep],
               "failed": [r for r in doc.get("failed", []) if shape(r) in keep]}
    command = f"Command: `{doc.get('command') or 'python -m tsrnn bench'}`."
    if "gpu" in m:
        lines = [f"GPU: {m['gpu']} ({m.get('sms', '?')} SMs), CUDA {m.get('cuda')}, cuDNN {m.get('cudnn')}, torch "
                 f"{m['torch']}, {m['date'][:10]}. nn.* fp32: TF32 off; nn.* default: torch's flags as found. "
                 f"{command}", "",
                 "| cell | mode | B | T | D | H | tsrnn ms | nn.* fp32 ms | speedup | nn.* default ms | speedup | "
                 "tsrnn GFLOP/s |",
                 "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
        for r in doc["results"]:
            lines.append(f"| {r['cell']} | {r['mode']} | {r['B']} | {r['T']} | {r['D']} | {r['H']} | "
                         f"{r['tsrnn_ms']:.3f} | {r['torch_ms']:.3f} | {r['speedup']:.2f}x | "
                         f"{r['torch_tf32_ms']:.3f} | {r['speedup_vs_tf32']:.2f}x | {r['tsrnn_gflops']:.1f} |")
    else:
        peak = m.get("peak")
        peak_text = (f" Measured fp32 peak {peak['fp32_gflops']:.1f} GFLOP/s at {peak['threads']} threads "
                     f"(scripts/peak_gflops.c)." if peak else "")
        ort = any("ort_ms" in r for r in doc["results"])
        ort_head, ort_rule = (" ORT ms | vs ORT |", " ---: | ---: |") if ort else ("", "")
        ort_note = (" ORT: the nn.* module exported to ONNX, run by ONNX Runtime "
                    f"{next(r['ort_version'] for r in doc['results'] if 'ort_version' in r)} (CPU provider, at "
                    "its faster of 1 thread and torch's count, pool spinning off), forward points only." if ort else "")
        lines = [f"Machine: {m['processor']}, {m['cores']} cores, torch {m['torch']}, {m['threads']} threads, "
                 f"{m['date'][:10]}.{peak_text} torch.mm GFLOP/s: torch.mm on the point's step product "
                 f"(B x H) @ (H x G*H), in the same run.{ort_note} {command}", "",
                 f"| cell | mode | B | T | D | H | tsrnn ms | nn.* ms | speedup |{ort_head} tsrnn GFLOP/s | "
                 "% of peak | torch.mm GFLOP/s |",
                 f"| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |{ort_rule} ---: | ---: | ---: |"]
        for r in doc["results"]:
            pct = r.get("tsrnn_pct_peak")
            ort_cells = ""
            if ort:
                ort_cells = (f" {r['ort_ms']:.3f} | {r['speedup_vs_ort']:.2f}x |" if "ort_ms" in r else " | |")
            mm = f"{r['mm_gflops']:.1f}" if "mm_gflops" in r else ""
            lines.append(f"| {r['cell']} | {r['mode']} | {r['B']} | {r['T']} | {r['D']} | {r['H']} | "
                         f"{r['tsrnn_ms']:.3f} | {r['torch_ms']:.3f} | {r['speedup']:.2f}x |{ort_cells} "
                         f"{r['tsrnn_gflops']:.1f} | {'' if pct is None else f'{pct:.0f}%'} | {mm} |")
    for f in doc.get("failed", []):
        lines.append(f"| {f['cell']} | {f['mode']} | {f['B']} | {f['T']} | {f['D']} | {f['H']} | failed: "
                     f"{f['error'][:80]} |")
    return "\n".join(lines)

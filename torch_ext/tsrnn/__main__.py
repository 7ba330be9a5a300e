"""Command line: ``python -m tsrnn forecast [options]``."""

from __future__ import annotations

import argparse
import sys



def _int_at_least(minimum: int, what: str):
    """An argparse type: an integer >= minimum; argparse names the option in its message."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected {what}, got {value}")
        return value

    return parse


_positive_int = _int_at_least(1, "a positive integer")
_nonnegative_int = _int_at_least(0, "an integer >= 0")


def _cells(text: str) -> list[str]:
    cells = [c.strip().lower() for c in text.split(",") if c.strip()]
    bad = [c for c in cells if c not in ("lstm", "gru")]
    if not cells or bad:
        raise argparse.ArgumentTypeError(f"--cells takes a comma list of lstm, gru; got {text!r}")
    return cells


def _backends(text: str) -> list[str]:
    backends = [b.strip().lower() for b in text.split(",") if b.strip()]
    if not backends or any(b not in ("tsrnn", "torch") for b in backends) or len(set(backends)) != len(backends):
        raise argparse.ArgumentTypeError(f"--backends takes a comma list of tsrnn, torch; got {text!r}")
    return backends


def _forecast(args: argparse.Namespace) -> int:
    from .app.job import JobConfig, JobError, run_job

    cfg = JobConfig(epochs=args.epochs, hidden=args.hidden, seq_len=args.seq_len, cells=tuple(args.cells),
                    backends=tuple(args.backends), csv=args.csv, column=args.column, out=args.out, seed=args.seed,
                    device=args.device, warmup_steps=args.warmup_steps)
    try:
        run_job(cfg)
    except JobError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


def _int_list(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a comma list of positive integers, got {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected a comma list of positive integers, got {text!r}")
    return values


def _modes(text: str) -> list[str]:
    modes = [m.strip() for m in text.split(",") if m.strip()]
    if not modes or any(m not in ("forward", "train") for m in modes):
        raise argparse.ArgumentTypeError(f"--modes takes a comma list of forward, train; got {text!r}")
    return modes


def _peers(text: str) -> list[str]:
    peers = [q.strip().lower() for q in text.split(",") if q.strip()]
    if not peers or any(q != "onnxruntime" for q in peers) or len(set(peers)) != len(peers):
        raise argparse.ArgumentTypeError(f"--peers takes a comma list of: onnxruntime; got {text!r}")
    return peers


def _bench(args: argparse.Namespace) -> int:
    import json

    from .app import bench

    if args.accuracy:
        from .app import accuracy

        doc = accuracy.run(accuracy.grid(cells=args.cells), command="python -m tsrnn bench " + " ".join(args.argv))
        if args.out:
            bench.write_json(doc, args.out)
            print(f"wrote {args.out}")
        print(accuracy.markdown_table(doc))
        return 0
    if args.table:
        with open(args.table) as f:
            doc = json.load(f)
        if doc.get("kind") == "accuracy":
            from .app import accuracy

            print(accuracy.markdown_table(doc))
            return 0
        print(bench.markdown_table(doc, named_only=args.named))
        if args.chart:
            bench.write_chart(doc, args.chart)
        return 0
    if args.H is None and args.B is None and args.T is None and not args.grid:
        points = [bench.Point(c, m, device=args.device, **shape) for c in args.cells for m in args.modes
                  for shape in bench.named_points(args.device)]
    else:
        points = bench.grid(cells=args.cells, modes=args.modes, Hs=args.H or bench.GRID_H, Bs=args.B or bench.GRID_B,
                            Ts=args.T or bench.GRID_T, device=args.device, named=args.grid)
    try:
        doc = bench.run(points, reps=args.reps, out=args.out, chart=args.chart, skip_slow=args.grid,
                        command="python -m tsrnn bench " + " ".join(args.argv), peers=args.peers)
    except RuntimeError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 1 if doc["failed"] else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tsrnn", description="tsrnn: fused LSTM/GRU kernels for PyTorch")
    sub = parser.add_subparsers(dest="command", required=True)
    fc = sub.add_parser(
        "forecast",
        help="the notebook's forecasting job on tsrnn and torch.nn side by side, with an HTML report",
        description="Trains the seed notebook's one-step-ahead forecaster (recurrent layer + linear head) for each "
        "cell on each backend from the same initial weights and batches, then writes metrics.json and a "
        "self-contained report.html (series, loss curves, epoch times, test predictions, rollout, gate heatmaps). "
        "The backends train alternately, one epoch each in turn, after an untimed warm-up; the speed ratio is the "
        "median of the per-epoch ratios.",
    )
    fc.add_argument("--epochs", type=_positive_int, default=40, help="training epochs per run (default 40)")
    fc.add_argument("--hidden", type=_positive_int, default=32, help="hidden size of the recurrent layer (default 32)")
    fc.add_argument("--seq-len", type=_positive_int, default=60,
                    help="window length: values fed to the model to predict the next one (default 60)")
    fc.add_argument("--cells", type=_cells, default=["lstm", "gru"], help="comma list of cells: lstm,gru (default both)")
    fc.add_argument("--backends", type=_backends, default=["tsrnn", "torch"],
                    help="comma list of backends: tsrnn (this project's kernels), torch (nn.LSTM/nn.GRU); "
                    "default both, which also reports their loss agreement and speed ratio")
    fc.add_argument("--csv", default=None, help="read the series from this CSV file (header row required) "
                    "instead of the notebook's toy series")
    fc.add_argument("--column", default=None, help="with --csv: the name of the column holding the series")
    fc.add_argument("--out", default="report", help="folder for report.html and metrics.json (default report/)")
    fc.add_argument("--seed", type=int, default=42,
                    help="seed of the toy series, the initial weights and the batch order (default 42)")
    fc.add_argument("--device", choices=["cpu", "cuda"], default="cpu",
                    help="train both backends on the CPU or on the GPU (default cpu)")
    fc.add_argument("--warmup-steps", type=_nonnegative_int, default=3,
                    help="untimed optimizer steps per backend, on a copy of the model, before the timed epochs "
                    "(default 3)")
    bn = sub.add_parser(
        "bench",
        help="time tsrnn against nn.LSTM / nn.GRU side by side (each point validated first)",
        description="Without shape options: the named points (CPU: notebook shape, B64 T100 H256/512, B1 T1/T60; "
        "CUDA: notebook shape, B64 T256 H512/1024). "
        "--grid: the full grid cell x H {32..1024} x B {1,64,256} x T {60,256} (D = H) plus the named points; "
        "on the CPU it leaves out grid points where one nn.* forward takes over 2 s. --H/--B/--T: a custom grid.",
    )
    bn.add_argument("--cells", type=_cells, default=["lstm", "gru"], help="comma list of cells (default lstm,gru)")
    bn.add_argument("--modes", type=_modes, default=["forward", "train"], help="comma list: forward,train")
    bn.add_argument("--grid", action="store_true", help="the full grid (filtered by --H/--B/--T when given)")
    bn.add_argument("--H", type=_int_list, default=None, help="hidden sizes, comma list (D = H)")
    bn.add_argument("--B", type=_int_list, default=None, help="batch sizes, comma list")
    bn.add_argument("--T", type=_int_list, default=None, help="sequence lengths, comma list")
    bn.add_argument("--device", choices=["cpu", "cuda"], default="cpu", help="where to run (default cpu)")
    bn.add_argument("--peers", type=_peers, default=[],
                    help="also time what a user would deploy instead, interleaved with tsrnn and nn.*: onnxruntime "
                    "(the nn.* module exported to ONNX, run by ONNX Runtime on the CPU; forward points; needs the "
                    "onnxruntime package)")
    bn.add_argument("--accuracy", action="store_true", help="instead of timing: every output's and gradient's error "
                    "against an fp64 truth, tsrnn's and nn.*'s, over rows T*B from 1 to ~10^6 (CPU, fp32)")
    bn.add_argument("--reps", type=_positive_int, default=20, help="timed repetitions per backend (default 20)")
    bn.add_argument("--out", default=None, help="write the results as JSON to this file")
    bn.add_argument("--chart", default=None, help="write a speedup chart (SVG; in an HTML page when the name ends in "
                    ".html) to this file; with --table, the chart of that JSON")
    bn.add_argument("--table", default=None, metavar="JSON", help="print the README's markdown table of a results "
                    "JSON (and with --chart write its chart) and exit")
    bn.add_argument("--named", action="store_true", help="with --table: only the named points of the JSON")
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)[1:]
    if args.command == "forecast":
        return _forecast(args)
    if args.command == "bench":
        return _bench(args)
    return 2


if __name__ == "__main__":
    sys.exit(main())

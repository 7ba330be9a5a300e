"""Where a tsrnn CPU call spends its time: perf's software clock sampled over a loop of module calls.

The VMs these kernels are tuned on expose no hardware counters (perf: `cycles` not supported), but perf's
`cpu-clock` event still samples every thread's instruction pointer, which is enough to split a call into its
phases (the register tile's FMA loop, the gate epilogue, packing, Python and dispatch, the pool's waits).

    python scripts/cpu_profile.py lstm forward 64 60 1 32 [--seconds 10] [--threads 2] [--top 15]
    python scripts/cpu_profile.py gru train 64 100 256 256

CELL MODE B T D H: the shape, as the bench's points (MODE forward runs under no_grad, train runs forward and
backward). It prints the share of samples per library and per function, and the hottest 256-byte regions of the
shim library's code (disassemble one with `objdump -d --start-address=ADDR ...` to see which loop it is).
The installed shim library is stripped; its symbols are read from the unstripped copy scikit-build leaves in
build/wheel (the same build when the GNU build IDs match, which this script checks). Needs `perf` and
kernel.perf_event_paranoid <= 2 (the default allows profiling your own processes).
"""

from __future__ import annotations

import argparse
import bisect
import collections
import os
import re
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _workload(args) -> None:
    """The profiled process: warm up, then call the module for args.seconds."""
    import time

    import torch

    import tsrnn

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    cls = tsrnn.LSTM if args.cell == "lstm" else tsrnn.GRU
    m = cls(args.D, args.H)
    x = torch.randn(args.T, args.B, args.D, requires_grad=args.mode == "train")

    def call():
        if args.mode == "forward":
            with torch.no_grad():
                m(x)
        else:
            y, _ = m(x)
            y.sum().backward()

    end = time.perf_counter() + args.warmup
    while time.perf_counter() < end:
        call()
    _perf_control("enable")  # perf record starts disabled (-D -1): only the timed loop is sampled
    n, end = 0, time.perf_counter() + args.seconds
    while time.perf_counter() < end:
        call()
        n += 1
    _perf_control("disable")
    print(f"PROFILE-CALLS {n}", flush=True)


def _perf_control(command: str) -> None:
    """Sends perf record a command through its control fifo and waits for the ack."""
    ctl, ack = os.environ["TSRNN_PERF_CTL"], os.environ["TSRNN_PERF_ACK"]
    with open(ctl, "w") as f:
        f.write(command + "\n")
    with open(ack) as f:
        f.readline()


def _build_id(path: str) -> str | None:
    out = subprocess.run(["readelf", "-n", path], capture_output=True, text=True).stdout
    m = re.search(r"Build ID: ([0-9a-f]+)", out)
    return m.group(1) if m else None


def _symbols(path: str):
    """Sorted (address, name) of every function of an unstripped library."""
    out = subprocess.run(["nm", "-C", "--defined-only", path], capture_output=True, text=True, check=True).stdout
    syms = []
    for line in out.splitlines():
        parts = line.split(" ", 2)
        if len(parts) == 3 and parts[1] in "tTwW":
            syms.append((int(parts[0], 16), parts[2]))
    return sorted(syms)


def _mix(library: str, addr: int) -> str:
    """The instruction mix of 256 bytes from addr: tells a tile's FMA loop (FMAs fed by broadcasts) from the gate
    epilogue (exp's vscalef, the reciprocal's vrcp14) at a glance."""
    out = subprocess.run(["objdump", "-d", "--no-show-raw-insn", f"--start-address={addr:#x}",
                          f"--stop-address={addr + 256:#x}", library], capture_output=True, text=True).stdout
    ops = collections.Counter()
    for line in out.splitlines():
        m = re.match(r"\s*[0-9a-f]+:\s+(\S+)", line)
        if m:
            op = m.group(1)
            ops["fma" if op.startswith(("vfmadd", "vfnmadd", "vfmsub")) else "bcast" if op.startswith("vbroadcast")
                else "rcp/scalef" if op.startswith(("vrcp", "vscalef")) else "other"] += 1
    return ", ".join(f"{k} {ops[k]}" for k in ("fma", "bcast", "rcp/scalef", "other") if ops[k])


def _report(data: str, sort: str, dso: str | None = None):
    """[(percent, key)] from perf report, self time."""
    cmd = ["perf", "report", "-i", data, "--no-children", "--sort", sort, "--stdio", "-g", "none"]
    if dso:
        cmd += ["--dsos", dso]
    out = subprocess.run(cmd, capture_output=True, text=True).stdout
    rows = []
    for line in out.splitlines():
        m = re.match(r"\s*([\d.]+)%\s+(.*\S)", line)
        if m:
            rows.append((float(m.group(1)), m.group(2)))
    return rows


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("cell", choices=["lstm", "gru"])
    p.add_argument("mode", choices=["forward", "train"])
    for name in "BTDH":
        p.add_argument(name, type=int)
    p.add_argument("--seconds", type=float, default=10.0, help="sampled time (default 10)")
    p.add_argument("--warmup", type=float, default=3.0, help="unsampled warm-up (default 3 s)")
    p.add_argument("--threads", type=int, default=2, help="torch's intra-op threads (default 2)")
    p.add_argument("--top", type=int, default=15, help="rows per table (default 15)")
    p.add_argument("--library", default=os.path.join(ROOT, "build", "wheel", "_tsrnn_ops.so"),
                   help="the unstripped shim library (default build/wheel/_tsrnn_ops.so)")
    p.add_argument("--workload", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if min(args.B, args.T, args.D, args.H, args.threads, args.top) < 1 or args.seconds <= 0 or args.warmup < 0:
        p.error("B, T, D, H, --threads and --top must be >= 1, --seconds > 0 and --warmup >= 0")
    if args.workload:
        _workload(args)
        return 0

    if shutil.which("perf") is None:
        sys.exit("cpu_profile: `perf` is not installed (apt-get install linux-tools-generic or linux-perf)")
    import tsrnn._ops as ops

    installed = ops.LIBRARY_PATH
    if not os.path.isfile(args.library):
        sys.exit(f"cpu_profile: {args.library} does not exist: run `make install` first (it builds into build/wheel)")
    if _build_id(installed) != _build_id(args.library):
        sys.exit(f"cpu_profile: {args.library} is not the build that is installed ({installed}): run `make install`")

    with tempfile.TemporaryDirectory() as tmp:
        data, ctl, ack = (os.path.join(tmp, n) for n in ("perf.data", "ctl", "ack"))
        os.mkfifo(ctl)
        os.mkfifo(ack)
        child = [sys.executable, os.path.abspath(__file__), *sys.argv[1:], "--workload"]
        env = dict(os.environ, TSRNN_PERF_CTL=ctl, TSRNN_PERF_ACK=ack)
        rec = subprocess.run(["perf", "record", "-q", "-e", "cpu-clock", "-F", "10000", "-D", "-1",
                              f"--control=fifo:{ctl},{ack}", "-o", data, "--", *child],
                             capture_output=True, text=True, env=env)
        if rec.returncode != 0 or not os.path.isfile(data):
            sys.exit(f"cpu_profile: perf record failed (rc {rec.returncode}):\n{rec.stderr.strip()}")
        calls = re.search(r"PROFILE-CALLS (\d+)", rec.stdout)
        print(f"{args.cell} {args.mode} B{args.B} T{args.T} D{args.D} H{args.H}, {args.threads} threads: "
              f"{calls.group(1) if calls else '?'} calls in {args.seconds:g} s (samples include the pool's idle "
              f"threads)")

        print("\nby library")
        for pct, key in _report(data, "dso")[: args.top]:
            print(f"{pct:7.2f}%  {key}")

        syms = _symbols(args.library)
        addrs = [a for a, _ in syms]
        lib = os.path.basename(installed)
        funcs, regions = collections.Counter(), collections.Counter()
        for pct, key in _report(data, "sym", lib):
            ip = key.split()[-1]
            if not ip.startswith("0x"):
                funcs[key.split("] ", 1)[-1]] += pct
                continue
            a = int(ip, 16)
            i = bisect.bisect_right(addrs, a) - 1
            if i < 0:
                funcs["?"] += pct
                continue
            start, name = syms[i]
            funcs[name] += pct
            regions[(name, start + (a - start) // 256 * 256)] += pct
        print(f"\nby function in {lib}")
        for name, pct in funcs.most_common(args.top):
            print(f"{pct:7.2f}%  {name[:110]}")
        print("\nhottest 256-byte regions (objdump -d --start-address=ADDR --stop-address=ADDR+256 "
              f"{os.path.relpath(args.library)})")
        for (name, addr), pct in regions.most_common(args.top):
            print(f"{pct:7.2f}%  {addr:#x}  {name[:40]:40s}  {_mix(args.library, addr)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

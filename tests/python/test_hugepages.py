"""Large CPU outputs can ask for transparent huge pages (shim/cpu_memory.cpp, empty): MADV_HUGEPAGE on the 2 MiB-aligned
inside of every new CPU tensor of at least 4 MiB, before the kernel writes it. TSRNN_CPU_HUGEPAGES=1 always,
0 never; unset, only where the kernel's THP defrag setting cannot make an advised fault stall on compaction
("defer" or "never").

Checked where the kernel shows it: the VmFlags of the mapping in /proc/self/smaps ("hg" = MADV_HUGEPAGE)."""

import os
import subprocess
import sys

import pytest
import torch

import tsrnn  # loads the ops

THP = "/sys/kernel/mm/transparent_hugepage/enabled"
pytestmark = pytest.mark.skipif(
    not (sys.platform.startswith("linux") and os.path.exists(THP) and os.path.exists("/proc/self/smaps")),
    reason="transparent huge pages are a Linux feature; this kernel has none",
)

HUGE = 2 << 20


def _flags_at(address: int) -> list[str]:
    """VmFlags of the mapping of this process that contains address."""
    with open("/proc/self/smaps") as f:
        inside = False
        for line in f:
            head = line.split()[0]
            if "-" in head and not head.endswith(":"):
                lo, hi = (int(v, 16) for v in head.split("-"))
                inside = lo <= address < hi
            elif inside and head == "VmFlags:":
                return line.split()[1:]
    raise AssertionError(f"no mapping contains {address:#x}")


def _inside(t: torch.Tensor) -> int:
    """First 2 MiB-aligned address inside t's data (t spans at least 4 MiB, so there is one)."""
    return (t.data_ptr() + HUGE - 1) // HUGE * HUGE


def _child_env(value: str) -> dict[str, str]:
    """The environment of a child Python that imports tsrnn as this process does (in the dev tree, conftest.py put
    torch_ext on this process's sys.path only), with TSRNN_CPU_HUGEPAGES set to value."""
    package_root = os.path.dirname(os.path.dirname(os.path.abspath(tsrnn.__file__)))
    env = dict(os.environ, TSRNN_CPU_HUGEPAGES=value)
    env["PYTHONPATH"] = os.pathsep.join([package_root] + [p for p in [env.get("PYTHONPATH")] if p])
    return env


def _big_outputs():
    """An LSTM call whose saved (100 x 64 x 384 floats, 9.8 MB) and y (3.3 MB) are large, h_n small."""
    T, B, H = 100, 64, 64
    g = torch.Generator().manual_seed(0)
    x = torch.randn(T, B, 8, generator=g)
    w = [torch.randn(4 * H, 8, generator=g), torch.randn(4 * H, H, generator=g)]
    y, h_n, c_n, saved = torch.ops.tsrnn.lstm.default(x, None, None, *w, None, None, None, False, False)
    assert saved.numel() * 4 >= 4 << 20
    return y, saved


def _advised_in_child(value: str | None) -> bool:
    """Whether a child process with TSRNN_CPU_HUGEPAGES = value (None: unset) advised its large saved tensor."""
    code = ("import torch, tsrnn, sys; sys.path.insert(0, sys.argv[1]); import test_hugepages as t; "
            "y, s = t._big_outputs(); print('hg' in t._flags_at(t._inside(s)))")
    env = _child_env(value or "")
    if value is None:
        env.pop("TSRNN_CPU_HUGEPAGES")
    out = subprocess.run([sys.executable, "-c", code, os.path.dirname(__file__)], env=env, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip().splitlines()[-1] == "True"


def _defrag_mode() -> str:
    try:
        with open("/sys/kernel/mm/transparent_hugepage/defrag") as f:
            text = f.read()
    except OSError:
        return ""
    return text[text.index("[") + 1:text.index("]")] if "[" in text and "]" in text else ""


def test_large_output_is_advised_when_asked():
    assert _advised_in_child("1"), "TSRNN_CPU_HUGEPAGES=1: the 9.8 MB saved tensor should be MADV_HUGEPAGE"
    assert not _advised_in_child("0")


def test_default_advises_only_where_a_fault_cannot_stall():
    mode = _defrag_mode()
    assert _advised_in_child(None) == (mode in ("defer", "never")), f"THP defrag is [{mode}]"


def test_results_do_not_depend_on_the_advice():
    code = (
        "import torch, tsrnn, sys; sys.path.insert(0, sys.argv[1]); import test_hugepages as t; "
        "y, s = t._big_outputs(); print('hg' in t._flags_at(t._inside(s))); torch.save((y, s), sys.argv[2])"
    )
    results = {}
    for value in ("0", "1"):
        path = os.path.join(os.environ.get("TMPDIR", "/tmp"), f"tsrnn_hugepages_{os.getpid()}_{value}.pt")
        out = subprocess.run([sys.executable, "-c", code, os.path.dirname(__file__), path], env=_child_env(value),
                             capture_output=True, text=True, timeout=300)
        assert out.returncode == 0, out.stderr
        advised = out.stdout.strip().splitlines()[-1]
        assert advised == ("True" if value == "1" else "False"), f"TSRNN_CPU_HUGEPAGES={value}: advised {advised}"
        results[value] = torch.load(path)
        os.remove(path)
    for a, b in zip(results["0"], results["1"], strict=True):
        assert torch.equal(a, b)


def test_bad_setting_is_refused():
    """A value other than 0 or 1 fails the CPU call with a message naming the variable, and no result comes back."""
    code = (
        "import torch, tsrnn\n"
        "x = torch.randn(3, 2, 4); w = [torch.randn(12, 4), torch.randn(12, 4)]\n"
        "try:\n"
        "    torch.ops.tsrnn.gru.default(x, None, *w, None, None, None, False, False, True)\n"
        "except RuntimeError as e:\n"
        "    print('refused:', e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], env=_child_env("yes"), capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr
    assert "refused:" in out.stdout
    assert "TSRNN_CPU_HUGEPAGES must be 0 or 1 (or unset), got 'yes'" in out.stdout

"""scripts/cpu_profile.py: the profile names the kernel's functions, and bad arguments fail with a message."""

import os
import shutil
import subprocess
import sys

import pytest

SCRIPT = os.path.join(os.path.dirname(__file__), "..", "..", "scripts", "cpu_profile.py")
LIBRARY = os.path.join(os.path.dirname(__file__), "..", "..", "build", "wheel", "_tsrnn_ops.so")


def _run(*args):
    return subprocess.run([sys.executable, SCRIPT, *args], capture_output=True, text=True, timeout=300)


def _perf_works() -> bool:
    if shutil.which("perf") is None:
        return False
    probe = subprocess.run(["perf", "record", "-q", "-e", "cpu-clock", "-o", os.devnull, "--", "true"],
                           capture_output=True)
    return probe.returncode == 0


@pytest.mark.parametrize("args", [("lstm", "forward", "0", "1", "1", "8"), ("gru", "train", "1", "1", "1", "8",
                                                                              "--seconds", "0"),
                                  ("lstm", "forward", "1", "1", "1", "8", "--top", "0")])
def test_bad_arguments_are_refused_with_a_message(args):
    r = _run(*args)
    assert r.returncode == 2
    assert "must be >= 1" in r.stderr


def test_a_library_that_is_not_the_installed_build_is_refused(tmp_path):
    other = tmp_path / "other.so"
    shutil.copy("/bin/true", other)  # an ELF with a build ID of its own
    r = _run("lstm", "forward", "1", "1", "1", "8", "--library", str(other))
    assert r.returncode != 0 and "is not the build that is installed" in r.stderr


@pytest.mark.skipif(not _perf_works(), reason="perf is missing or may not sample here (perf_event_paranoid)")
@pytest.mark.skipif(not os.path.isfile(LIBRARY), reason="no build/wheel: the package was not built from this checkout")
@pytest.mark.parametrize("cell,tile", [("lstm", "lstm_fwd_tile"), ("gru", "gru1_fwd_tile")])
def test_the_profile_of_a_forward_names_its_tile(cell, tile):
    r = _run(cell, "forward", "16", "20", "1", "32", "--seconds", "1", "--warmup", "0.5")
    assert r.returncode == 0, r.stderr
    assert "by function in _tsrnn_ops" in r.stdout
    lines = r.stdout.split("by function in", 1)[1].splitlines()
    assert any(tile in line for line in lines[1:4]), r.stdout  # the tile is among the hottest functions

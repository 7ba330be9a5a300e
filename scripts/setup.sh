#!/usr/bin/env bash
# Installs what `make test` and `make demo` need on a fresh project machine; quick when all is present.
# apt: a C/C++ toolchain, CMake, GoogleTest; for the reliability checks (Makefile: reliability-tests) valgrind,
# clang and libclang-rt-14-dev (Debian 12's clang 14 runtimes: libFuzzer, and ASan / UBSan for clang),
# chromium-headless-shell and fonts-dejavu-core (the test that renders the job's report as a browser does).
# pip: torch 2.13.0 (CPU wheel) only when no torch is installed, then numpy, pytest, scikit-build-core (the build
# backend, since we build with --no-build-isolation), plotly (the job's HTML report), tqdm (its progress bars),
# onnxruntime and onnx (the bench's optional peer, --peers onnxruntime, and its tests; neither depends on torch).
set -euo pipefail
PY=${PYTHON:-python3}

need_apt=()
for pkg in libgtest-dev cmake g++ make valgrind clang libclang-rt-14-dev chromium-headless-shell fonts-dejavu-core; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need_apt+=("$pkg")
done
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "setup: apt-get install ${need_apt[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}"
fi

if ! "$PY" -c "import torch" >/dev/null 2>&1; then
  echo "setup: no torch found; pip install torch==2.13.0 (the local CPU wheel)"
  "$PY" -m pip install -q torch==2.13.0
fi

need_pip=()
"$PY" -c "import numpy" >/dev/null 2>&1 || need_pip+=(numpy)
"$PY" -c "import pytest" >/dev/null 2>&1 || need_pip+=(pytest)
"$PY" -c "import scikit_build_core" >/dev/null 2>&1 || need_pip+=("scikit-build-core>=0.10")
"$PY" -c "import plotly" >/dev/null 2>&1 || need_pip+=(plotly)
"$PY" -c "import tqdm" >/dev/null 2>&1 || need_pip+=(tqdm)
"$PY" -c "import onnxruntime" >/dev/null 2>&1 || need_pip+=(onnxruntime)
"$PY" -c "import onnx" >/dev/null 2>&1 || need_pip+=(onnx)
if [ ${#need_pip[@]} -gt 0 ]; then
  echo "setup: pip install ${need_pip[*]}"
  "$PY" -m pip install -q "${need_pip[@]}"
fi
"$PY" -c "import torch, numpy; print(f'setup: torch {torch.__version__}, numpy {numpy.__version__}')"

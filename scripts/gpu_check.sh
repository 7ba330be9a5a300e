#!/usr/bin/env bash
# The GPU check: on a lent GPU machine (an H100 / H200 with nvcc, cmake, ninja, compute-sanitizer and a CUDA torch),
# from the repository root. Builds with the CUDA kernels for sm_90, installs the package, runs the CUDA GoogleTests,
# the CUDA pytest file and the parity suite, compute-sanitizer (memcheck, racecheck, synccheck) on small cases, and
# the CUDA benchmark; prints a summary table and writes JSON.
#
#   bash scripts/gpu_check.sh                      every stage: build install gtest pytest sanitize bench
#   bash scripts/gpu_check.sh build gtest          only these stages (a later stage rebuilds what it misses)
#
# Stages: build     cmake -G Ninja -DTSRNN_WITH_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90 into build/gpu
#         install   pip install --no-build-isolation --no-deps .  (falls back to the build/gpu shim for Python)
#         gtest     build/gpu/tsrnn_cuda_tests (cuda vs ref grid, grid-barrier path, graphs)
#         pytest    tests/python/test_cuda.py, then test_ops / test_modules / test_dropin
#         sanitize  compute-sanitizer memcheck, racecheck, synccheck on a few small gtest cases
#         bench     python -m tsrnn bench --device cuda
#
# Output: $OUT (the device tool's folder; build/gpu-out when unset): gpu_check.log (everything), gpu_check.json
# (device, date, versions, each stage's status and counts), gtest_cuda.json, bench_cuda.json; copies of the two
# JSON summaries go to bench/gpu/ in the tree (which does not travel back from the device machine: fetch them from
# $OUT). Every stage runs under a timeout inside an overall deadline (GPU_CHECK_DEADLINE seconds, default 570, to
# stay within the device tool's 600 s per call): a stage that would not fit is reported as skipped.
#
# GoogleTest: used from the system when found; otherwise built from build/googletest-src when that folder exists.
# The device machine has no GoogleTest and no network, so carry it from a project machine (libgtest-dev):
#     mkdir -p build && cp -r /usr/src/googletest build/googletest-src     # once, here; build/ is git-ignored
#     device run with carry=["build/googletest-src"]
# Without either, the gtest and sanitize stages are skipped (reported).
set -uo pipefail

ROOT=$(pwd)
if [ ! -f "$ROOT/CMakeLists.txt" ] || [ ! -d "$ROOT/kernels/cuda" ]; then
  echo "gpu_check: run from the repository root" >&2
  exit 2
fi
OUT=${OUT:-$ROOT/build/gpu-out}
mkdir -p "$OUT"
BUILD=$ROOT/build/gpu
PY=${PYTHON:-python3}
JOBS=${JOBS:-$(nproc)}
DEADLINE=$(( $(date +%s) + ${GPU_CHECK_DEADLINE:-570} ))
LOG=$OUT/gpu_check.log
STATUS=$OUT/.gpu_check_stages.tsv
: > "$LOG"
: > "$STATUS"
export PYTHONUNBUFFERED=1 CMAKE_BUILD_PARALLEL_LEVEL=$JOBS

STAGES=("$@")
[ ${#STAGES[@]} -eq 0 ] && STAGES=(build install gtest pytest sanitize bench)

say() { echo "[gpu_check $(date +%H:%M:%S)] $*" | tee -a "$LOG"; }

# run_logged NAME SECONDS CMD...: runs CMD under a timeout that also respects the deadline; output to the log and
# the terminal. Returns CMD's status (124 on timeout, 125 when no time was left to start it).
run_logged() {
  local name=$1 limit=$2
  shift 2
  local left=$(( DEADLINE - $(date +%s) - 15 ))
  if [ "$left" -lt 20 ]; then
    say "$name: skipped, the deadline is near"
    return 125
  fi
  [ "$limit" -gt "$left" ] && limit=$left
  say "$name: $* (timeout ${limit}s)"
  timeout --kill-after=10 "$limit" "$@" 2>&1 | tee -a "$LOG"
  return "${PIPESTATUS[0]}"
}

# record STAGE STATUS SECONDS NOTE
record() { printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" >> "$STATUS"; }

# ---- build ------------------------------------------------------------------------------------------------------

GTEST_ARGS=()
find_gtest() {
  if [ -f /usr/include/gtest/gtest.h ] || [ -f /usr/local/include/gtest/gtest.h ]; then
    say "GoogleTest: from the system"
    return 0
  fi
  local prefix=$ROOT/build/gtest-install
  if [ ! -f "$prefix/include/gtest/gtest.h" ] && [ -d "$ROOT/build/googletest-src" ]; then
    say "GoogleTest: building build/googletest-src into build/gtest-install"
    run_logged gtest-build 240 bash -c "cmake -S '$ROOT/build/googletest-src' -B '$ROOT/build/gtest-build' -G Ninja \
        -DCMAKE_BUILD_TYPE=Release -DBUILD_GMOCK=OFF -DINSTALL_GTEST=ON -DCMAKE_POSITION_INDEPENDENT_CODE=ON \
        -DCMAKE_INSTALL_PREFIX='$prefix' >/dev/null && cmake --build '$ROOT/build/gtest-build' -j $JOBS >/dev/null \
        && cmake --install '$ROOT/build/gtest-build' >/dev/null" || return 1
  fi
  if [ -f "$prefix/include/gtest/gtest.h" ]; then
    GTEST_ARGS=(-DGTEST_ROOT="$prefix" -DCMAKE_PREFIX_PATH="$prefix")
    return 0
  fi
  say "GoogleTest: not found (no system copy, no build/googletest-src): the CUDA gtests are not built"
  return 1
}

HAVE_GTEST=0
stage_build() {
  local t0=$SECONDS tests=OFF
  find_gtest && tests=ON && HAVE_GTEST=1
  local common=(-G Ninja -DCMAKE_BUILD_TYPE=Release -DTSRNN_WITH_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90
                -DTSRNN_BUILD_TESTS=$tests -DPython3_EXECUTABLE="$(command -v "$PY")" "${GTEST_ARGS[@]}")
  if run_logged configure 180 cmake -S "$ROOT" -B "$BUILD" "${common[@]}" -DTSRNN_BUILD_SHIM=ON; then
    SHIM=ON
  else
    say "configure with the shim failed (see above); retrying without it so the kernels and gtests still build"
    rm -rf "$BUILD"
    run_logged configure-noshim 180 cmake -S "$ROOT" -B "$BUILD" "${common[@]}" -DTSRNN_BUILD_SHIM=OFF \
      || { record build FAIL $((SECONDS - t0)) "cmake configure failed"; return 1; }
    SHIM=OFF
  fi
  if run_logged build 420 cmake --build "$BUILD" -j "$JOBS"; then
    record build OK $((SECONDS - t0)) "shim=$SHIM gtest=$tests"
  else
    record build FAIL $((SECONDS - t0)) "cmake --build failed"
    return 1
  fi
}

ensure_build() {
  [ -x "$BUILD/tsrnn_cuda_tests" ] || [ -f "$BUILD/_tsrnn_ops.so" ] || stage_build
  [ -x "$BUILD/tsrnn_cuda_tests" ] && HAVE_GTEST=1
  return 0
}

# ---- install / python environment ----------------------------------------------------------------------------

py_has_cuda_kernels() {
  "$PY" - <<'EOF' >/dev/null 2>&1
import torch, tsrnn
assert torch.cuda.is_available()
assert torch._C._dispatch_has_kernel_for_dispatch_key("tsrnn::lstm", "CUDA")
EOF
}

stage_install() {
  local t0=$SECONDS
  if run_logged pip-install 420 "$PY" -m pip install --no-build-isolation --no-deps \
       --config-settings=cmake.define.TSRNN_WITH_CUDA=ON --config-settings=cmake.define.CMAKE_CUDA_ARCHITECTURES=90 . \
     && py_has_cuda_kernels; then
    record install OK $((SECONDS - t0)) "pip install: tsrnn::lstm has a CUDA kernel"
    return 0
  fi
  record install FAIL $((SECONDS - t0)) "pip install failed or installed no CUDA kernels"
  return 1
}

# Python sees a tsrnn with CUDA kernels: the installed one, or the dev tree with build/gpu's shim.
ensure_python() {
  py_has_cuda_kernels && return 0
  ensure_build
  if [ -f "$BUILD/_tsrnn_ops.so" ]; then
    export TSRNN_OPS_LIBRARY=$BUILD/_tsrnn_ops.so PYTHONPATH=$ROOT/torch_ext${PYTHONPATH:+:$PYTHONPATH}
    "$PY" -m pip uninstall -y -q tsrnn >/dev/null 2>&1
    py_has_cuda_kernels && { say "python: using the dev tree with $TSRNN_OPS_LIBRARY"; return 0; }
  fi
  say "python: no tsrnn with CUDA kernels could be loaded"
  return 1
}

# ---- tests ---------------------------------------------------------------------------------------------------------

stage_gtest() {
  local t0=$SECONDS
  ensure_build
  if [ ! -x "$BUILD/tsrnn_cuda_tests" ]; then
    record gtest SKIP 0 "no tsrnn_cuda_tests (GoogleTest missing?)"
    return 0
  fi
  run_logged gtest 420 "$BUILD/tsrnn_cuda_tests" --gtest_brief=1 --gtest_output=json:"$OUT/gtest_cuda.json"
  local rc=$?
  local counts
  counts=$("$PY" - "$OUT/gtest_cuda.json" <<'EOF' 2>/dev/null
import json, sys
d = json.load(open(sys.argv[1]))
skipped = sum(1 for s in d.get("testsuites", []) for t in s.get("testsuite", []) if t.get("result") == "SKIPPED")
print(f"{d.get('tests', 0)} tests, {d.get('failures', 0)} failed, {skipped} skipped")
EOF
)
  record gtest "$([ $rc -eq 0 ] && echo OK || echo FAIL)" $((SECONDS - t0)) "${counts:-rc $rc}"
}

stage_pytest() {
  local t0=$SECONDS
  if ! ensure_python; then
    record pytest FAIL 0 "no tsrnn with CUDA kernels importable"
    return 1
  fi
  run_logged pytest-cuda 360 "$PY" -m pytest -q -ra -p no:cacheprovider tests/python/test_cuda.py
  local rc1=$?
  local s1
  s1=$(grep -E "^(=+ )?[0-9]+ (passed|failed|skipped|error)" "$LOG" | tail -1)
  local parity=()
  for f in test_ops.py test_modules.py test_dropin.py; do [ -f "tests/python/$f" ] && parity+=("tests/python/$f"); done
  local xdist=()
  "$PY" -c "import xdist" >/dev/null 2>&1 && xdist=(-n 8)
  run_logged pytest-parity 300 "$PY" -m pytest -q -ra -p no:cacheprovider "${xdist[@]}" "${parity[@]}"
  local rc2=$?
  local s2
  s2=$(grep -E "^(=+ )?[0-9]+ (passed|failed|skipped|error)" "$LOG" | tail -1)
  record pytest-cuda "$([ $rc1 -eq 0 ] && echo OK || echo FAIL)" $((SECONDS - t0)) "$s1"
  record pytest-parity "$([ $rc2 -eq 0 ] && echo OK || echo FAIL)" $((SECONDS - t0)) "$s2"
}

stage_sanitize() {
  local t0=$SECONDS
  ensure_build
  if [ ! -x "$BUILD/tsrnn_cuda_tests" ]; then
    record sanitize SKIP 0 "no tsrnn_cuda_tests to drive compute-sanitizer"
    return 0
  fi
  if ! command -v compute-sanitizer >/dev/null; then
    record sanitize SKIP 0 "compute-sanitizer not on PATH"
    return 0
  fi
  # small cases: one-block path with lengths and the padded layout, the notebook shape, the grid-barrier path
  # (H = 520: a short last block, B = 70: several batch groups), each cell
  local filter='Grid/CudaVsRef.ForwardAndBackwardMatch/*_T5_B4_D1_H33_reverse_lengths_padded_full'
  filter+=':GridBarrier/CudaVsRef.ForwardAndBackwardMatch/*_T4_B70_D5_H520_forward_lengths_timemajor_full'
  filter+=':Grid/CudaVsRefBroadcast.*'
  local all_ok=1 notes=""
  for tool in memcheck racecheck synccheck; do
    run_logged "sanitize-$tool" 200 compute-sanitizer --tool "$tool" --error-exitcode 99 \
      "$BUILD/tsrnn_cuda_tests" --gtest_brief=1 --gtest_filter="$filter"
    local rc=$?
    notes+="$tool rc=$rc; "
    [ $rc -ne 0 ] && all_ok=0
  done
  record sanitize "$([ $all_ok -eq 1 ] && echo OK || echo FAIL)" $((SECONDS - t0)) "$notes"
}

stage_bench() {
  local t0=$SECONDS
  if ! ensure_python; then
    record bench FAIL 0 "no tsrnn with CUDA kernels importable"
    return 1
  fi
  if ! "$PY" -m tsrnn bench --help 2>/dev/null | grep -q -- "--device"; then
    record bench SKIP 0 "python -m tsrnn bench has no --device option"
    return 0
  fi
  run_logged bench 300 "$PY" -m tsrnn bench --device cuda --out "$OUT/bench_cuda.json"
  local rc=$?
  record bench "$([ $rc -eq 0 ] && echo OK || echo FAIL)" $((SECONDS - t0)) "rc $rc"
}

# ---- run ---------------------------------------------------------------------------------------------------------

say "stages: ${STAGES[*]}; out: $OUT; jobs: $JOBS"
{ nvidia-smi -L; nvcc --version | tail -2; cmake --version | head -1
  "$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'available', torch.cuda.is_available())"
} 2>&1 | tee -a "$LOG"
for stage in "${STAGES[@]}"; do
  case $stage in
    build | install | gtest | pytest | sanitize | bench) "stage_$stage" ;;
    *) say "unknown stage '$stage' (build install gtest pytest sanitize bench)"; exit 2 ;;
  esac
done

# ---- summary -------------------------------------------------------------------------------------------------------

"$PY" - "$STATUS" "$OUT" "$ROOT" "${STAGES[*]}" <<'EOF' 2>&1 | tee -a "$LOG"
import datetime, json, os, platform, re, shutil, subprocess, sys

status_file, out, root, asked = sys.argv[1:5]
stages = []
for line in open(status_file):
    name, status, seconds, note = (line.rstrip("\n").split("\t") + ["", "", "", ""])[:4]
    stages.append({"stage": name, "status": status, "seconds": int(seconds or 0), "note": note})

def cmd(*args):
    try:
        return subprocess.run(args, capture_output=True, text=True, timeout=30).stdout.strip()
    except Exception as e:  # noqa: BLE001
        return f"unavailable ({e})"

info = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "host": platform.node(), "gpu": cmd("nvidia-smi", "--query-gpu=name,driver_version,memory.total",
                                            "--format=csv,noheader"),
        "nvcc": (cmd("nvcc", "--version").splitlines() or [""])[-1], "stages_asked": asked.split()}
try:
    import torch
    info["torch"] = torch.__version__
    info["torch_cuda"] = torch.version.cuda
    if torch.cuda.is_available():
        p = torch.cuda.get_device_properties(0)
        info["device"] = {"name": p.name, "sms": p.multi_processor_count, "memory_gib": round(p.total_memory / 2**30, 1),
                          "capability": f"{p.major}.{p.minor}"}
except Exception as e:  # noqa: BLE001
    info["torch"] = f"unavailable ({e})"
doc = {**info, "stages": stages}
bench = os.path.join(out, "bench_cuda.json")
if os.path.exists(bench):
    with open(bench) as f:
        doc["bench"] = json.load(f)
path = os.path.join(out, "gpu_check.json")
with open(path, "w") as f:
    json.dump(doc, f, indent=1)
stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
gpu = re.sub(r"[^A-Za-z0-9]+", "-", info.get("device", {}).get("name", "gpu")).strip("-").lower()
keep = os.path.join(root, "bench", "gpu")
os.makedirs(keep, exist_ok=True)
shutil.copy(path, os.path.join(keep, f"gpu_check-{gpu}-{stamp}.json"))
if os.path.exists(bench):
    shutil.copy(bench, os.path.join(keep, f"bench-cuda-{gpu}-{stamp}.json"))

print()
print(f"GPU check on {info.get('gpu')} ({info['date']}), torch {info.get('torch')}, {info['nvcc']}")
print(f"{'stage':<15} {'status':<6} {'s':>5}  note")
for s in stages:
    print(f"{s['stage']:<15} {s['status']:<6} {s['seconds']:>5}  {s['note']}")
if "bench" in doc:
    print("\nbench (tsrnn vs nn.* on cuda):")
    for r in doc["bench"].get("results", []):
        print(f"  {r['cell']:<5} {r['mode']:<8} B{r['B']:<4} T{r['T']:<4} D{r['D']:<5} H{r['H']:<5} "
              f"tsrnn {r['tsrnn_ms']:.3f} ms  torch {r['torch_ms']:.3f} ms  speedup {r['speedup']:.2f}x")
print(f"\nwrote {path} and copies under bench/gpu/")
sys.exit(0 if all(s["status"] in ("OK", "SKIP") for s in stages) else 1)
EOF
exit "${PIPESTATUS[0]}"

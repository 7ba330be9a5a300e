#!/usr/bin/env bash
# The GPU check: one call on a lent GPU machine (H100 / H200, 16 cores, torch 2.11+cu130, nvcc 13, cmake, ninja,
# compute-sanitizer; no GoogleTest, no network), from the repository root. Fits one device call: every stage runs
# under its own timeout inside an overall deadline (GPU_CHECK_DEADLINE seconds, default 420), in order of risk, and
# writes its result as soon as it ends, so a hang or a crash keeps what came before.
#
#   bash scripts/gpu_check.sh                 every stage
#   bash scripts/gpu_check.sh build gtest     only these (build runs first whenever a later stage needs it)
#
# Stages: facts           nvidia-smi, nvcc, torch, cuDNN, SM count
#         build           the CUDA GoogleTest binary and the shim only (cmake -G Ninja, sm_90) into build/gpu
#         gtest-critical  the riskiest CUDA GoogleTests: grid barrier, CUDA graphs, the stepwise takeover, error state
#         gtest           the rest of the CUDA GoogleTests, in parallel shards
#         pytest          tests/python/test_cuda.py against the dev tree (no pip install)
#         bench           python -m tsrnn bench --device cuda (each point written as soon as it is timed)
#         sanitize        compute-sanitizer memcheck, racecheck, synccheck on a few small cases
#         forecast        the main job on the GPU, 3 epochs: python -m tsrnn forecast --device cuda (needs plotly,
#                         which the GPU image lacks: carry its wheel in .whl, see the device tool's README)
#
# Output in $OUT (the device tool's folder; build/gpu-out when unset), at most 6 files: gpu_check.log (everything),
# gpu_check.json (facts, each stage's status, time and counts; rewritten after every stage), gtest_critical.json,
# gtest_cuda.json, pytest_cuda.xml, bench_cuda.json.
#
# GoogleTest: from the system when found, else built from build/googletest-src. The device machine has none, so
# carry it from a project machine (libgtest-dev):
#     mkdir -p build && cp -r /usr/src/googletest build/googletest-src      # once, here; build/ is git-ignored
#     device run: bash scripts/gpu_check.sh, with carry=["build/googletest-src"]
# Without a GPU (a project machine) every stage that needs one records SKIP "no GPU", so the script can be
# dry-run here: PYTHON=/path/to/python-with-a-CUDA-torch bash scripts/gpu_check.sh
set -uo pipefail

ROOT=$(pwd)
if [ ! -f "$ROOT/CMakeLists.txt" ] || [ ! -d "$ROOT/kernels/cuda" ]; then
  echo "gpu_check: run from the repository root" >&2
  exit 2
fi
OUT=${OUT:-$ROOT/build/gpu-out}
BUILD=$ROOT/build/gpu
WORK=$BUILD/check # per-stage logs and shard results (not returned)
PY=${PYTHON:-python3}
JOBS=${JOBS:-$(nproc)}
DEADLINE=$(( $(date +%s) + ${GPU_CHECK_DEADLINE:-420} ))
LOG=$OUT/gpu_check.log
STATUS=$WORK/stages.tsv
mkdir -p "$OUT" "$WORK"
: > "$LOG"
: > "$STATUS"
# TORCH_CUDA_ARCH_LIST: read by torch's own CMake and extension builders; ours sets CMAKE_CUDA_ARCHITECTURES=90
export PYTHONUNBUFFERED=1 CMAKE_BUILD_PARALLEL_LEVEL=$JOBS TORCH_CUDA_ARCH_LIST=9.0
# the dev tree's package with this build's shim
export TSRNN_OPS_LIBRARY=$BUILD/_tsrnn_ops.so PYTHONPATH=$ROOT/torch_ext${PYTHONPATH:+:$PYTHONPATH}

STAGES=("$@")
[ ${#STAGES[@]} -eq 0 ] && STAGES=(facts build gtest-critical gtest pytest bench sanitize forecast)

say() { echo "[gpu_check $(date +%H:%M:%S)] $*" | tee -a "$LOG"; }

# record STAGE STATUS SECONDS NOTE, then rewrite gpu_check.json
record() {
  printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" >> "$STATUS"
  say "$1: $2 ($3 s) $4"
  summarize > /dev/null
}

# run_logged NAME SECONDS CMD...: CMD under a timeout that also respects the deadline; output to $WORK/NAME.log,
# the main log and the terminal. Returns CMD's status (124 on timeout, 125 when no time was left to start it).
run_logged() {
  local name=$1 limit=$2
  shift 2
  local left=$(( DEADLINE - $(date +%s) - 10 ))
  if [ "$left" -lt 15 ]; then
    say "$name: not started, the deadline is near"
    return 125
  fi
  [ "$limit" -gt "$left" ] && limit=$left
  say "$name: $* (timeout ${limit}s)"
  timeout --kill-after=10 "$limit" "$@" > >(tee "$WORK/$name.log" | tee -a "$LOG") 2>&1
  local rc=$?
  wait # the tee of the process substitution
  [ $rc -eq 124 ] && say "$name: timed out after ${limit}s"
  return $rc
}

rc_status() { case $1 in 0) echo OK ;; 124) echo TIMEOUT ;; 125) echo SKIP ;; *) echo FAIL ;; esac; }

HAVE_GPU=0
if command -v nvidia-smi > /dev/null && nvidia-smi -L > /dev/null 2>&1 \
   && "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" > /dev/null 2>&1; then
  HAVE_GPU=1
fi

# ---- stages -----------------------------------------------------------------------------------------------------

stage_facts() {
  local t0=$SECONDS
  { nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv 2>&1 || echo "no nvidia-smi"
    nvcc --version 2>&1 | tail -2
    cmake --version 2>&1 | head -1
    ninja --version 2>&1 | sed 's/^/ninja /'
    command -v compute-sanitizer > /dev/null && echo "compute-sanitizer: $(command -v compute-sanitizer)"
    "$PY" - <<'EOF'
import torch
print("torch", torch.__version__, "cuda", torch.version.cuda, "cudnn", torch.backends.cudnn.version(),
      "available", torch.cuda.is_available())
if torch.cuda.is_available():
    p = torch.cuda.get_device_properties(0)
    print(f"device {p.name}: {p.multi_processor_count} SMs, {p.total_memory / 2**30:.1f} GiB, capability "
          f"{p.major}.{p.minor}")
EOF
  } 2>&1 | tee "$WORK/facts.log" | tee -a "$LOG"
  record facts "$([ $HAVE_GPU -eq 1 ] && echo OK || echo SKIP)" $((SECONDS - t0)) \
    "$([ $HAVE_GPU -eq 1 ] && echo "GPU visible" || echo "no GPU: the stages that need one are skipped")"
}

GTEST_ARGS=()
find_gtest() {
  if [ -f /usr/include/gtest/gtest.h ] || [ -f /usr/local/include/gtest/gtest.h ]; then
    say "GoogleTest: from the system"
    return 0
  fi
  local prefix=$ROOT/build/gtest-install
  if [ ! -f "$prefix/include/gtest/gtest.h" ] && [ -d "$ROOT/build/googletest-src" ]; then
    run_logged gtest-build 150 bash -c "cmake -S '$ROOT/build/googletest-src' -B '$ROOT/build/gtest-build' -G Ninja \
        -DCMAKE_BUILD_TYPE=Release -DBUILD_GMOCK=OFF -DINSTALL_GTEST=ON -DCMAKE_POSITION_INDEPENDENT_CODE=ON \
        -DCMAKE_INSTALL_PREFIX='$prefix' > /dev/null && cmake --build '$ROOT/build/gtest-build' > /dev/null \
        && cmake --install '$ROOT/build/gtest-build' > /dev/null" || return 1
  fi
  if [ -f "$prefix/include/gtest/gtest.h" ]; then
    GTEST_ARGS=(-DGTEST_ROOT="$prefix" -DCMAKE_PREFIX_PATH="$prefix")
    return 0
  fi
  say "GoogleTest: none (no system copy, no build/googletest-src): the CUDA GoogleTests are not built"
  return 1
}

BUILT=0
stage_build() {
  local t0=$SECONDS tests=OFF targets=(tsrnn_shim)
  find_gtest && tests=ON && targets+=(tsrnn_cuda_tests)
  if ! run_logged configure 120 cmake -S "$ROOT" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release \
       -DTSRNN_WITH_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90 -DTSRNN_BUILD_SHIM=ON -DTSRNN_BUILD_TESTS=$tests \
       -DPython3_EXECUTABLE="$(command -v "$PY")" "${GTEST_ARGS[@]}"; then
    record build FAIL $((SECONDS - t0)) "cmake configure failed (see configure in the log)"
    return 1
  fi
  run_logged build 300 cmake --build "$BUILD" -j "$JOBS" --target "${targets[@]}"
  local rc=$?
  [ $rc -eq 0 ] && BUILT=1
  record build "$(rc_status $rc)" $((SECONDS - t0)) "targets: ${targets[*]}"
}

need_build() { # for every stage after build: build if nobody did (a subset of stages was asked for)
  [ $BUILT -eq 1 ] || [ -f "$BUILD/_tsrnn_ops.so" ] || stage_build
  [ -f "$BUILD/_tsrnn_ops.so" ]
}

need_gpu() { # STAGE: records SKIP and fails when there is no GPU or no build
  if [ $HAVE_GPU -ne 1 ]; then record "$1" SKIP 0 "no GPU"; return 1; fi
  if ! need_build; then record "$1" SKIP 0 "nothing built"; return 1; fi
  return 0
}

# counts of a GoogleTest JSON: "N tests, F failed, S skipped"
gtest_counts() {
  "$PY" - "$@" <<'EOF' 2>/dev/null
import json, sys
tests = failures = skipped = 0
for path in sys.argv[1:]:
    d = json.load(open(path))
    tests += d.get("tests", 0)
    failures += d.get("failures", 0)
    skipped += sum(1 for s in d.get("testsuites", []) for t in s.get("testsuite", []) if t.get("result") == "SKIPPED")
print(f"{tests} tests, {failures} failed, {skipped} skipped")
EOF
}

CRITICAL='GridBarrier/*:Grid/CudaGraph.*:Grid/CudaLargeHidden.*:CudaErrorState.*'

stage_gtest_critical() {
  local t0=$SECONDS
  need_gpu gtest-critical || return 0
  [ -x "$BUILD/tsrnn_cuda_tests" ] || { record gtest-critical SKIP 0 "no tsrnn_cuda_tests (no GoogleTest)"; return 0; }
  run_logged gtest-critical 120 "$BUILD/tsrnn_cuda_tests" --gtest_brief=1 --gtest_filter="$CRITICAL" \
    --gtest_output=json:"$OUT/gtest_critical.json"
  local rc=$?
  record gtest-critical "$(rc_status $rc)" $((SECONDS - t0)) "$(gtest_counts "$OUT/gtest_critical.json" || echo "rc $rc")"
}

stage_gtest() {
  local t0=$SECONDS shards=4
  need_gpu gtest || return 0
  [ -x "$BUILD/tsrnn_cuda_tests" ] || { record gtest SKIP 0 "no tsrnn_cuda_tests (no GoogleTest)"; return 0; }
  rm -f "$WORK"/gtest-shard-*.json
  # shards side by side: the reference the tests compare with runs on the CPU cores
  run_logged gtest 150 bash -c "for i in \$(seq 0 $((shards - 1))); do
      GTEST_TOTAL_SHARDS=$shards GTEST_SHARD_INDEX=\$i '$BUILD/tsrnn_cuda_tests' --gtest_brief=1 \
        --gtest_filter='-$CRITICAL' --gtest_output=json:'$WORK'/gtest-shard-\$i.json &
    done; rc=0; for j in \$(jobs -p); do wait \$j || rc=1; done; exit \$rc"
  local rc=$?
  "$PY" - "$OUT/gtest_cuda.json" "$WORK"/gtest-shard-*.json <<'EOF' 2>/dev/null
import json, sys
out, parts = sys.argv[1], sys.argv[2:]
merged = {"tests": 0, "failures": 0, "disabled": 0, "errors": 0, "testsuites": [], "shards": len(parts)}
for path in parts:
    d = json.load(open(path))
    for k in ("tests", "failures", "disabled", "errors"):
        merged[k] += d.get(k, 0)
    merged["testsuites"] += d.get("testsuites", [])
json.dump(merged, open(out, "w"), indent=1)
EOF
  record gtest "$(rc_status $rc)" $((SECONDS - t0)) "$(gtest_counts "$OUT/gtest_cuda.json" || echo "rc $rc")"
}

pytest_counts() { grep -E "^(=+ )?[0-9]+ (passed|failed|skipped|error)" "$WORK/$1.log" | tail -1 | tr -d '='; }

stage_pytest() {
  local t0=$SECONDS
  need_gpu pytest || return 0
  local xdist=()
  "$PY" -c "import xdist" > /dev/null 2>&1 && xdist=(-n 4)
  run_logged pytest 150 "$PY" -m pytest -q -ra -p no:cacheprovider "${xdist[@]}" \
    --junitxml="$OUT/pytest_cuda.xml" tests/python/test_cuda.py
  local rc=$?
  record pytest "$(rc_status $rc)" $((SECONDS - t0)) "$(pytest_counts pytest)"
}

stage_bench() {
  local t0=$SECONDS
  need_gpu bench || return 0
  run_logged bench 150 "$PY" -m tsrnn bench --device cuda --out "$OUT/bench_cuda.json"
  local rc=$?
  local counts="no JSON written"
  [ -f "$OUT/bench_cuda.json" ] && counts=$("$PY" -c "import json, sys; d = json.load(open(sys.argv[1])); \
print(len(d['results']), 'points timed,', len(d['failed']), 'failed')" "$OUT/bench_cuda.json")
  record bench "$(rc_status $rc)" $((SECONDS - t0)) "$counts"
}

stage_sanitize() {
  local t0=$SECONDS
  need_gpu sanitize || return 0
  [ -x "$BUILD/tsrnn_cuda_tests" ] || { record sanitize SKIP 0 "no tsrnn_cuda_tests (no GoogleTest)"; return 0; }
  command -v compute-sanitizer > /dev/null || { record sanitize SKIP 0 "compute-sanitizer not on PATH"; return 0; }
  # one small case per path: one-block (lengths, padded layout), grid barrier (H = 520: a short last block; B = 70:
  # several batch groups), stepwise, a captured graph with lengths
  local filter='Grid/CudaVsRef.ForwardAndBackwardMatch/*_T5_B4_D1_H33_reverse_lengths_padded_full'
  filter+=':GridBarrier/CudaVsRef.ForwardAndBackwardMatch/*_T4_B70_D5_H520_forward_lengths_timemajor_full'
  filter+=':Stepwise/CudaVsRefStepwise.ForwardAndBackwardMatch/*_T5_B4_D1_H33_reverse_lengths_padded_full'
  filter+=':Grid/CudaGraph.CaptureAndReplay/*_H32_lengths'
  local notes="" worst=0
  for tool in memcheck racecheck synccheck; do
    run_logged "sanitize-$tool" 90 compute-sanitizer --tool "$tool" --error-exitcode 99 \
      "$BUILD/tsrnn_cuda_tests" --gtest_brief=1 --gtest_filter="$filter"
    local rc=$?
    notes+="$tool $(rc_status $rc) ($(grep -o 'ERROR SUMMARY: [0-9]* error' "$WORK/sanitize-$tool.log" | tail -1)); "
    [ $rc -ne 0 ] && worst=$rc
  done
  record sanitize "$(rc_status $worst)" $((SECONDS - t0)) "$notes"
}

stage_forecast() {
  local t0=$SECONDS
  need_gpu forecast || return 0
  "$PY" -c "import plotly, tqdm" > /dev/null 2>&1 || { record forecast SKIP 0 "plotly or tqdm not importable"; return 0; }
  run_logged forecast 90 "$PY" -m tsrnn forecast --device cuda --epochs 3 --out "$WORK/forecast"
  local rc=$?
  record forecast "$(rc_status $rc)" $((SECONDS - t0)) "$(grep -E 'training speed' "$WORK/forecast.log" | \
    sed -E 's/.*training speed torch\/tsrnn ([0-9.]+x).*/\1/' | tr '\n' ' ')"
}

# ---- summary: gpu_check.json, and a table on the terminal ----------------------------------------------------------

summarize() {
  "$PY" - "$STATUS" "$OUT" "$WORK/facts.log" "${STAGES[*]}" <<'EOF' 2>&1
import datetime, json, os, platform, subprocess, sys

status_file, out, facts_log, asked = sys.argv[1:5]
stages = []
for line in open(status_file):
    name, status, seconds, note = (line.rstrip("\n").split("\t") + ["", "", "", ""])[:4]
    stages.append({"stage": name, "status": status, "seconds": int(seconds or 0), "note": note})
doc = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"), "host": platform.node(),
       "stages_asked": asked.split(), "stages": stages,
       "facts": open(facts_log).read().splitlines() if os.path.exists(facts_log) else []}
bench = os.path.join(out, "bench_cuda.json")
if os.path.exists(bench):
    with open(bench) as f:
        doc["bench"] = json.load(f)
with open(os.path.join(out, "gpu_check.json"), "w") as f:
    json.dump(doc, f, indent=1)

print(f"\nGPU check, {doc['date']}")
for line in doc["facts"][:8]:
    print("  " + line)
print(f"{'stage':<15} {'status':<8} {'s':>5}  note")
for s in stages:
    print(f"{s['stage']:<15} {s['status']:<8} {s['seconds']:>5}  {s['note']}")
for r in doc.get("bench", {}).get("results", []):
    print(f"  {r['cell']:<5} {r['mode']:<8} B{r['B']:<4} T{r['T']:<4} H{r['H']:<5} tsrnn {r['tsrnn_ms']:.3f} ms | nn fp32 "
          f"{r['torch_ms']:.3f} ms {r['speedup']:.2f}x | nn default {r['torch_tf32_ms']:.3f} ms "
          f"{r['speedup_vs_tf32']:.2f}x")
for r in doc.get("bench", {}).get("failed", []):
    print(f"  {r['cell']:<5} {r['mode']:<8} B{r['B']:<4} T{r['T']:<4} H{r['H']:<5} FAILED {r['error'][:100]}")
sys.exit(0 if all(s["status"] in ("OK", "SKIP") for s in stages) else 1)
EOF
}

# ---- run -----------------------------------------------------------------------------------------------------------

say "stages: ${STAGES[*]}; out: $OUT; jobs: $JOBS; GPU: $([ $HAVE_GPU -eq 1 ] && echo yes || echo no)"
for stage in "${STAGES[@]}"; do
  case $stage in
    facts | build | gtest | pytest | bench | sanitize | forecast) "stage_$stage" ;;
    gtest-critical) stage_gtest_critical ;;
    *) say "unknown stage '$stage' (facts build gtest-critical gtest pytest bench sanitize forecast)"; exit 2 ;;
  esac
done
summarize | tee -a "$LOG"
exit "${PIPESTATUS[0]}"

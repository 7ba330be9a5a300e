# The two commands: `make test` (all tests) and `make demo` (the main job). Both set up a fresh machine first.
PYTHON ?= python3
JOBS ?= 2
BUILD ?= build/native
ASAN_BUILD ?= build/asan
FUZZ_BUILD ?= build/fuzz
FUZZ_SMOKE_SECONDS ?= 60
FUZZ_SECONDS ?= 3600
# valgrind runs every kernel test suite but the CPU-vs-reference grids in full, and 1 in VALGRIND_SHARDS of the
# grids' cases (gtest sharding: a fixed sample, spread evenly over every dimension of the grids).
VALGRIND_SHARDS ?= 11

.PHONY: test demo setup install kernel-build kernel-tests python-tests clean
.PHONY: reliability-tests sanitize-tests valgrind-tests valgrind-suites fuzz-build fuzz-smoke fuzz fuzz-merge

setup:
	PYTHON=$(PYTHON) bash scripts/setup.sh

# Builds and installs the package tsrnn (shim library inside) into the current Python.
install: setup
	CMAKE_BUILD_PARALLEL_LEVEL=$(JOBS) $(PYTHON) -m pip install -q --no-build-isolation --no-deps .

kernel-build: setup
	cmake -S . -B $(BUILD) -DTSRNN_BUILD_SHIM=OFF -DTSRNN_BUILD_TESTS=ON
	cmake --build $(BUILD) -j $(JOBS)

kernel-tests: kernel-build
	ctest --test-dir $(BUILD) --output-on-failure -j $(JOBS)

python-tests: install
	cd tests/python && $(PYTHON) -m pytest -q -ra .

# ---- reliability: the C kernels under ASan + UBSan, valgrind and libFuzzer (cmake/sanitize.cmake) ----------------
# Instrumented builds leave out the torch shim and everything CUDA (nvcc is not even looked for).
SAN_CMAKE = -DCMAKE_BUILD_TYPE=Debug -DTSRNN_BUILD_SHIM=OFF -DTSRNN_WITH_CUDA=OFF -DCMAKE_CUDA_COMPILER=OFF
SAN_ENV = ASAN_OPTIONS=detect_leaks=1:detect_stack_use_after_return=1 \
          UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
VALGRIND = valgrind -q --error-exitcode=1 --leak-check=full --errors-for-leak-kinds=definite,indirect \
           --suppressions=tests/valgrind.supp
FUZZ_FLAGS = -max_len=512 -timeout=30 -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix=$(FUZZ_BUILD)/

reliability-tests: sanitize-tests valgrind-tests fuzz-smoke

# The kernels and the whole GoogleTest suite built with gcc -fsanitize=address,undefined -fno-sanitize-recover=all,
# run as JOBS gtest shards side by side. -O0: a third of -O1's compile time (the CPU kernels' six variants), which
# more than pays for the slower run.
sanitize-tests: setup
	cmake -S . -B $(ASAN_BUILD) $(SAN_CMAKE) -DCMAKE_C_COMPILER=gcc -DCMAKE_CXX_COMPILER=g++ \
	  -DTSRNN_SANITIZE=address,undefined -DTSRNN_SANITIZE_OPT=-O0 -DTSRNN_BUILD_TESTS=ON
	cmake --build $(ASAN_BUILD) -j $(JOBS) --target tsrnn_kernel_tests
	$(MAKE) --no-print-directory -j $(JOBS) -O $(addprefix asan-shard-,$(shell seq 0 $$(($(JOBS) - 1))))

asan-shard-%: # gtest shard $* of JOBS
	GTEST_TOTAL_SHARDS=$(JOBS) GTEST_SHARD_INDEX=$* $(SAN_ENV) $(ASAN_BUILD)/tsrnn_kernel_tests --gtest_brief=1

# The uninstrumented test binary of kernel-build under valgrind memcheck. valgrind 3.19 emulates no AVX-512: its
# cpuid reports AVX2 + FMA at most, so the CPU kernels' run-time dispatch (kernels/cpu/cpu_api.c) takes their AVX2
# variant here, the other x86 variant than the one the native and ASan runs take on an AVX-512 machine.
# Environment.CpuDispatch checks that (TSRNN_TEST_NO_AVX512), and an AVX-512 instruction would stop valgrind anyway.
# Three valgrind processes side by side: the other suites, and the grids' sample in two halves (shards 0 and
# VALGRIND_SHARDS of 2 * VALGRIND_SHARDS: together the tests whose index is 0 modulo VALGRIND_SHARDS).
valgrind-tests: kernel-build
	$(MAKE) --no-print-directory -j $(JOBS) -O valgrind-suites valgrind-grid-0 valgrind-grid-1

valgrind-suites:
	TSRNN_TEST_NO_AVX512=1 $(VALGRIND) $(BUILD)/tsrnn_kernel_tests --gtest_brief=1 --gtest_filter='-*CpuVsRef*'

valgrind-grid-%:
	GTEST_TOTAL_SHARDS=$$((2 * $(VALGRIND_SHARDS))) GTEST_SHARD_INDEX=$$(($* * $(VALGRIND_SHARDS))) \
	  $(VALGRIND) $(BUILD)/tsrnn_kernel_tests --gtest_brief=1 --gtest_filter='*CpuVsRef*'

# The libFuzzer target tests/fuzz/fuzz_api.cpp (clang, -fsanitize=fuzzer,address,undefined), -O1: twice the
# executions per second of -O0.
fuzz-build: setup
	cmake -S . -B $(FUZZ_BUILD) $(SAN_CMAKE) -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ \
	  -DTSRNN_SANITIZE=fuzzer-no-link,address,undefined -DTSRNN_SANITIZE_OPT=-O1 -DTSRNN_FUZZ=ON \
	  -DTSRNN_BUILD_TESTS=OFF
	cmake --build $(FUZZ_BUILD) -j $(JOBS) --target tsrnn_fuzz_api

# Replays tests/fuzz/regressions (inputs that once failed), then fuzzes for FUZZ_SMOKE_SECONDS (the replay of the
# committed corpus tests/fuzz/corpus included); what it finds new goes to a fresh $(FUZZ_BUILD)/smoke-corpus (so
# runs stay alike), a failing input to $(FUZZ_BUILD)/crash-*.
fuzz-smoke: fuzz-build
	$(if $(wildcard tests/fuzz/regressions/*),$(SAN_ENV) $(FUZZ_BUILD)/tsrnn_fuzz_api $(wildcard tests/fuzz/regressions/*))
	rm -rf $(FUZZ_BUILD)/smoke-corpus && mkdir -p $(FUZZ_BUILD)/smoke-corpus
	UBSAN_OPTIONS=print_stacktrace=1 $(FUZZ_BUILD)/tsrnn_fuzz_api $(FUZZ_FLAGS) \
	  -max_total_time=$(FUZZ_SMOKE_SECONDS) $(FUZZ_BUILD)/smoke-corpus tests/fuzz/corpus

# A longer run on demand: make fuzz FUZZ_SECONDS=3600
fuzz: fuzz-build
	mkdir -p $(FUZZ_BUILD)/corpus
	UBSAN_OPTIONS=print_stacktrace=1 $(FUZZ_BUILD)/tsrnn_fuzz_api $(FUZZ_FLAGS) \
	  -max_total_time=$(FUZZ_SECONDS) $(FUZZ_BUILD)/corpus tests/fuzz/corpus

# Adds to tests/fuzz/corpus the inputs of $(FUZZ_BUILD)/corpus that reach code edges the committed corpus does not
# (edges only, not hit counts or comparisons: a few hundred small files, replayed in ~15 s).
fuzz-merge: fuzz-build
	$(FUZZ_BUILD)/tsrnn_fuzz_api -merge=1 -use_counters=0 -use_cmp=0 -use_value_profile=0 $(FUZZ_FLAGS) \
	  tests/fuzz/corpus $(FUZZ_BUILD)/corpus

test: kernel-tests reliability-tests python-tests

demo: install
	$(PYTHON) -m tsrnn forecast --out report

clean:
	rm -rf build

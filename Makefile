# The two commands: `make test` (all tests) and `make demo` (the main job). Both set up a fresh machine first.
PYTHON ?= python3
JOBS ?= 2
BUILD ?= build/native

.PHONY: test demo setup install kernel-tests python-tests clean

setup:
	PYTHON=$(PYTHON) bash scripts/setup.sh

# Builds and installs the package tsrnn (shim library inside) into the current Python.
install: setup
	CMAKE_BUILD_PARALLEL_LEVEL=$(JOBS) $(PYTHON) -m pip install -q --no-build-isolation --no-deps .

kernel-tests: setup
	cmake -S . -B $(BUILD) -DTSRNN_BUILD_SHIM=OFF -DTSRNN_BUILD_TESTS=ON
	cmake --build $(BUILD) -j $(JOBS)
	ctest --test-dir $(BUILD) --output-on-failure -j $(JOBS)

python-tests: install
	cd tests/python && $(PYTHON) -m pytest -q -ra .

test: kernel-tests python-tests

demo: install
	$(PYTHON) -m tsrnn forecast --out report

clean:
	rm -rf build

# Everything goes through a local virtual environment so that a fresh clone
# needs nothing but python3, a C++20 compiler and network access to PyPI.
VENV    ?= .venv
PYTHON  ?= python3
PY      := $(VENV)/bin/python
PIP     := $(PY) -m pip
BUILD_STAMP := $(VENV)/.build-tools
EXTRAS  ?= test,bench,lint,train,wheel
# Warnings are errors in development builds (see CMakeLists.txt).
CMAKE_DEFS ?= -Ccmake.define.AUTOLIEN_WERROR=ON
# fpga/build holds the third-party ap_types headers: not ours to format.
CXX_SOURCES = $(shell find cpp bindings fpga -path fpga/build -prune -o \( -name '*.cpp' -o -name '*.hpp' -o -name '*.h' \) -print 2>/dev/null)

DEMO_DIR ?= demo


.PHONY: help demo browser fpga install test test-fast bench bench-scale bench-quick bench-gateway bench-save bench-check lint format sanitize fuzz mutate clean wheel wheel-test

help:
	@echo "make demo       build, simulate a 200-vehicle portfolio for 14 days, run the pipeline, print the summary"
	@echo "make test       build, install into $(VENV) and run the tests (and a quick bench smoke run)"
	@echo "make bench      run bench/ with real timings: our kernels against their peers"
	@echo "make bench-scale the daily job at 1,000 and 10,000 vehicles x 14 days + 1 (minutes to an hour), figures into docs/pipeline.md"
	@echo "make bench-save run the benches (CPU-timed) and save bench/baselines/<cpu>-<cores>c.json"
	@echo "make bench-gateway the live gateway under the C++ load generator (10,000 terminals; not in make test)"
	@echo "make bench-check run the benches (CPU-timed) and fail on a regression against this machine's baseline"
	@echo "make lint       ruff, mypy and clang-format in check mode"
	@echo "make wheel      a manylinux wheel in dist/ (Release, portable ISA, repaired by auditwheel)"
	@echo "make wheel-test build the wheel, install it in a fresh venv without a compiler, run a smoke subset"
	@echo "make format     apply ruff format and clang-format"
	@echo "make sanitize   the test suite against an ASan+UBSan build (in .venv-asan)"
	@echo "make fpga       FPGA kernels: C-simulation, lint, quick RTL simulation (make -C fpga rtl: synthesis)"
	@echo "make fuzz       libFuzzer with ASan+UBSan on every decoder (FUZZ_SECONDS each, default 60)"
	@echo "make mutate     mutmut over the modules that grade, count and verify (not part of make test)"

$(BUILD_STAMP):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet "scikit-build-core>=0.10" "pybind11>=2.13"
	touch $@

# Re-runs every time: pip resolves the extras quickly when they are there and
# scikit-build-core rebuilds incrementally in build/{wheel_tag}.
# EXTRAS= (empty) installs the package and its runtime dependencies only.
install: $(BUILD_STAMP)
	$(PIP) install --quiet --no-build-isolation $(CMAKE_DEFS) $(if $(strip $(EXTRAS)),".[$(EXTRAS)]",".")

# The main job on a simulated portfolio: ingest, monitor, value, ledger,
# dashboard. Needs only the runtime dependencies (no test, bench, lint or
# train extras); a later `make test` adds those to the same .venv.
demo:
	$(MAKE) install EXTRAS=
	rm -rf $(DEMO_DIR)
	$(VENV)/bin/autolien simulate $(DEMO_DIR) --vehicles 200 --days 14
	$(VENV)/bin/autolien run $(DEMO_DIR)
	@echo "dashboard: $(DEMO_DIR)/report/index.html; tables in $(DEMO_DIR)/autolien.duckdb; ledger in $(DEMO_DIR)/ledger"

# The dashboard test needs a real browser: Debian's chromium, installed when
# we are root and it is missing (the test skips, saying why, otherwise).
browser:
	@command -v chromium >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) || \
		echo "chromium not installed: make test will fail the dashboard browser tests"; }

# FPGA kernels (fpga/README.md): C-simulation against the golden files, the
# synthesizability lint, and a quick RTL simulation on Icarus (Debian's
# iverilog, installed when we are root; skipped, saying why, otherwise).
fpga: install
	@command -v iverilog >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq iverilog >/dev/null) || \
		echo "iverilog not installed: the quick RTL simulation will be skipped"; }
	$(MAKE) -C fpga -j2 csim-build PY=$(abspath $(PY))
	$(MAKE) -C fpga csim lint rtl-quick PY=$(abspath $(PY))

# AUTOLIEN_REQUIRE_ALL=1: a missing test dependency (catboost, chromium)
# fails the run instead of skipping (tests/conftest.py).
test: install browser fpga
	AUTOLIEN_REQUIRE_ALL=1 $(PY) -m pytest tests
	AUTOLIEN_REQUIRE_ALL=1 AUTOLIEN_BENCH_QUICK=1 $(PY) -m pytest bench --benchmark-disable -q

test-fast:
	$(PY) -m pytest tests -x -q

BENCH_ARGS := --benchmark-only --benchmark-columns=min,median,iqr,rounds -q -p no:cacheprovider
# The gate times in CPU seconds, which a busy machine stretches less than wall
# time (ratios timed while it was busy are reported, not gated), and
# keys baselines by CPU model and core count (bench/gate.py). BASELINE=path
# overrides the file.
GATE_TIMER := --benchmark-timer=time.process_time
BASELINE ?=
GATE_BASELINE = $(if $(BASELINE),--baseline $(BASELINE))

bench: install
	$(PY) -m pytest bench $(BENCH_ARGS)

# Not part of make test: simulates SCALE_SIZES vehicles x 15 days and times
# the backfill and the daily run (bench/bench_scale.py), per stage, with peak
# RSS and the load average, into docs/pipeline.md.
SCALE_SIZES ?= 1000 10000
bench-scale: install
	$(PY) bench/bench_scale.py --sizes $(SCALE_SIZES) --write-doc docs/pipeline.md --label current

# Not part of make test: the live gateway under load from the C++ load
# generator (bench/loadgen, compiled into build/, never installed): 1,000 and
# 10,000 terminals, GATEWAY_RUNS times each; figures in docs/gateway.md.
LOADGEN := build/loadgen
GATEWAY_RUNS ?= 3
GATEWAY_SECONDS ?= 30
$(LOADGEN): bench/loadgen/loadgen.cpp
	mkdir -p build
	$(CXX) -O2 -std=c++20 -Wall -Wextra -o $@ $<

bench-gateway: install $(LOADGEN)
	$(PY) bench/bench_gateway.py --terminals 1000 --interval 1 --seconds $(GATEWAY_SECONDS) --runs $(GATEWAY_RUNS)
	$(PY) bench/bench_gateway.py --terminals 10000 --interval 10 --seconds $(GATEWAY_SECONDS) --runs $(GATEWAY_RUNS)
	$(PY) bench/bench_gateway.py --terminals 10000 --interval 1 --seconds $(GATEWAY_SECONDS) --runs $(GATEWAY_RUNS)
	$(PY) bench/bench_gateway.py --terminals 10000 --seconds 15 --sweep 5000,10000,15000,20000,25000,30000,40000

bench-quick: install
	AUTOLIEN_BENCH_QUICK=1 $(PY) -m pytest bench $(BENCH_ARGS)

# Baselines hold ours/peer ratios, cost-growth exponents and callgrind
# instruction counts; bench/gate.py documents the thresholds.
bench-save: install
	$(PY) -m pytest bench $(BENCH_ARGS) $(GATE_TIMER)
	$(PY) bench/gate.py save --callgrind $(GATE_BASELINE)

bench-check: install
	$(PY) -m pytest bench $(BENCH_ARGS) $(GATE_TIMER)
	$(PY) bench/gate.py check --callgrind $(GATE_BASELINE)

# A release wheel in its own build directory (no -Werror, AUTOLIEN_PORTABLE),
# repaired by auditwheel into the manylinux tag this machine's glibc allows.
# cibuildwheel ([tool.cibuildwheel] in pyproject.toml) builds the same in the
# manylinux containers for other Pythons and architectures.
wheel: install
	rm -rf dist/raw dist/autolien-*.whl
	$(PIP) wheel --quiet --no-deps --no-build-isolation -w dist/raw \
		-Cbuild-dir=build/wheel -Ccmake.define.AUTOLIEN_PORTABLE=ON .
	PATH="$(abspath $(VENV))/bin:$$PATH" $(VENV)/bin/auditwheel repair --wheel-dir dist dist/raw/autolien-*.whl
	PATH="$(abspath $(VENV))/bin:$$PATH" $(VENV)/bin/auditwheel show dist/autolien-*.whl

wheel-test: wheel
	AUTOLIEN_WHEEL_TEST=1 $(PY) -m pytest tests/test_wheel.py -v

lint: install
	$(PY) -m ruff check python tests bench
	$(PY) -m ruff format --check python tests bench
	$(PY) -m mypy
	$(VENV)/bin/clang-format --dry-run --Werror $(CXX_SOURCES)

format: $(BUILD_STAMP)
	$(PY) -m ruff format python tests bench
	$(PY) -m ruff check --fix python tests bench
	$(VENV)/bin/clang-format -i $(CXX_SOURCES)

# The whole test suite against a Debug build with AddressSanitizer and
# UndefinedBehaviorSanitizer, in its own environment so .venv stays optimised.
ASAN_VENV := .venv-asan
SAN_FLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
sanitize:
	test -x $(ASAN_VENV)/bin/python || $(PYTHON) -m venv $(ASAN_VENV)
	$(ASAN_VENV)/bin/python -m pip install --quiet "scikit-build-core>=0.10" "pybind11>=2.13"
	$(ASAN_VENV)/bin/python -m pip install --quiet --no-build-isolation -Cbuild-dir=build/asan \
		-Ccmake.build-type=Debug "-Ccmake.define.CMAKE_CXX_FLAGS=$(SAN_FLAGS)" $(CMAKE_DEFS) ".[test,train]"
	ASAN_OPTIONS=detect_leaks=0 HYPOTHESIS_PROFILE=dev \
		LD_PRELOAD="$$($(CXX) -print-file-name=libasan.so) $$($(CXX) -print-file-name=libubsan.so)" \
		$(ASAN_VENV)/bin/python -m pytest tests -q -p no:cacheprovider

# One libFuzzer target per decoder (cpp/fuzz), with ASan and UBSan, seeded
# from the test vectors. Needs clang; installs Debian's when missing and root.
FUZZ_SECONDS ?= 60
FUZZ_TARGETS := jt808 gb32960 nmea obd
CLANGXX ?= clang++
FUZZ_FLAGS := -std=c++20 -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -Icpp/include
fuzz:
	command -v $(CLANGXX) >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq clang)
	mkdir -p build/fuzz
	$(PYTHON) cpp/fuzz/make_seeds.py build/fuzz/seeds
	for t in $(FUZZ_TARGETS); do \
		$(CLANGXX) $(FUZZ_FLAGS) cpp/fuzz/fuzz_$$t.cpp cpp/src/telemetry/*.cpp cpp/src/gnss/*.cpp \
			-o build/fuzz/fuzz_$$t || exit 1; \
	done
	for t in $(FUZZ_TARGETS); do \
		mkdir -p build/fuzz/corpus_$$t; \
		build/fuzz/fuzz_$$t -max_total_time=$(FUZZ_SECONDS) -timeout=5 -rss_limit_mb=2048 \
			build/fuzz/corpus_$$t build/fuzz/seeds/$$t || exit 1; \
	done

# Mutation testing (mutmut, [tool.mutmut] in pyproject.toml) in a staging
# copy where the package sits under src/ with its built extension.
MUTATE_DIR := build/mutate
mutate: install
	$(PIP) install --quiet ".[mutate]" --no-build-isolation $(CMAKE_DEFS)
	rm -rf $(MUTATE_DIR) && mkdir -p $(MUTATE_DIR)/src
	cp -rL python/autolien $(MUTATE_DIR)/src/autolien
	rm -f $(MUTATE_DIR)/src/autolien/_core*.so
	cp "$$($(PY) -c 'import autolien._core as c; print(c.__file__)')" $(MUTATE_DIR)/src/autolien/
	cp -r tests pyproject.toml $(MUTATE_DIR)/
	cd $(MUTATE_DIR) && $(CURDIR)/$(VENV)/bin/mutmut run; $(CURDIR)/$(VENV)/bin/mutmut results

clean:
	rm -rf build dist .venv-asan .pytest_cache .mypy_cache .ruff_cache .hypothesis .benchmarks

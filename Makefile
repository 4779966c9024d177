# gr-genjscc: self-bootstrapping targets.
#   make demo   set everything up, run the end-to-end demo, write the report to $(DEMO_OUT)
#   make test   set everything up, run the test suite
#   make bench  set everything up, run benchmarks/ (results go to docs/benchmarks.md)
# Every target is idempotent: a second run with nothing changed installs nothing.

SHELL     := /bin/bash
.SHELLFLAGS := -o pipefail -c
VENV      := .venv
PY        := $(VENV)/bin/python
PIP       := $(PY) -m pip --disable-pip-version-check -q
DEMO_OUT  ?= demo-report
# Two test processes (pytest-xdist), one test file each at a time: many tests wait on servers,
# flowgraphs and subprocesses, so two files at once use both cores. PYTEST_ARGS= runs serially.
PYTEST_ARGS ?= -n 2 --dist loadfile
# Two cores: keep torch from oversubscribing them when several processes run.
export OMP_NUM_THREADS ?= 2

SYSTEM_STAMP := $(VENV)/.system-ok
DEPS_STAMP   := $(VENV)/.deps-ok
PKG_STAMP    := $(VENV)/.pkg-ok

.PHONY: all setup demo test bench lint clean distclean

all: test

setup: $(PKG_STAMP)

$(SYSTEM_STAMP): tools/setup-system.sh
	@bash tools/setup-system.sh
	@test -x $(PY) || /usr/bin/python3 -m venv --system-site-packages $(VENV)
	@touch $@

$(DEPS_STAMP): $(SYSTEM_STAMP) pyproject.toml constraints.txt requirements-dev.txt requirements-nodeps.txt
	@echo "genjscc: installing Python dependencies into $(VENV)"
	$(PIP) install -c constraints.txt -r requirements-dev.txt 2>&1 | sed "/is ignored: it is neither/d"
	$(PIP) install --no-deps -r requirements-nodeps.txt 2>&1 | sed "/is ignored: it is neither/d"
	@$(PY) -c 'import numpy, torch; assert numpy.__version__ < "2", numpy.__version__; print("numpy", numpy.__version__, "torch", torch.__version__)'
	@touch $@

# Editable install (compat mode: a .pth pointing at python/), so `import genjscc` and
# `from gnuradio import genjscc` both resolve to the source tree. It also compiles the native
# BP kernel (lib/, setup.py) into python/genjscc/core/fec/ and the LM kernel into
# python/genjscc/core/source/, again whenever lib/ changes.
$(PKG_STAMP): $(DEPS_STAMP) setup.py lib/bp_kernel.c lib/bp_lanes.h lib/lm_kernel.c
	$(PIP) install -c constraints.txt --no-deps --no-build-isolation -e . --config-settings editable_mode=compat
	@$(PY) -c 'import genjscc; from gnuradio import genjscc as g; print("genjscc", genjscc.__version__, "ready")'
	@$(PY) -c 'from genjscc.core.fec import _native as n; print("genjscc:", n.reason() if n.available() else "WARNING: " + n.reason())'
	@$(PY) -c 'from genjscc.core.source import _lm_native as n; print("genjscc:", n.reason() if n.available() else "WARNING: " + n.reason())'
	@touch $@

# One OpenMP thread: GNU Radio's block threads do not see torch.set_num_threads, and two
# spinning OpenMP threads per block made the demo 3-10x slower on a busy 2-core machine.
demo: setup
	OMP_NUM_THREADS=1 $(VENV)/bin/genjscc demo --out $(DEMO_OUT)

test: setup
	OMP_NUM_THREADS=$(if $(findstring -n,$(PYTEST_ARGS)),1,$(OMP_NUM_THREADS)) $(PY) -m pytest $(PYTEST_ARGS)

bench: setup
	$(PY) benchmarks/run_all.py

lint: setup
	$(PY) -m ruff check python tests benchmarks

clean:
	rm -rf $(DEMO_OUT) build .pytest_cache

distclean: clean
	rm -rf $(VENV)

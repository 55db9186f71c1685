# The single entry point: `make demo` and `make test` each create .venv and install what they need.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck pytest compat-versions bench clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "typedserve needs Python >= 3.11 (set PYTHON=python3.11)")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/typedserve demo

test: lint typecheck pytest compat-versions

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP)
	$(BIN)/pytest -q

# The whole test suite (the compat conformance suite included) on every other supported CPython
# that is present (3.11 ran above), each in its own .venv-3.1x; stubtest checks
# typedserve/compat/__init__.pyi on every version. pythonX.Y is looked up on PATH, then among
# pyenv's versions (under `pyenv root`), if pyenv is installed.
COMPAT_VERSIONS := 3.12 3.13
STUBTEST := -m mypy.stubtest typedserve.compat --allowlist stubs/stubtest-allowlist.txt

compat-versions: $(STAMP)
	$(BIN)/python $(STUBTEST)
	@set -e; pyenv_root=$$(pyenv root 2>/dev/null || true); \
	for v in $(COMPAT_VERSIONS); do \
	  py=""; for c in $$(command -v python$$v) $${pyenv_root:+$$pyenv_root/versions/$$v*/bin/python$$v}; do \
	    if [ -x "$$c" ] && "$$c" -c 'import sys' >/dev/null 2>&1; then py=$$c; break; fi; \
	  done; \
	  if [ -z "$$py" ]; then echo "compat-versions: python$$v not found, skipped"; continue; fi; \
	  venv=.venv-$$v; \
	  if [ ! -f $$venv/.installed ] || [ pyproject.toml -nt $$venv/.installed ]; then \
	    echo "compat-versions: creating $$venv with $$py"; \
	    "$$py" -m venv $$venv; \
	    $$venv/bin/python -m pip install -q --upgrade pip; \
	    $$venv/bin/python -m pip install -q -e '.[dev]'; \
	    touch $$venv/.installed; \
	  fi; \
	  echo "compat-versions: Python $$v"; \
	  $$venv/bin/python -m pytest tests -q; \
	  $$venv/bin/python $(STUBTEST); \
	done

# Side-by-side benchmarks against the stdlib, asyncio and uvloop (see benchmarks/README.md).
bench: $(STAMP)
	$(BIN)/python benchmarks/run.py

clean:
	rm -rf $(VENV) .venv-* .mypy_cache .pytest_cache .ruff_cache build dist *.egg-info

# Two entry points: `make demo` and `make test`. Both create .venv and install the project on first use.
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: demo test test-slow

# Reinstalling also rebuilds the native preprocessing library (native/, CMakeLists.txt).
$(VENV)/.installed: pyproject.toml CMakeLists.txt $(shell find native -type f 2>/dev/null)
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[dev]"
	touch $@

demo: $(VENV)/.installed
	$(VENV)/bin/nvila-edge demo --max-answers 5

test: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(PY) -m pytest -q

test-slow: $(VENV)/.installed
	$(PY) -m pytest -q -m slow

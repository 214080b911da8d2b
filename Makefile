# pocketfit's front door. `make demo` and `make test` create .venv/ on first use and reuse it after.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.pocketfit-installed
PIP    := $(BIN)/python -m pip --disable-pip-version-check

.PHONY: demo test env check-torch lock clean

demo: env ## the main job on the embedded MiniLM: export fp32 + int8, verify, measure, check phones
	$(BIN)/pocketfit demo

test: env ## the whole test suite
	$(BIN)/python -m pytest -n 2 --dist loadgroup

env: $(STAMP) check-torch

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# torch goes in first, alone, as the CPU build that lies on this machine's disk: installed
# later, or by a range, pip would fetch a multi-GB CUDA build. The lock then finds it
# satisfied, and the project installs with --no-deps so nothing re-resolves.
$(STAMP): requirements/lock.txt pyproject.toml | $(BIN)/python
	$(PIP) install torch==2.13.0
	$(PIP) install -r requirements/lock.txt
	$(PIP) install --no-deps --no-build-isolation -e .
	touch $@

# Fails loudly if anything replaced the CPU build of torch (reads metadata: no torch import).
check-torch: | $(BIN)/python
	@$(BIN)/python -c "import importlib.metadata as m, sys; v = m.version('torch'); \
	sys.exit(0 if v == '2.13.0+cpu' else f'torch is {v}, not 2.13.0+cpu: a CUDA build replaced the CPU one; rm -rf $(VENV) and rerun make')"

# Regenerate requirements/lock.txt from pyproject.toml's pins in a throwaway venv.
lock:
	rm -rf build/lock-venv && $(PYTHON) -m venv build/lock-venv
	build/lock-venv/bin/pip install -q torch==2.13.0
	build/lock-venv/bin/pip install -q ".[test]"
	{ echo "# The whole dependency closure of pyproject.toml (with [test]), pinned. Regenerate: make lock"; \
	  build/lock-venv/bin/pip freeze --exclude-editable | grep -v '^pocketfit' | sed 's/^torch==2.13.0+cpu$$/torch==2.13.0/'; \
	  echo "setuptools==$$(build/lock-venv/bin/python -c 'import importlib.metadata as m; print(m.version("setuptools"))')"; \
	} > requirements/lock.txt
	rm -rf build/lock-venv

clean:
	rm -rf build $(VENV)

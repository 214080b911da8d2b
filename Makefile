# pocketfit's front door. `make demo` and `make test` create .venv/ on first use and reuse it after.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.pocketfit-installed
PIP    := $(BIN)/python -m pip --disable-pip-version-check

.PHONY: demo test env check-torch lock clean bench-peers peers check-example chromium bench-device junit arm64-root

demo: env ## the main job on the embedded MiniLM: export fp32 + int8, verify, measure, check phones
	$(BIN)/pocketfit demo

test: env chromium junit ## the whole test suite
	$(BIN)/python -m pytest -n 2 --dist loadgroup

env: $(STAMP) check-torch

# The HTML report's test opens it in headless Chromium: Debian's package, installed quietly when
# missing (root, apt). Where it cannot be installed the test skips, except under
# POCKETFIT_REQUIRE_CGROUPS=1 (CI), where a missing chromium fails it.
chromium:
	@command -v chromium >/dev/null 2>&1 || { command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ] && \
	  { DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null 2>&1 || \
	    { apt-get update -qq >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null 2>&1; }; } || \
	  echo "chromium not installed (needs root and apt): the HTML report test will skip, or fail under POCKETFIT_REQUIRE_CGROUPS=1"; }

# android-demo's plain-Java core is compiled and unit-tested by `make test` with the JDK and
# Debian's junit4, installed quietly when missing (root, apt), as chromium is above.
junit:
	@test -f /usr/share/java/junit4.jar || { command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ] && \
	  { DEBIAN_FRONTEND=noninteractive apt-get install -y -qq junit4 >/dev/null 2>&1 || \
	    { apt-get update -qq >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq junit4 >/dev/null 2>&1; }; } || \
	  echo "junit4 not installed (needs root and apt): the android-demo core test will skip, or fail under POCKETFIT_REQUIRE_CGROUPS=1"; }

# The arm64 Debian root `pocketfit verify --arch arm64` runs artifacts in, under qemu: made once
# (debootstrap, the lock's aarch64 wheels of numpy, onnxruntime, ai-edge-litert and executorch,
# and the .pte runner cross-compiled; about 3 minutes, 660 MB) outside the clone, in
# $$POCKETFIT_ARM64_ROOT or /var/cache/pocketfit/arm64-root.
arm64-root: env
	$(BIN)/python -c "from pocketfit.runtime.arm64 import build_root; print('arm64 root:', build_root())"

# The release gate example: MiniLM as ONNX int8 and LiteRT int8 on four tiers of phones, built on
# first run (about a minute each) into examples/release-gate/build/. The entry tier fails on purpose,
# so `pocketfit check` exits 1; this target succeeds exactly when it does (any other code fails it).
check-example: env
	@$(BIN)/pocketfit check --config examples/release-gate/pocketfit.toml \
	  --format html --output examples/release-gate/build/report.html; code=$$?; \
	if [ $$code -eq 1 ]; then echo "make check-example: pocketfit check exited 1, as expected: the entry tier fails on purpose (report: examples/release-gate/build/report.html)"; \
	else echo "make check-example: pocketfit check exited $$code; expected 1 (the entry tier's deliberate failure)" >&2; exit 1; fi

# The artifact on the attached handset, through the android-demo app (APK=... installs it first),
# beside pocketfit's prediction for that phone. No handset: pocketfit says so in one line and exits
# 3 (make itself then exits 2, naming the 3). Without a handset: pocketfit bench-device --local.
bench-device: env
	@test -n "$(ARTIFACT)" || { echo "make bench-device: name the artifact: make bench-device ARTIFACT=out/model.pte [SERIAL=...] [APK=...]" >&2; exit 2; }
	@$(BIN)/pocketfit bench-device $(ARTIFACT) $(if $(SERIAL),--serial $(SERIAL)) $(if $(APK),--apk $(APK)); code=$$?; \
	if [ $$code -ne 0 ]; then echo "make bench-device: pocketfit bench-device exited $$code" >&2; exit $$code; fi

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

# pocketfit beside optimum-onnx and optimum-executorch (benchmarks/peers.py). Each peer lives in a
# venv of its own under benchmarks/.peers/ (their transformers pins conflict with ours and with each
# other), made once from its pinned closure in benchmarks/peers/, torch first and alone as above.
PEER_NAMES := optimum-onnx optimum-executorch
PEER_STAMPS := $(foreach p,$(PEER_NAMES),benchmarks/.peers/$(p)/.installed)

bench-peers: env peers
	HF_HUB_OFFLINE=1 $(BIN)/python benchmarks/peers.py

peers: $(PEER_STAMPS)

benchmarks/.peers/%/.installed: benchmarks/peers/%.txt
	rm -rf benchmarks/.peers/$*
	$(PYTHON) -m venv benchmarks/.peers/$*
	benchmarks/.peers/$*/bin/python -m pip --disable-pip-version-check install -q torch==2.13.0
	benchmarks/.peers/$*/bin/python -m pip --disable-pip-version-check install -q -r $<
	@benchmarks/.peers/$*/bin/python -c "import importlib.metadata as m, sys; v = m.version('torch'); \
	sys.exit(0 if v == '2.13.0+cpu' else f'$*: torch is {v}, not 2.13.0+cpu')"
	touch $@

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

# Two commands do all the set-up on a fresh Debian machine (as root):
#   make demo   runs the main job on the shipped default model
#   make test   creates .venv, installs what is missing (pip packages, Debian's mosquitto) and runs pytest
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | sha256sum | cut -c1-12)

.PHONY: demo test test-slow bench venv mosquitto clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV) || \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv && $(PY) -m venv $(VENV))
	$(BIN)/pip install -q --upgrade pip setuptools wheel
	$(BIN)/pip install -q -e ".[edge,convert,dev]"
	touch $(STAMP)

venv: $(STAMP)

# Debian's mosquitto: the tests start their own broker on a free loopback port.
mosquitto:
	@command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mosquitto)

test: venv mosquitto
	$(BIN)/python -m pytest -q

test-slow: venv mosquitto
	$(BIN)/python -m pytest -q -m slow

demo: venv mosquitto
	$(BIN)/python -m statecast.daemon.tools.demo

clean:
	rm -rf $(VENV) .pytest_cache

# --- issue 5: the second runtime and the Pi's dependency set ----------------------------------
.PHONY: test-tflite-runtime check-pi-deps

# tflite-runtime 2.14 is the last release: Python <= 3.11 and numpy < 2, the combination older
# Raspberry Pi images have. A second venv without ai-edge-litert, so `auto` resolves to it; the
# daemon tests that need no TensorFlow run against it (STATECAST_RUNTIME also makes the
# service tests put `[runtime] backend = "tflite_runtime"` in their configs).
TFLITE_VENV := .venv-tflite
TFLITE_STAMP := $(TFLITE_VENV)/.installed-$(shell cat pyproject.toml | sha256sum | cut -c1-12)
TFLITE_TESTS := tests/test_serve.py tests/test_service_notify.py tests/test_service_reload.py \
	tests/test_service_shards.py tests/test_service_sandbox.py tests/test_sdnotify.py \
	tests/test_config.py tests/test_payload.py tests/test_topics.py tests/test_anomaly.py

$(TFLITE_STAMP): pyproject.toml
	$(PY) -c 'import sys; sys.exit(sys.version_info[:2] > (3, 11) and "tflite-runtime 2.14 needs Python <= 3.11 (PY=$(PY))")'
	test -x $(TFLITE_VENV)/bin/python || $(PY) -m venv $(TFLITE_VENV)
	$(TFLITE_VENV)/bin/pip install -q --upgrade pip setuptools wheel
	$(TFLITE_VENV)/bin/pip install -q -e . tflite-runtime==2.14.0 'numpy<2' pytest hypothesis
	touch $(TFLITE_STAMP)

test-tflite-runtime: $(TFLITE_STAMP) mosquitto
	$(TFLITE_VENV)/bin/python -c 'import numpy; from statecast.daemon.model.backends import select_backend; \
	  name = select_backend().name; assert name == "tflite_runtime" and numpy.__version__ < "2", (name, numpy.__version__); \
	  print("runtime", name, "numpy", numpy.__version__)'
	STATECAST_RUNTIME=tflite_runtime $(TFLITE_VENV)/bin/python -m pytest -q -p no:cacheprovider $(TFLITE_TESTS)

# The edge dependency set (project dependencies + the `edge` extra, read from pyproject.toml)
# resolves to wheels for a Raspberry Pi: Debian 12 aarch64, CPython 3.11, glibc 2.36.
PI_PLATFORM := manylinux_2_27_aarch64
check-pi-deps: venv
	d=$$(mktemp -d) && trap 'rm -rf "$$d"' EXIT && \
	$(BIN)/python -c 'import tomllib; p = tomllib.load(open("pyproject.toml", "rb"))["project"]; \
	  print("\n".join(p["dependencies"] + p["optional-dependencies"]["edge"]))' > "$$d/requirements.txt" && \
	$(BIN)/pip download -q --only-binary=:all: --platform $(PI_PLATFORM) --python-version 3.11 \
	  --implementation cp --abi cp311 -d "$$d/wheels" -r "$$d/requirements.txt" && \
	ls "$$d/wheels"

# --- issue 17: the device side on a Raspberry Pi's userland (Debian 12 arm64 under qemu-user) ------
# Builds/reuses the cached arm64 rootfs (/var/cache/statecast-pi), runs the device-side tests,
# `statecast score` on every shipped model and `statecast bench` inside it, and checks the scores
# against this host's (tests/pi/parity.py). Needs root; says in one line and fails if the machine
# cannot run it. See docs/raspberry-pi.md.
.PHONY: test-pi
test-pi: venv
	tests/pi/job.sh

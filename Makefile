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
	$(BIN)/python -m statecast.daemon.demo

clean:
	rm -rf $(VENV) .pytest_cache

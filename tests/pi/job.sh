#!/usr/bin/env bash
# The emulated Raspberry Pi job (issue 17): the device side on Debian 12 arm64 under qemu-user.
#
#   tests/pi/job.sh            (make test-pi; run as root: chroot, mounts, binfmt_misc)
#
# 1. preflight: qemu-aarch64 registered in binfmt_misc (mounted and registered here if missing)
# 2. the cached rootfs (tests/pi/rootfs.sh)
# 3. x86 scores of every shipped model over the fixed CSV, on this host, in this run
# 4. inside the rootfs: architecture and no-TensorFlow check, `statecast serve --check-config`
#    on the example config, the device-side tests, the same scores, `statecast bench`
# 5. cross-architecture parity (tests/pi/parity.py): exits non-zero when a bound is broken
#
# Knobs: PI_SCORE_ROWS (rows of machine_temperature scored, default 2500), STATECAST_KILLS,
# STATECAST_KILL_ROWS, STATECAST_WAIT_SCALE (test_reliability_kill: kill -9 rounds 4, rows per
# stream 120, waits x5 here), PI_CACHE (default /var/cache/statecast-pi), PI_KEEP=1 keeps the
# output directory.
set -euo pipefail
cd "$(dirname "$0")/../.."
export PI_SCORE_ROWS=${PI_SCORE_ROWS:-2500} STATECAST_KILLS=${STATECAST_KILLS:-4}
export STATECAST_KILL_ROWS=${STATECAST_KILL_ROWS:-120} STATECAST_WAIT_SCALE=${STATECAST_WAIT_SCALE:-5}
PI_CACHE=${PI_CACHE:-/var/cache/statecast-pi}
PY=${PY:-.venv/bin/python}
# Device-side tests that need no TensorFlow (checked: none imports tensorflow, keras or convert).
PI_TESTS="tests/test_serve.py tests/test_checkpoint.py tests/test_exactly_once.py tests/test_reliability_kill.py
  tests/test_payload.py tests/test_security.py tests/test_pi_guard.py"
# Deselected here, and why: all five assert that a float model's forecasts or final state are
# bit-identical whichever batches the daemon stepped them in (a batched run vs `score` or vs max_batch 1, a killed
# and restarted run vs an uninterrupted one). Under qemu the builtin optimised float kernels run
# (no XNNPACK) and give a stream's row different last bits in a batch than alone (measured:
# forecasts 7.6e-6 units at ~85, one float32 ulp; states one ulp; x86 XNNPACK: 0). With the knobs
# above the kill tests' delivery checks pass; only the bit-exact comparison fails.
# tests/test_pi_guard.py::test_a_streams_result_does_not_depend_on_its_batch states the bound for
# the optimized kernels and exactness for the reference kernels, on both architectures.
PI_DESELECT="--deselect tests/test_serve.py::test_interleaved_streams_match_score_with_and_without_batching[256]
  --deselect tests/test_serve.py::test_batching_settings_do_not_change_forecasts
  --deselect tests/test_reliability_kill.py::test_kill9_with_qos0_inputs_state_continues_from_the_journal
  --deselect tests/test_reliability_kill.py::test_twenty_kill9_exactly_one_forecast_per_input_at_qos2
  --deselect tests/test_reliability_kill.py::test_kill9_at_qos1_loses_nothing_duplicates_are_identical"
started=$(date +%s)
step() { printf '\n== pi job [%ds] %s\n' "$(($(date +%s) - started))" "$*"; }

step "preflight"
tests/pi/preflight.sh

step "root filesystem"
root=$(tests/pi/rootfs.sh)
exec 9>"$PI_CACHE/run.lock"; flock 9          # one job at a time per rootfs (shared mounts)
out=$(mktemp -d /tmp/statecast-pi.XXXXXX)
[ -n "${PI_KEEP:-}" ] || trap 'rm -rf "$out"' EXIT
inside() { tests/pi/run.sh "$root" "$out/arm" "$@"; }

step "x86 scores ($PI_SCORE_ROWS rows per model, this host)"
"$PY" tests/pi/score_models.py "$out/x86" 2>&1 | grep -v '^INFO: '

step "aarch64: platform, no TensorFlow"
inside python -c 'import importlib.util, platform, sys
assert platform.machine() == "aarch64", platform.machine()
assert importlib.util.find_spec("tensorflow") is None, "TensorFlow is installed in the Pi venv"
import ai_edge_litert, numpy
print("aarch64", sys.version.split()[0], "numpy", numpy.__version__, "litert", ai_edge_litert.__file__)'
inside sh -c 'grep -E "^(ai-edge-litert|numpy|paho-mqtt)=" /opt/venv/freeze.txt'

step "aarch64: statecast serve --check-config on the example config"
sed -e 's|/opt/statecast/models/|/src/models/|' -e 's|/var/lib/statecast|/tmp/statecast-state|' \
  systemd/statecast.example.toml > "$out/arm.example.toml"
mkdir -p "$out/arm" && mv "$out/arm.example.toml" "$out/arm/example.toml"
inside statecast serve --check-config --config /out/example.toml

step "aarch64: device-side tests"
inside python -m pytest -q -p no:cacheprovider $PI_DESELECT $PI_TESTS

step "aarch64: scores ($PI_SCORE_ROWS rows per model)"
inside python tests/pi/score_models.py /out/scores 2>&1 | grep -v '^INFO: '

step "aarch64: statecast bench"
inside statecast bench --model /src/models/default-int8 --streams 1000 --seconds 0.5 2>&1 | grep -v '^INFO: '

step "cross-architecture parity (aarch64 under qemu: builtin kernels, never XNNPACK)"
"$PY" tests/pi/parity.py "$out/x86" "$out/arm/scores" --table "$out/parity.md"
step "pi job passed"

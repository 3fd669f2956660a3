#!/usr/bin/env bash
# Build (or reuse) the cached Debian 12 arm64 root filesystem the Pi job runs in; print its path.
#
# Two cached layers under $PI_CACHE (default /var/cache/statecast-pi), each keyed by a sha256 of
# exactly what goes into it, so a change rebuilds only that layer (older ones are pruned):
#   base-<key>    mmdebstrap minbase + PACKAGES from the Debian mirror this machine's apt uses,
#                 plus this machine's CA bundle and a pip.conf using it (pip inside works)
#   wheels-<key>  aarch64 wheels: the project's dependencies + `edge` extra from pyproject.toml
#                 (no TensorFlow) + the test tools the device-side tests import
#   rootfs-<key>  a copy of the base with a venv at /opt/venv holding those wheels
# The wheels are downloaded and unpacked by this machine's own pip (--platform aarch64, binary
# only): pip under qemu took 6 of a 17-minute cold build. The project itself is not installed:
# tests/pi/run.sh bind-mounts the worktree, so a code change never invalidates the cache.
set -euo pipefail
cd "$(dirname "$0")/../.."
PI_CACHE=${PI_CACHE:-/var/cache/statecast-pi}
PY=${PY:-python3}
SUITE=bookworm
MIRROR=${PI_MIRROR:-$(sed -n 's/^URIs: *//p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -1)}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
PACKAGES=python3,python3-venv,python3-pip,mosquitto,ca-certificates
# test tools only: pytest runs the tests, hypothesis (test_payload) and cryptography
# (tests/tls_material.py for test_security) are imported by them. Never TensorFlow.
TEST_TOOLS="pytest>=8 hypothesis>=6.100 cryptography>=41"
# Debian 12: CPython 3.11, glibc 2.36. pip does not widen a --platform tag to older glibc
# versions, so every manylinux tag a wheel for glibc <= 2.36 may carry is listed.
WHEEL_TARGET=(--only-binary=:all: --python-version 3.11 --implementation cp --abi cp311 --platform manylinux2014_aarch64)
for glibc_minor in 17 24 26 27 28 31 34 35 36; do WHEEL_TARGET+=(--platform "manylinux_2_${glibc_minor}_aarch64"); done

digest() { sha256sum | cut -c1-16; }
section() { sed -n "/^# --- $1/,/^# --- end $1/p" "$0"; }    # a layer's own recipe, for its key
requirements=$("$PY" -c 'import tomllib; p = tomllib.load(open("pyproject.toml", "rb"))["project"]
print("\n".join(p["dependencies"] + p["optional-dependencies"]["edge"]))')
base_key=$( { section base; echo "$SUITE $MIRROR $PACKAGES"; sha256sum /etc/ssl/certs/ca-certificates.crt; } | digest)
wheels_key=$( { section wheels; echo "${WHEEL_TARGET[*]} $TEST_TOOLS"; echo "$requirements"; } | digest)
base="$PI_CACHE/base-$base_key" wheels="$PI_CACHE/wheels-$wheels_key"
root="$PI_CACHE/rootfs-$(echo "$base_key $wheels_key $(section rootfs | digest)" | digest)"
[ -f "$root/.complete" ] && { echo "$root"; exit 0; }
mkdir -p "$PI_CACHE"
# older layers go, except one a running job still has mounts in
prune() { for old in "$PI_CACHE/$1"-*; do [ "$old" = "$2" ] || grep -q " $old/" /proc/mounts || rm -rf "$old"; done; }

# --- base
if [ ! -f "$base/.complete" ]; then
  echo "pi rootfs: mmdebstrap $SUITE arm64 -> $base (cache miss)" >&2
  rm -rf "$base.partial"
  mmdebstrap --quiet --variant=minbase --architectures=arm64 --include="$PACKAGES" \
    "$SUITE" "$base.partial" "deb $MIRROR $SUITE main" >&2
  # pip inside needs this machine's CA bundle (TLS-intercepting proxy); the host's local file://
  # indexes hold x86 wheels only and are not carried over
  cp /etc/ssl/certs/ca-certificates.crt "$base.partial/etc/ssl/certs/host-ca-bundle.crt"
  printf '[global]\ncert = /etc/ssl/certs/host-ca-bundle.crt\ndefault-timeout = 180\n' > "$base.partial/etc/pip.conf"
  touch "$base.partial/.complete"
  prune base "$base.partial"; mv "$base.partial" "$base"
fi
# --- end base

# --- wheels
if [ ! -f "$wheels/.complete" ]; then
  echo "pi rootfs: aarch64 wheels -> $wheels (cache miss)" >&2
  rm -rf "$wheels.partial"
  printf '%s\n' "$requirements" $TEST_TOOLS > "$PI_CACHE/requirements.txt"
  # (the host's file:// indexes hold no aarch64 wheels: their "is ignored" warnings are dropped)
  "$PY" -m pip download -q "${WHEEL_TARGET[@]}" -d "$wheels.partial" -r "$PI_CACHE/requirements.txt" 2>&1 \
    | { grep -v 'is ignored: it is neither a file nor a directory' || true; } >&2
  mv "$PI_CACHE/requirements.txt" "$wheels.partial/requirements.txt"
  touch "$wheels.partial/.complete"
  prune wheels "$wheels.partial"; mv "$wheels.partial" "$wheels"
fi
# --- end wheels

# --- rootfs
echo "pi rootfs: venv with $(ls "$wheels"/*.whl | wc -l) wheels -> $root" >&2
rm -rf "$root.partial"
cp -a "$base" "$root.partial"
chroot "$root.partial" /usr/bin/env -i PATH=/usr/bin:/bin /usr/bin/python3 -m venv --without-pip /opt/venv
"$PY" -m pip install -q --no-index --find-links "$wheels" "${WHEEL_TARGET[@]}" --no-compile \
  --target "$(ls -d "$root.partial"/opt/venv/lib/python3.11)/site-packages" -r "$wheels/requirements.txt" >&2
# byte-compiled inside, so tracebacks name /opt/venv paths and no test process recompiles numpy
chroot "$root.partial" /opt/venv/bin/python -m compileall -q -j 0 /opt/venv/lib >/dev/null
chroot "$root.partial" /opt/venv/bin/python -c 'import importlib.metadata as m
print("\n".join(sorted(f"{d.name}=={d.version}" for d in m.distributions())))' > "$root.partial/opt/venv/freeze.txt"
touch "$root.partial/.complete"
prune rootfs "$root.partial"; mv "$root.partial" "$root"
# --- end rootfs
echo "$root"

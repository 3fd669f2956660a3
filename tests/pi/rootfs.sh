#!/usr/bin/env bash
# Build (or reuse) the cached Debian 12 arm64 root filesystem the Pi job runs in, and print its path.
#
# What goes in: mmdebstrap minbase + PACKAGES from the Debian mirror this machine's apt uses, then
# a venv at /opt/venv holding the project's dependencies + `edge` extra (read from pyproject.toml,
# aarch64 wheels, no TensorFlow) + the test tools the device-side tests import. The project itself
# is not installed: the job bind-mounts the worktree and puts it on PYTHONPATH (tests/pi/run.sh),
# so a code change never invalidates the cache.
#
# Cache: $PI_CACHE/rootfs-<key>, key = sha256 of this script, the package list and the pip
# requirements, so a change to any of them builds a new one (old ones are pruned).
set -euo pipefail
cd "$(dirname "$0")/../.."
PI_CACHE=${PI_CACHE:-/var/cache/statecast-pi}
SUITE=bookworm
MIRROR=${PI_MIRROR:-$(sed -n 's/^URIs: *//p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -1)}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
PACKAGES=python3,python3-venv,python3-pip,mosquitto,ca-certificates
# test tools only: pytest runs the tests, hypothesis (test_payload/test_topics) and cryptography
# (tests/tls_material.py, test_security) are imported by them. Never TensorFlow.
TEST_TOOLS="pytest>=8 hypothesis>=6.100 cryptography>=41"

requirements=$(python3 -c 'import tomllib; p = tomllib.load(open("pyproject.toml", "rb"))["project"]
print("\n".join(p["dependencies"] + p["optional-dependencies"]["edge"]))')
key=$( { cat "$0"; echo "$SUITE $MIRROR $PACKAGES $TEST_TOOLS"; echo "$requirements"; } | sha256sum | cut -c1-16)
root="$PI_CACHE/rootfs-$key"
if [ -f "$root/.complete" ]; then echo "$root"; exit 0; fi

mkdir -p "$PI_CACHE"
rm -rf "$root.partial"
echo "pi rootfs: building $root (cache miss)" >&2
mmdebstrap --quiet --variant=minbase --architectures=arm64 --include="$PACKAGES" \
  "$SUITE" "$root.partial" "deb $MIRROR $SUITE main" >&2

# pip inside needs this machine's CA bundle (a TLS-intercepting proxy) and its timeout; the
# host's local file:// indexes hold x86 wheels only, so they are not carried over.
cp /etc/ssl/certs/ca-certificates.crt "$root.partial/etc/ssl/certs/host-ca-bundle.crt"
printf '[global]\ncert = /etc/ssl/certs/host-ca-bundle.crt\ndefault-timeout = 180\ndisable-pip-version-check = 1\n' \
  > "$root.partial/etc/pip.conf"
printf '%s\n' "$requirements" > "$root.partial/tmp/requirements.txt"
# the wheel cache lives outside the rootfs so a rebuilt rootfs downloads nothing it had before
mkdir -p "$PI_CACHE/pip-cache" "$root.partial/root/.cache/pip"
mount --bind "$PI_CACHE/pip-cache" "$root.partial/root/.cache/pip"
trap 'umount "$root.partial/root/.cache/pip" 2>/dev/null || true' EXIT
chroot "$root.partial" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root /bin/sh -ec "
  python3 -m venv /opt/venv
  /opt/venv/bin/pip install -q --only-binary=:all: -r /tmp/requirements.txt $(printf "'%s' " $TEST_TOOLS)
  /opt/venv/bin/pip freeze > /opt/venv/freeze.txt" >&2
umount "$root.partial/root/.cache/pip"; trap - EXIT
touch "$root.partial/.complete"
for old in "$PI_CACHE"/rootfs-*; do [ "$old" = "$root.partial" ] || rm -rf "$old"; done
mv "$root.partial" "$root"
echo "$root"

#!/usr/bin/env bash
# Run one command inside the cached arm64 root filesystem, under qemu-user via binfmt_misc.
#   tests/pi/run.sh ROOTFS OUT_DIR COMMAND...
# The worktree is bind-mounted at /src and put on the venv's path through a shim package
# (statecast -> /src/statecast, statecast.daemon -> /src/daemon), the same mapping pyproject.toml's
# package-dir makes, so the code under test is always the worktree's. OUT_DIR is mounted at /out.
# /sys is deliberately NOT mounted: with it, qemu segfaults (DESIGN.md pitfalls); without it,
# XNNPACK's cpuinfo fails and the builtin optimised kernels run, so "optimized" here is not the
# XNNPACK path a real Pi takes.
set -euo pipefail
root=$1 out=$2; shift 2
repo=$(cd "$(dirname "$0")/../.." && pwd)
mounts=()
cleanup() { for ((i = ${#mounts[@]} - 1; i >= 0; i--)); do umount -l "${mounts[i]}" 2>/dev/null || true; done; }
trap cleanup EXIT
bind() { mkdir -p "$root$2"; mount --bind "$1" "$root$2"; mounts+=("$root$2"); }
mkdir -p "$out"
bind "$repo" /src
bind "$out" /out
mount -t proc proc "$root/proc"; mounts+=("$root/proc")
bind /dev /dev
mkdir -p "$root/tmp"; mount -t tmpfs -o size=2g tmpfs "$root/tmp"; mounts+=("$root/tmp")
# the shim package (idempotent; symlinks into /src only, so the cache key does not depend on code)
site=$(ls -d "$root"/opt/venv/lib/python3*/site-packages)
mkdir -p "$root/opt/shim/statecast"
ln -sfn /src/statecast/__init__.py "$root/opt/shim/statecast/__init__.py"
ln -sfn /src/daemon "$root/opt/shim/statecast/daemon"
ln -sfn /src/convert "$root/opt/shim/statecast/convert"
echo /opt/shim > "$site/statecast-src.pth"
printf '#!/bin/sh\nexec /opt/venv/bin/python -m statecast.daemon "$@"\n' > "$root/opt/venv/bin/statecast"
chmod +x "$root/opt/venv/bin/statecast"
# PYTHONDONTWRITEBYTECODE: no aarch64-run .pyc files land in the worktree
chroot "$root" /usr/bin/env -i PATH=/opt/venv/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 \
  PYTHONDONTWRITEBYTECODE=1 TMPDIR=/tmp STATECAST_EMULATED=qemu-aarch64 $(env | grep -E '^(PI_|STATECAST_KILLS=)' || true) \
  /bin/sh -c 'cd /src && exec "$@"' sh "$@"

#!/usr/bin/env bash
# Run one command inside the cached arm64 root filesystem, under qemu-user via binfmt_misc.
#   tests/pi/run.sh ROOTFS OUT_DIR COMMAND...
# The mounts live in a private mount namespace (unshare -m): they vanish with the command, and
# two runs on the same rootfs never see each other's /out.
# The worktree is bind-mounted at /src and put on the venv's path through a shim package
# (statecast -> /src/statecast, statecast.daemon -> /src/daemon), the same mapping pyproject.toml's
# package-dir makes, so the code under test is always the worktree's. OUT_DIR is mounted at /out.
# /sys is deliberately NOT mounted: with it, qemu segfaults (DESIGN.md pitfalls); without it,
# XNNPACK's cpuinfo fails and the builtin optimised kernels run, so "optimized" here is not the
# XNNPACK path a real Pi takes.
set -euo pipefail
root=$1 out=$2; shift 2
repo=$(cd "$(dirname "$0")/../.." && pwd)
mkdir -p "$out" "$root/src" "$root/out" "$root/tmp"
# the shim package (idempotent; symlinks into /src only, so the cache key does not depend on code)
site=$(ls -d "$root"/opt/venv/lib/python3*/site-packages)
mkdir -p "$root/opt/shim/statecast"
ln -sfn /src/statecast/__init__.py "$root/opt/shim/statecast/__init__.py"
ln -sfn /src/daemon "$root/opt/shim/statecast/daemon"
ln -sfn /src/convert "$root/opt/shim/statecast/convert"
# `import statecast` at startup binds the name to the shim before `python -m` puts the cwd (/src,
# whose statecast/ holds only __init__.py) first on sys.path
printf '/opt/shim\nimport statecast\n' > "$site/statecast-src.pth"
printf '#!/bin/sh\nexec /opt/venv/bin/python -m statecast.daemon "$@"\n' > "$root/opt/venv/bin/statecast"
chmod +x "$root/opt/venv/bin/statecast"
# Only PI_* and the kill test's STATECAST_* knobs cross into the rootfs; PYTHONDONTWRITEBYTECODE keeps
# aarch64-run .pyc files out of the worktree.
env_in=(PATH=/opt/venv/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 PYTHONDONTWRITEBYTECODE=1
        TMPDIR=/tmp STATECAST_EMULATED=qemu-aarch64 $(env | grep -E '^(PI_|STATECAST_(KILLS|KILL_ROWS|WAIT_SCALE)=)' || true))
exec unshare --mount --propagation private /bin/sh -ec '
  root=$1 repo=$2 out=$3; shift 3
  mount --bind "$repo" "$root/src"
  mount --bind "$out" "$root/out"
  mount --bind /dev "$root/dev"
  mount -t proc proc "$root/proc"
  mount -t tmpfs -o size=2g tmpfs "$root/tmp"
  exec chroot "$root" /usr/bin/env -i "$@"' sh "$root" "$repo" "$out" "${env_in[@]}" \
  /bin/sh -c 'cd /src && exec "$@"' sh "$@"

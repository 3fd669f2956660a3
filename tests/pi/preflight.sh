#!/usr/bin/env bash
# Can this machine run arm64 binaries through qemu-user? Installs and registers what is missing
# when run as root; otherwise, or when it still cannot, says why in one line and exits 1.
set -uo pipefail
fail() { echo "test-pi: cannot run the emulated Pi job: $*" >&2; exit 1; }
binfmt=/proc/sys/fs/binfmt_misc
if [ "$(id -u)" = 0 ]; then
  if ! command -v qemu-aarch64-static >/dev/null || ! command -v mmdebstrap >/dev/null \
     || ! command -v update-binfmts >/dev/null; then
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mmdebstrap qemu-user-static \
        binfmt-support; } >/dev/null || fail "apt-get install mmdebstrap qemu-user-static binfmt-support failed"
  fi
  [ -e "$binfmt/register" ] || mount -t binfmt_misc binfmt_misc "$binfmt" 2>/dev/null \
    || fail "binfmt_misc is not mounted and cannot be (a container without it?)"
  [ -e "$binfmt/qemu-aarch64" ] || update-binfmts --enable qemu-aarch64 >/dev/null 2>&1 \
    || fail "cannot register qemu-aarch64 in binfmt_misc"
else
  fail "needs root (chroot, bind mounts, binfmt_misc registration)"
fi
command -v mmdebstrap >/dev/null || fail "mmdebstrap is not installed"
grep -q '^enabled' "$binfmt/qemu-aarch64" 2>/dev/null || fail "qemu-aarch64 is not enabled in binfmt_misc"
grep -q '^flags:.*F' "$binfmt/qemu-aarch64" || fail "qemu-aarch64 is registered without the F flag (chroot cannot find qemu)"
echo "preflight: qemu-aarch64 registered ($(sed -n 's/^interpreter //p' "$binfmt/qemu-aarch64")), mmdebstrap $(mmdebstrap --version | cut -d' ' -f2)"

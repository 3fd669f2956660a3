"""Start a command under as much of systemd/statecast.service's sandbox as works without systemd.

    unshare --mount --uts --ipc --propagation private -- python sandbox_launch.py SPEC.json
      stage 1 (root, own mount/UTS/IPC namespaces): cgroup v1 limits, private /tmp and /dev,
        hidden homes, /proc with hidepid=invisible, everything else read-only, umask 0077, then
      setpriv (uid/gid 65534, no groups, no capabilities, no_new_privs) -> python sandbox_launch.py --stage2
      stage 2 (unprivileged): MemoryDenyWriteExecute (prctl PR_SET_MDWE) and a seccomp filter
        built with libseccomp like systemd's, then execv the command.

SPEC.json: {"command": [...], "state_dir": "...", "readonly_keep": [...], "cgroup": "name",
"allowed_syscalls": [...], "uid": 65534, "mdwe": true}. Only the test suite runs this (as root, throwaway).
"""
from __future__ import annotations

import ctypes
import ctypes.util
import errno
import json
import os
import subprocess
import sys

MEMORY_MAX_BYTES = 256 * 1024 * 1024          # MemoryMax=256M, MemorySwapMax=0
TASKS_MAX = 64                                # TasksMax=64
# PrivateDevices=yes: the pseudo devices systemd puts in the private /dev (DevicePolicy=closed
# allows the same through the cgroup device filter).
PSEUDO_DEVICES = {"null": "c 1:3", "zero": "c 1:5", "full": "c 1:7", "random": "c 1:8", "urandom": "c 1:9",
                  "tty": "c 5:0"}


def run(*argv: str) -> None:
    subprocess.run(argv, check=True, capture_output=True)


def cgroup_v1_dir(controller: str) -> str | None:
    for line in open("/proc/self/cgroup"):
        _, names, path = line.rstrip("\n").split(":", 2)
        if controller in names.split(","):
            return f"/sys/fs/cgroup/{controller}{path}".rstrip("/")
    return None


def join_cgroups(name: str) -> list[str]:
    """MemoryMax/MemorySwapMax/TasksMax/DevicePolicy=closed with the cgroup v1 controllers present."""
    applied = []
    settings = {"memory": {"memory.limit_in_bytes": MEMORY_MAX_BYTES, "memory.memsw.limit_in_bytes": MEMORY_MAX_BYTES},
                "pids": {"pids.max": TASKS_MAX},
                "devices": {"devices.deny": "a", "devices.allow": [f"{spec} rwm" for spec in PSEUDO_DEVICES.values()]}}
    for controller, files in settings.items():
        parent = cgroup_v1_dir(controller)
        if parent is None or not os.path.isdir(parent):
            continue
        group = os.path.join(parent, name)
        try:
            os.makedirs(group, exist_ok=True)
            for file, values in files.items():
                for value in values if isinstance(values, list) else [values]:
                    if os.path.exists(os.path.join(group, file)):
                        with open(os.path.join(group, file), "w") as handle:
                            handle.write(str(value))
            with open(os.path.join(group, "cgroup.procs"), "w") as handle:
                handle.write(str(os.getpid()))
        except OSError as error:                  # read-only or delegated cgroup tree: go without
            print(f"sandbox: {controller} cgroup not applied: {error}", file=sys.stderr)
            continue
        applied.append(group)
    return applied


def hide(directory: str, keep: list[tuple[str, bool]], mode: str = "0755", scratch: str = "") -> None:
    """Replace `directory` by an empty tmpfs that shows only `keep` (path, writable) beneath it."""
    if not os.path.isdir(directory):
        return
    stage = os.path.join(scratch, "stage" + directory.replace("/", "_"))
    os.makedirs(stage, exist_ok=True)
    run("mount", "-t", "tmpfs", "-o", f"mode={mode},nosuid,nodev", "tmpfs", stage)
    for path, writable in keep:
        if os.path.commonpath([path, directory]) != directory or path == directory:
            continue
        target = stage + path[len(directory):]
        os.makedirs(target, exist_ok=True)
        run("mount", "--bind", path, target)
        if not writable:
            run("mount", "-o", "remount,bind,ro", target)
    run("mount", "--move", stage, directory)


def private_dev(scratch: str) -> None:
    stage = os.path.join(scratch, "stage_dev")
    os.makedirs(stage, exist_ok=True)
    run("mount", "-t", "tmpfs", "-o", "mode=0755,nosuid,noexec", "tmpfs", stage)
    for name in PSEUDO_DEVICES:
        open(os.path.join(stage, name), "w").close()
        run("mount", "--bind", f"/dev/{name}", os.path.join(stage, name))
    os.makedirs(os.path.join(stage, "shm"))
    run("mount", "-t", "tmpfs", "-o", "mode=1777,nosuid,nodev", "tmpfs", os.path.join(stage, "shm"))
    for name, target in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"), ("stdout", "/proc/self/fd/1"),
                         ("stderr", "/proc/self/fd/2")):
        os.symlink(target, os.path.join(stage, name))
    run("mount", "--move", stage, "/dev")


def mount_points() -> list[str]:
    points = []
    for line in open("/proc/self/mountinfo"):
        point = line.split()[4].encode().decode("unicode_escape")      # \040 etc.
        if point not in points:
            points.append(point)
    return points


def read_only_everything(writable: list[str]) -> None:
    """ProtectSystem=strict + ProtectKernelTunables + ProtectControlGroups: every mount read-only
    except the private /tmp, /var/tmp, /dev, /proc and the state directory."""
    for point in mount_points():
        if point in writable or point.startswith(("/dev", "/proc")) or point in ("/tmp", "/var/tmp"):
            continue
        if any(os.path.commonpath([point, w]) == w for w in writable):
            continue
        subprocess.run(["mount", "-o", "remount,bind,ro", point], capture_output=True)
    run("mount", "--bind", "/proc/sys", "/proc/sys")
    run("mount", "-o", "remount,bind,ro", "/proc/sys")


def stage1(spec: dict, spec_path: str) -> None:
    scratch = os.path.dirname(spec_path)
    join_cgroups(spec["cgroup"])
    run("hostname", "statecast-sandbox")                                # ProtectHostname (own UTS ns)
    keep = [(os.path.realpath(p), False) for p in spec["readonly_keep"]] + [(spec["state_dir"], True)]
    for directory in ("/home", "/root", "/run/user"):                   # ProtectHome=yes
        hide(directory, keep, scratch=scratch)
    hide("/var/tmp", keep, mode="1777", scratch=scratch)                # PrivateTmp=yes
    private_dev(scratch)                                                # PrivateDevices=yes
    run("mount", "-t", "proc", "-o", "hidepid=invisible,nosuid,nodev,noexec", "proc", "/proc")  # ProtectProc
    stage2_args = [sys.executable, os.path.abspath(__file__), "--stage2", json.dumps(spec)]
    hide("/tmp", keep, mode="1777", scratch=scratch)                    # last: the spec lives in /tmp
    read_only_everything([spec["state_dir"]])
    os.umask(0o077)                                                     # UMask=0077
    uid = str(spec["uid"])
    os.execvp("setpriv", ["setpriv", "--reuid", uid, "--regid", uid, "--clear-groups", "--no-new-privs",
                          "--inh-caps=-all", "--ambient-caps=-all", "--bounding-set=-all", "--", *stage2_args])


# --- stage 2: seccomp and W^X, as the unprivileged user --------------------------------------
SCMP_ACT_ALLOW = 0x7FFF0000
SCMP_CMP_EQ, SCMP_CMP_MASKED_EQ = 4, 7
PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN = 65, 1
CLONE_NAMESPACES = 0x00020000 | 0x02000000 | 0x04000000 | 0x08000000 | 0x10000000 | 0x20000000 | 0x40000000 | 0x00000080
AF_UNIX, AF_INET, AF_INET6 = 1, 2, 10


def scmp_errno(code: int) -> int:
    return 0x00050000 | (code & 0xFFFF)


class ArgCmp(ctypes.Structure):
    _fields_ = [("arg", ctypes.c_uint), ("op", ctypes.c_int), ("datum_a", ctypes.c_uint64),
                ("datum_b", ctypes.c_uint64)]


def seccomp_filter(allowed: list[str]) -> None:
    """SystemCallFilter=@system-service ~@privileged @resources (the caller resolved the groups),
    SystemCallErrorNumber=EPERM, SystemCallArchitectures=native, RestrictAddressFamilies=AF_INET
    AF_INET6 AF_UNIX, RestrictNamespaces=yes, LockPersonality=yes, RestrictSUIDSGID (chmod family)."""
    lib = ctypes.CDLL(ctypes.util.find_library("seccomp") or "libseccomp.so.2", use_errno=True)
    lib.seccomp_init.restype = ctypes.c_void_p
    lib.seccomp_init.argtypes = [ctypes.c_uint32]
    lib.seccomp_rule_add_array.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int, ctypes.c_uint,
                                           ctypes.POINTER(ArgCmp)]
    lib.seccomp_load.argtypes = [ctypes.c_void_p]
    lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
    ctx = lib.seccomp_init(scmp_errno(errno.EPERM))          # only the native arch: others are killed

    def rule(action: int, name: str, *cmps: tuple[int, int, int, int]) -> None:
        number = lib.seccomp_syscall_resolve_name(name.encode())
        if number < 0:
            return                                            # not a syscall on this architecture
        array = (ArgCmp * max(1, len(cmps)))(*[ArgCmp(*c) for c in cmps])
        result = lib.seccomp_rule_add_array(ctx, action, number, len(cmps), array)
        if result < 0:
            raise OSError(-result, f"seccomp_rule_add {name}")

    conditional = {"socket", "clone", "clone3", "unshare", "setns", "personality", "chmod", "fchmod", "fchmodat"}
    for name in sorted(set(allowed) - conditional):
        rule(SCMP_ACT_ALLOW, name)
    for family in (AF_UNIX, AF_INET, AF_INET6):
        rule(SCMP_ACT_ALLOW, "socket", (0, SCMP_CMP_EQ, family, 0))
    rule(SCMP_ACT_ALLOW, "clone", (0, SCMP_CMP_MASKED_EQ, CLONE_NAMESPACES, 0))
    rule(scmp_errno(errno.ENOSYS), "clone3")                  # as systemd: glibc falls back to clone
    for value in (0, 0xFFFFFFFF):                             # PER_LINUX, and the query
        rule(SCMP_ACT_ALLOW, "personality", (0, SCMP_CMP_EQ, value, 0))
    for name, arg in (("chmod", 1), ("fchmod", 1), ("fchmodat", 2)):
        rule(SCMP_ACT_ALLOW, name, (arg, SCMP_CMP_MASKED_EQ, 0o6000, 0))
    result = lib.seccomp_load(ctx)
    if result < 0:
        raise OSError(-result, "seccomp_load")


def stage2(spec: dict) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if spec.get("mdwe", True) and libc.prctl(PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_MDWE)")               # MemoryDenyWriteExecute=yes
    seccomp_filter(spec["allowed_syscalls"])
    os.execv(spec["command"][0], spec["command"])


if __name__ == "__main__":
    if sys.argv[1] == "--stage2":
        stage2(json.loads(sys.argv[2]))
    else:
        stage1(json.load(open(sys.argv[1])), os.path.abspath(sys.argv[1]))

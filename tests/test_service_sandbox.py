"""The real daemon under the unit's sandboxing, as far as this machine can apply it.

With systemd as PID 1, `systemd-run` applies the unit's own [Service] lines. Without it (a
container, this CI), tests/sandbox_launch.py rebuilds what can be rebuilt from the same kernel
features: namespaces (unshare), setpriv, cgroup v1 limits, prctl(PR_SET_MDWE) and a libseccomp
filter from systemd's own syscall groups. A probe first proves each restriction is in force (so
the daemon test cannot pass vacuously), then the daemon must load numpy + LiteRT, say READY=1 on
an abstract NOTIFY_SOCKET, serve exact forecasts through the real broker, and checkpoint on
SIGTERM. docs/systemd.md lists which unit options this covers.
"""
import ctypes
import ctypes.util
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import uuid

import pytest

from conftest import MACHINE_TEMPERATURE, ROOT
from daemon_proc import DEFAULT_MODEL, Collector, publish_all, publisher, write_config
from service_support import NotifyListener, runtime_section
from statecast.daemon.anomaly import AnomalySettings
from statecast.daemon.engine.step_engine import Engine
from statecast.daemon.messages import Message
from statecast.daemon.model.step_model import StepModel
from statecast.daemon.service.runtime_setup import anomaly_factory_for
from statecast.daemon.state.checkpoint import restore
from statecast.daemon.state.stream_table import StreamTable
from statecast.daemon.tools.series_csv import read_series

UNIT = os.path.join(ROOT, "systemd", "statecast.service")
LAUNCH = os.path.join(ROOT, "tests", "sandbox_launch.py")
INT8_MODEL = os.path.join(ROOT, "models", "machine_temperature-int8")
NOBODY = 65534
TOOLS = ("unshare", "setpriv", "mount", "systemd-analyze")
missing = [tool for tool in TOOLS if shutil.which(tool) is None]
if ctypes.util.find_library("seccomp") is None:
    missing.append("libseccomp")


def _can_unshare() -> bool:
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        return False
    return subprocess.run(["unshare", "--mount", "--uts", "--ipc", "--propagation", "private", "true"],
                          capture_output=True).returncode == 0


# prctl(PR_GET_MDWE) (Linux >= 6.3): the kernel's W^X switch, this machine's MemoryDenyWriteExecute=.
MDWE = ctypes.CDLL(None, use_errno=True).prctl(66, 0, 0, 0, 0) >= 0
pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="building the sandbox needs root (as systemd does)"),
    pytest.mark.skipif(bool(missing), reason=f"missing: {', '.join(missing)}"),
    pytest.mark.skipif(not missing and not _can_unshare(), reason="no mount namespaces here (unshare -m fails)"),
]


def syscall_group(name: str, seen=None) -> set[str]:
    """The syscalls of a systemd group, nested groups expanded, as this systemd defines them."""
    seen = set() if seen is None else seen
    output = subprocess.run(["systemd-analyze", "syscall-filter", name], capture_output=True, text=True,
                            check=True).stdout
    calls = set()
    for line in output.splitlines()[1:]:
        item = line.strip()
        if not item or item.startswith("#"):
            continue
        if item.startswith("@"):
            if item not in seen:
                seen.add(item)
                calls |= syscall_group(item, seen)
        else:
            calls.add(item)
    return calls


def unit_syscall_allow_list() -> list[str]:
    """SystemCallFilter=@system-service then ~@privileged @resources, read from the unit."""
    lines = [line.split("=", 1)[1].split() for line in open(UNIT) if line.startswith("SystemCallFilter=")]
    assert lines == [["@system-service"], ["~@privileged", "@resources"]], lines
    return sorted(syscall_group("@system-service") - syscall_group("@privileged") - syscall_group("@resources"))


class Sandbox:
    """Writes the launcher's spec and starts a command inside; the cgroups are removed by close()."""

    def __init__(self, tmp_path, command):
        self.cgroup = f"statecast-test-{uuid.uuid4().hex[:8]}"
        self.state_dir = str(tmp_path / "state")
        os.makedirs(self.state_dir, exist_ok=True)
        os.chown(self.state_dir, NOBODY, NOBODY)                     # what StateDirectory= does
        os.chmod(self.state_dir, 0o700)
        keep = {ROOT, sys.prefix, sys.base_prefix, os.path.dirname(os.path.realpath(sys.executable)),
                str(tmp_path / "etc")}
        spec = {"command": command, "state_dir": self.state_dir, "readonly_keep": sorted(keep),
                "cgroup": self.cgroup, "allowed_syscalls": unit_syscall_allow_list(), "uid": NOBODY, "mdwe": MDWE}
        self.spec_path = tmp_path / "sandbox.json"
        self.spec_path.write_text(json.dumps(spec))
        self.log_path = str(tmp_path / "sandbox.log")
        self.argv = ["unshare", "--mount", "--uts", "--ipc", "--propagation", "private", "--",
                     sys.executable, LAUNCH, str(self.spec_path)]

    def popen(self, env=None) -> subprocess.Popen:
        return subprocess.Popen(self.argv, stdout=open(self.log_path, "a"), stderr=subprocess.STDOUT,
                                env={**os.environ, **(env or {})})

    def cgroup_value(self, controller: str, name: str) -> int | None:
        for line in open("/proc/self/cgroup"):
            _, names, path = line.rstrip("\n").split(":", 2)
            if controller in names.split(","):
                file = f"/sys/fs/cgroup/{controller}{path.rstrip('/')}/{self.cgroup}/{name}"
                return int(open(file).read()) if os.path.exists(file) else None
        return None

    def close(self) -> None:
        for line in open("/proc/self/cgroup"):
            _, names, path = line.rstrip("\n").split(":", 2)
            for controller in ("memory", "pids", "devices"):
                if controller in names.split(","):
                    directory = f"/sys/fs/cgroup/{controller}{path.rstrip('/')}/{self.cgroup}"
                    if os.path.isdir(directory):
                        os.rmdir(directory)


PROBE = r"""
import ctypes, errno, json, mmap, os, socket, sys, threading
state, secret = sys.argv[1], sys.argv[2]
out = {}
def fails(fn):
    try:
        fn()
    except OSError as error:
        return errno.errorcode.get(error.errno, str(error.errno))
    return None
status = dict(line.split(":", 1) for line in open("/proc/self/status"))
out["uid"] = os.getuid(); out["groups"] = os.getgroups(); out["umask"] = oct(os.umask(0o077))
for key in ("NoNewPrivs", "CapEff", "CapBnd", "CapAmb", "Seccomp"):
    out[key] = status[key].strip()
out["read_only"] = {p: bool(os.statvfs(p).f_flag & os.ST_RDONLY) for p in ("/", "/etc", sys.prefix, "/sys", "/proc/sys", state)}
out["secret_visible"] = os.path.exists(secret)
out["dev"] = sorted(os.listdir("/dev"))
out["pid1_visible"] = os.path.exists("/proc/1/status")
out["hostname"] = socket.gethostname()
out["wx_mmap"] = fails(lambda: mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC))
out["netlink"] = fails(lambda: socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0))
out["inet"] = fails(lambda: socket.socket(socket.AF_INET, socket.SOCK_STREAM).close())
libc = ctypes.CDLL(None, use_errno=True)
def c_call(fn, *args):
    return None if fn(*args) == 0 else errno.errorcode[ctypes.get_errno()]
out["unshare_userns"] = c_call(libc.unshare, 0x10000000)
out["personality"] = None if libc.personality(0x0040000) != -1 else errno.errorcode[ctypes.get_errno()]
out["setpriority"] = fails(lambda: os.setpriority(os.PRIO_PROCESS, 0, 5))
out["setaffinity"] = fails(lambda: os.sched_setaffinity(0, {0}))
path = os.path.join(state, "probe")
open(path, "w").close()
out["new_file_mode"] = oct(os.stat(path).st_mode & 0o777)
out["chmod_setuid"] = fails(lambda: os.chmod(path, 0o4755))
out["chmod_plain"] = fails(lambda: os.chmod(path, 0o640))
os.unlink(path)
stop = threading.Event(); started = 0
threads = []
for _ in range(100):
    try:
        t = threading.Thread(target=stop.wait); t.start(); threads.append(t); started += 1
    except RuntimeError:
        break
stop.set(); [t.join() for t in threads]
out["threads_started"] = started
import numpy as np
from statecast.daemon.engine.step_engine import Engine
from statecast.daemon.messages import Message
from statecast.daemon.model.step_model import StepModel
out["models"] = {}
for directory in sys.argv[3:]:
    model = StepModel(directory)
    result = Engine(model).process([Message("s", (70.0,), 1.0, 1.0)])[0]
    out["models"][os.path.basename(directory)] = [model.backend.name, float(result.forecast[0, 0])]
print("PROBE " + json.dumps(out))
"""


def test_systemd_run_with_the_units_own_options(tmp_path):
    """Where systemd is PID 1: the unit's sandbox lines, applied by systemd itself, to a probe that
    loads numpy + LiteRT and steps both shipped models."""
    check = subprocess.run(["systemd-run", "--wait", "--pipe", "--quiet", "true"], capture_output=True, text=True)
    if check.returncode != 0:
        pytest.skip(f"systemd-run unusable here: {' '.join(check.stderr.split())[:160]}")
    skip = {"Type", "NotifyAccess", "ExecStart", "ExecReload", "WatchdogSec", "Restart", "RestartSec",
            "TimeoutStartSec", "TimeoutStopSec", "StateDirectory", "StateDirectoryMode", "ConfigurationDirectory",
            "ConfigurationDirectoryMode", "WorkingDirectory", "Documentation", "Description", "Wants", "After",
            "StartLimitIntervalSec", "StartLimitBurst", "WantedBy"}
    properties = []
    for line in open(UNIT):
        key, sep, value = line.strip().partition("=")
        if sep and not line.startswith("#") and key not in skip:
            properties += ["-p", f"{key}={value}"]
    code = ("import numpy, sys; from statecast.daemon.model.step_model import StepModel; "
            "[print(StepModel(d).backend.name) for d in sys.argv[1:]]")
    result = subprocess.run(["systemd-run", "--wait", "--pipe", "--quiet", *properties, "-p", f"BindReadOnlyPaths={ROOT}",
                             sys.executable, "-c", code, DEFAULT_MODEL, INT8_MODEL],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]


def test_probe_sees_every_restriction_and_still_runs_litert(tmp_path):
    secret = tmp_path / "outside-secret"
    secret.write_text("not for the service")
    (tmp_path / "etc").mkdir()
    sandbox = Sandbox(tmp_path, [sys.executable, "-c", PROBE, str(tmp_path / "state"), str(secret),
                                 DEFAULT_MODEL, INT8_MODEL])
    try:
        process = sandbox.popen()
        process.wait(timeout=120)
        log = open(sandbox.log_path).read()
        assert process.returncode == 0, log[-3000:]
        probe = json.loads(re.search(r"^PROBE (.*)$", log, re.M).group(1))
        print("sandbox probe:", json.dumps(probe))
        assert probe["uid"] == NOBODY and probe["groups"] == [] and probe["umask"] == "0o77"
        assert probe["NoNewPrivs"] == "1" and probe["Seccomp"] == "2"
        assert int(probe["CapEff"], 16) == int(probe["CapBnd"], 16) == int(probe["CapAmb"], 16) == 0
        assert probe["read_only"] == {"/": True, "/etc": True, sys.prefix: True, "/sys": True, "/proc/sys": True,
                                      str(tmp_path / "state"): False}
        assert not probe["secret_visible"] and not probe["pid1_visible"]
        assert set(probe["dev"]) == {"null", "zero", "full", "random", "urandom", "tty", "shm", "fd", "stdin",
                                     "stdout", "stderr"}
        assert probe["hostname"] == "statecast-sandbox"
        if MDWE:                                                              # MemoryDenyWriteExecute
            assert probe["wx_mmap"] in ("EACCES", "EPERM")
        else:
            print("kernel without PR_SET_MDWE (< 6.3): MemoryDenyWriteExecute not exercised")
        assert probe["netlink"] == "EPERM" and probe["inet"] is None          # RestrictAddressFamilies
        assert probe["unshare_userns"] == "EPERM"                             # RestrictNamespaces
        assert probe["personality"] == "EPERM"                                # LockPersonality
        assert probe["setpriority"] == probe["setaffinity"] == "EPERM"        # ~@resources
        assert probe["new_file_mode"] == "0o600"                              # UMask=0077
        assert probe["chmod_setuid"] == "EPERM" and probe["chmod_plain"] is None   # RestrictSUIDSGID
        if sandbox.cgroup_value("pids", "pids.max") is not None:
            assert probe["threads_started"] < 64                              # TasksMax=64
        reference = {}
        for directory in (DEFAULT_MODEL, INT8_MODEL):
            model = StepModel(directory)
            reference[os.path.basename(directory)] = [
                model.backend.name, float(Engine(model).process([Message("s", (70.0,), 1.0, 1.0)])[0].forecast[0, 0])]
        assert probe["models"] == reference
        assert "XNNPACK" in log and "Error in cpuinfo" not in log
    finally:
        sandbox.close()


def test_daemon_serves_forecasts_inside_the_sandbox(tmp_path, broker):
    (tmp_path / "etc").mkdir()
    config = write_config(tmp_path / "etc" / "config.toml", broker.port, str(tmp_path / "state"),
                          client_id=f"sandboxed-{uuid.uuid4().hex[:8]}", extra=runtime_section())
    os.chmod(config, 0o644)
    sandbox = Sandbox(tmp_path, [sys.executable, "-m", "statecast.daemon", "serve", "--config", config])
    notify = NotifyListener(f"@statecast-sandbox-{uuid.uuid4().hex[:12]}", watchdog_usec=2_000_000)
    collector = Collector(broker.port)
    pub = publisher(broker.port, client_id=f"pub-sandbox-{uuid.uuid4().hex[:8]}")
    process = sandbox.popen(env=notify.env)
    try:
        notify.wait_for("READY=1", timeout=60)
        series = read_series(MACHINE_TEMPERATURE)
        data = [(float(series.timestamps[i]), float(series.values[i, 0])) for i in range(7000, 7040)]
        publish_all(pub, [("sensors/jail/temperature", json.dumps({"value": v, "ts": ts})) for ts, v in data])
        collector.wait_for(lambda: len(collector.json_on("statecast/forecast/jail")) == len(data), what="forecasts")
        model = StepModel(DEFAULT_MODEL)
        engine = Engine(model, anomaly_factory=anomaly_factory_for(model, AnomalySettings()))
        expected = [(r.forecast[:, 0].tolist(), r.anomaly_score)
                    for r in engine.process([Message("s", (v,), ts, ts) for ts, v in data])]
        assert [(m["forecast"], m["anomaly_score"]) for m in collector.json_on("statecast/forecast/jail")] == expected
        status = dict(line.split(":", 1) for line in open(f"/proc/{process.pid}/status"))
        assert status["Uid"].split()[0] == str(NOBODY) and status["Seccomp"].strip() == "2"
        assert len(notify.times_of("WATCHDOG=1")) >= 1
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
        notify.wait_for("STOPPING=1", timeout=5)
        checkpoint = tmp_path / "state" / "temperature.ckpt"
        info = os.stat(checkpoint)
        assert (info.st_uid, info.st_mode & 0o777) == (NOBODY, 0o600)
        table = StreamTable(engine.table.state_shapes, 10)
        assert restore(str(checkpoint), table, model.manifest.sha256)[0] == 1 and table.get("jail").steps == len(data)
        peak_mib = (sandbox.cgroup_value("memory", "memory.max_usage_in_bytes") or 0) / 2**20
        print(f"sandboxed daemon: peak memory {peak_mib:.0f} MiB (MemoryMax=256M), "
              f"peak tasks {sandbox.cgroup_value('pids', 'pids.peak')} (TasksMax=64)")
        assert "Operation not permitted" not in open(sandbox.log_path).read()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        pub.disconnect()
        collector.close()
        notify.close()
        sandbox.close()

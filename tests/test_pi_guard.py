"""Issue 17 pieces that need no emulator: the 32-bit guard (Python and install.sh), the kernel
choice ([runtime] kernels, int8 -> reference by default), the parity comparison's bounds and
`statecast bench`. Runs on x86 in `make test` and on aarch64 in the Pi job."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from statecast.daemon import cli
from statecast.daemon.config import ConfigError, parse_config
from statecast.daemon.model.backends.kernels import resolve_kernels
from statecast.daemon.model.step_model import StepModel
from statecast.daemon.service import platform_check

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "pi"))
import parity  # noqa: E402

INSTALL = os.path.join(ROOT, "systemd", "install.sh")
MODEL_INT8 = os.path.join(ROOT, "models", "default-int8")
MODEL_FLOAT = os.path.join(ROOT, "models", "default")


# --- 32-bit guard ---------------------------------------------------------------------------------

@pytest.mark.parametrize("machine, bits", [("armv7l", 32), ("armv6l", 32), ("aarch64", 32), ("armv8l", 32)])
def test_32_bit_userland_is_refused_with_how_to_check(machine, bits):
    problem = platform_check.userland_problem(machine, bits)
    assert problem is not None and len(problem.splitlines()) == 1
    assert "64-bit" in problem and "getconf LONG_BIT" in problem and machine in problem


@pytest.mark.parametrize("machine", ["aarch64", "x86_64"])
def test_64_bit_userland_passes(machine):
    assert platform_check.userland_problem(machine, 64) is None


def test_statecast_stops_before_parsing_on_32_bit(monkeypatch, capsys):
    monkeypatch.setattr(platform_check.platform, "machine", lambda: "armv7l")
    assert cli.main(["score", "--model", MODEL_INT8, "--csv", "missing.csv", "--out", "x.csv"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "64-bit Raspberry Pi OS" in err and not os.path.exists("x.csv")


def run_install(tmp_path, machine: str, bits: str):
    env = {**os.environ, "STATECAST_MACHINE": machine, "STATECAST_LONG_BIT": bits}
    return subprocess.run(["bash", INSTALL, str(tmp_path)], env=env, capture_output=True, text=True, timeout=30)


def test_install_sh_stops_on_32_bit_before_installing_anything(tmp_path):
    result = run_install(tmp_path, "armv7l", "32")
    assert result.returncode == 1 and result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1
    assert "64-bit Raspberry Pi OS" in result.stderr and "getconf LONG_BIT" in result.stderr


def test_install_sh_guard_lets_64_bit_through(tmp_path):
    # An empty SOURCE_DIR: past the guard, install.sh stops at its next check ("not a statecast
    # source tree", or "run as root" for a non-root user), before installing anything.
    result = run_install(tmp_path, "aarch64", "64")
    assert result.returncode == 1 and "64-bit" not in result.stderr
    assert "not a statecast source tree" in result.stderr or "run as root" in result.stderr


# --- kernel choice -------------------------------------------------------------------------------

def test_auto_kernels_are_reference_for_integer_models_only():
    assert resolve_kernels("auto", "int8") == "reference"
    assert resolve_kernels("auto", "dynamic") == "reference"
    assert resolve_kernels("auto", "float32") == "optimized"
    assert resolve_kernels("auto", "int8", has_delegate=True) == "optimized"
    assert resolve_kernels("optimized", "int8") == "optimized"
    assert resolve_kernels("reference", "float32") == "reference"
    with pytest.raises(ValueError):
        resolve_kernels("fast", "int8")


def test_int8_model_runs_without_xnnpack_by_default():
    model = StepModel(MODEL_INT8, max_batch=4)
    assert model.kernels == "reference"
    assert "DELEGATE" not in model.loaded_ops()          # no XNNPACK node: the reference kernels ran


def test_runtime_kernels_key():
    base = {"broker": {"host": "127.0.0.1"}, "streams": [{"topic": "s/+/t", "model": "models/default"}]}
    assert parse_config(base, "c.toml", ROOT).runtime.kernels == "auto"
    assert parse_config({**base, "runtime": {"kernels": "optimized"}}, "c.toml", ROOT).runtime.kernels == "optimized"
    with pytest.raises(ConfigError, match="kernels"):
        parse_config({**base, "runtime": {"kernels": "xnnpack"}}, "c.toml", ROOT)


# --- parity bounds -------------------------------------------------------------------------------

def rows(forecasts, scores, events):
    return [{"step": str(i), "forecast_1": repr(f), "anomaly_score": repr(s), "event": e, "kernels": "reference"}
            for i, (f, s, e) in enumerate(zip(forecasts, scores, events))]


def test_parity_identical_runs_hold_every_bound():
    x86 = rows([1.0, 2.0, 3.0], [0.1, 0.995, 0.2], ["", "alert", "clear"])
    figures = parity.compare(x86, x86)
    assert figures["differing"] == 0 and parity.violations(figures, integer_model=True) == []


def test_parity_any_int8_forecast_difference_or_alert_difference_fails():
    x86 = rows([1.0, 2.0, 3.0], [0.1, 0.995, 0.2], ["", "alert", "clear"])
    nudged = rows([1.0, 2.0 + 1e-6, 3.0], [0.1, 0.995, 0.2], ["", "alert", "clear"])
    assert parity.violations(parity.compare(x86, nudged), integer_model=True)
    assert parity.violations(parity.compare(x86, nudged), integer_model=False) == []   # 1e-6 < 1e-5 x range 2
    moved = rows([1.0, 2.0, 3.0], [0.1, 0.98, 0.995], ["", "", "alert"])
    reasons = parity.violations(parity.compare(x86, moved), integer_model=False)
    assert any("alert events differ" in r for r in reasons)


# --- statecast bench -----------------------------------------------------------------------------

def test_bench_reports_kernels_latency_throughput_and_memory():
    result = subprocess.run([sys.executable, "-m", "statecast.daemon", "bench", "--model", MODEL_INT8,
                             "--streams", "300", "--max-batch", "64", "--seconds", "0.05"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    out = result.stdout
    assert "kernels: reference" in out and "runtime: ai_edge_litert" in out
    for figure in ("step latency at batch 1:", "step latency at batch 64:", "stream-steps/s with 300 streams",
                   "RSS per 1,000 streams:"):
        assert figure in out, out


# --- batch invariance by kernel path -------------------------------------------------------------
# The daemon steps whichever streams arrived together in one batch; `statecast score` steps one.
# On the reference kernels a stream's result cannot depend on its batch neighbours (each row is
# computed in one fixed order). On the optimized kernels it may: measured under qemu on aarch64's
# builtin kernels, float models differ by up to 1.2e-7 of the output between a batch of 12 and
# single steps (a float32 rounding of a different summation order; x86's XNNPACK: 0), hence the
# 1e-6 relative bound there, and exact equality on the reference kernels.

@pytest.mark.parametrize("name", ["default", "default-int8", "default-int16x8", "machine_temperature-float32",
                                  "machine_temperature-int8"])
@pytest.mark.parametrize("kernels", ["reference", "optimized"])
def test_a_streams_result_does_not_depend_on_its_batch(name, kernels):
    import numpy as np
    model = StepModel(os.path.join(ROOT, "models", name), max_batch=16, kernels=kernels)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(12, model.n_features)).astype(np.float32)                     # (12, features)
    states = [(0.3 * rng.normal(size=(12,) + shape)).astype(np.float32) for shape in model.state_sizes]
    batched, _ = model.step(x, states)                                                  # (12, outputs)
    single = np.concatenate([model.step(x[i:i + 1], [s[i:i + 1] for s in states])[0] for i in range(12)])
    if kernels == "reference":
        assert np.array_equal(batched, single)
    else:
        assert np.abs(batched - single).max() <= 1e-6 * max(1.0, float(np.abs(single).max()))

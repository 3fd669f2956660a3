"""A new user's first hour (issue 18): help and errors that say what to do, quiet logs, fresh stats."""
import json
import logging
import os
import subprocess
import sys
import time

import pytest

from broker import Mosquitto, free_port
from daemon_proc import Collector, DaemonProcess, write_config
from statecast.daemon.cli import build_parser
from statecast.daemon.mqtt.routing import RejectionLog

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEVICE_COMMANDS = ("convert", "serve", "score", "replay", "watch")


def statecast(*args, timeout: float = 120):
    return subprocess.run([sys.executable, "-m", "statecast.daemon", *args], capture_output=True, text=True,
                          timeout=timeout)


def subparsers():
    return build_parser()._subparsers._group_actions[0].choices


@pytest.mark.parametrize("command", DEVICE_COMMANDS)
def test_every_option_has_help_and_its_default_shown(command):
    parser = subparsers()[command]
    text = parser.format_help()
    for action in parser._actions:
        if action.dest == "help":
            continue
        assert action.help, f"{command} {action.option_strings or action.dest}: no help text"
        if action.option_strings and action.default not in (None, False) and not action.required:
            assert f"(default: {action.default})" in " ".join(text.split()), (command, action.dest)
    if any(a.dest == "time_column" for a in parser._actions):
        assert "UTC" in text


def test_version():
    done = statecast("--version")
    assert done.returncode == 0 and done.stdout.strip().startswith("statecast 0.")


def test_value_columns_is_the_column_flag_everywhere_old_names_kept():
    parser = build_parser()
    for argv in (["convert", "m.keras", "--out", "o", "--value-columns", "a,b"],
                 ["convert", "m.keras", "--out", "o", "--features", "a,b"]):
        assert parser.parse_args(argv).features == "a,b"
    for flag in ("--value-columns", "--fields"):
        assert parser.parse_args(["replay", "--csv", "c", "--topic", "t", flag, "a,b"]).value_columns == "a,b"
    assert parser.parse_args(["score", "--model", "m", "--csv", "c", "--out", "o",
                              "--value-columns", "x"]).value_columns == "x"


def test_a_keras_file_as_model_says_convert_it_first(tmp_path):
    config = write_config(tmp_path / "c.toml", 1883, str(tmp_path / "state"),
                          model=os.path.join(ROOT, "tests", "fixtures", "lstm.keras"))
    done = statecast("serve", "--config", config, "--check-config")
    assert done.returncode == 2
    assert "convert it first: statecast convert" in done.stderr and len(done.stderr.strip().splitlines()) == 1


def test_bad_message_warnings_are_rate_limited_per_topic(caplog):
    clock = [0.0]
    warnings = RejectionLog(now=lambda: clock[0])
    with caplog.at_level(logging.WARNING, logger="statecast.routing"):
        for second in range(0, 60, 10):                        # six bad messages in a minute, one topic
            clock[0] = float(second)
            warnings.warn("sensors/a/temperature", "not JSON", "bad_json")
        warnings.warn("sensors/b/temperature", "not JSON", "bad_json")   # another topic warns at once
        clock[0] = 61.0
        warnings.warn("sensors/a/temperature", "not JSON", "bad_json")
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 3, lines
    assert "sensors/b/temperature" in lines[1]
    assert "5 more dropped on this topic in the last 61 s" in lines[2]


def test_parity_failure_prints_the_report_and_next_steps(tmp_path):
    from statecast.convert.convert_common import ConvertOptions, install_verified
    from statecast.convert.errors import ConversionError
    from statecast.daemon.model.step_model import StepModel
    model = os.path.join(ROOT, "models", "default")
    content = open(os.path.join(model, "model.tflite"), "rb").read()
    manifest = json.load(open(os.path.join(model, "manifest.json")))
    manifest["quantization"] = "int8"
    figures = {"steps": 5000, "max_abs_error": 0.31, "max_abs_error_over_range": 0.004, "rmse_keras": 1.0,
               "rmse_step": 1.077, "rmse_ratio": 1.077, "tolerance": "rmse_ratio <= 1.05", "pass": False}
    staging = tmp_path / "staging"
    staging.mkdir()
    out = tmp_path / "out"
    with pytest.raises(ConversionError) as caught:
        install_verified(str(staging), content, manifest, ConvertOptions("m.keras", "int8", str(out)), StepModel,
                         lambda artifact: {"parity": dict(figures)})
    text = str(caught.value)
    assert text.splitlines()[0] == ("parity check failed (rmse_ratio <= 1.05, got rmse_ratio 1.077); "
                                    "no artifact written")
    for figure in ("rmse_keras: 1", "rmse_step: 1.077", "max_abs_error: 0.31", "steps: 5000"):
        assert figure in text
    for step in ("--quantize dynamic", "--calibration-csv", "--keep-on-parity-failure"):
        assert step in text
    assert not out.exists()


def test_reconnect_lines_give_cause_and_delay_and_stats_start_fresh(tmp_path):
    port = free_port()
    config = write_config(tmp_path / "c.toml", port, str(tmp_path / "state"))
    daemon = DaemonProcess(config)                  # no broker yet
    deadline = time.monotonic() + 20
    while "next attempt in" not in daemon.log():
        assert time.monotonic() < deadline, daemon.log()
        time.sleep(0.1)
    assert f"cannot connect to broker 127.0.0.1:{port} (Connection refused); next attempt in 1 s" in daemon.log()
    server = Mosquitto(port=port).start()
    try:
        daemon.wait_serving()
        collector = Collector(port, topics=("statecast/stats",))
        collector.wait_for(lambda: collector.json_on("statecast/stats"), what="stats")
        assert collector.json_on("statecast/stats")[-1]["last_error"] is None
        collector.close()
    finally:
        daemon.stop()
        server.cleanup()


def test_home_assistant_sensor_unit_comes_from_the_config(tmp_path):
    from daemon_proc import publish_all, publisher
    server = Mosquitto().start()         # its own broker: the discovery configs it leaves are retained
    try:
        config = write_config(tmp_path / "c.toml", server.port, str(tmp_path / "state"),
                              stream_extra='unit = "°C"', extra="[homeassistant]\nenabled = true\n")
        daemon = DaemonProcess(config)
        daemon.wait_serving()
        collector = Collector(server.port, topics=("homeassistant/sensor/statecast_unit1/#",))
        pub = publisher(server.port, client_id="pub-ha-unit")
        publish_all(pub, [("sensors/unit1/temperature", json.dumps({"value": 20.5, "ts": 1.0e9}))])
        collector.wait_for(lambda: collector.messages, what="the sensor's discovery config")
        assert json.loads(collector.messages[0][1])["unit_of_measurement"] == "°C"
        pub.disconnect()
        collector.close()
        daemon.stop()
    finally:
        server.cleanup()


def test_convert_is_quiet_unless_verbose(tmp_path):
    """stdout: the report (artifact, parity, one Edge TPU line); stderr: nothing from TensorFlow,
    the converter or LiteRT."""
    csv = os.path.join(ROOT, "data", "nab", "data", "realKnownCause", "machine_temperature_system_failure.csv")
    done = statecast("convert", os.path.join(ROOT, "tests", "fixtures", "lstm.keras"), "--calibration-csv", csv,
                     "--out", str(tmp_path / "m"), timeout=600)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    lines = done.stdout.splitlines()
    assert len(lines) == 3 and lines[0].startswith("wrote ") and "PASS" in lines[1]
    assert lines[2].startswith("Edge TPU pre-check: not for the Edge TPU as converted (needs --quantize int8; "
                               "--static-batch N)")


def test_score_reads_other_column_names_with_value_columns(tmp_path):
    lines = open(os.path.join(ROOT, "data", "nab", "data", "realKnownCause",
                              "ambient_temperature_system_failure.csv")).read().splitlines()[1:201]
    source = tmp_path / "room.csv"
    source.write_text("when,temp\n" + "\n".join(lines) + "\n")
    out = tmp_path / "scored.csv"
    model = os.path.join(ROOT, "models", "default")
    done = statecast("score", "--model", model, "--csv", str(source), "--time-column", "when",
                     "--value-columns", "temp", "--out", str(out))
    assert done.returncode == 0, done.stderr
    rows = out.read_text().splitlines()
    assert len(rows) == 201 and rows[0].startswith("timestamp,temp,forecast_1")
    wrong = statecast("score", "--model", model, "--csv", str(source), "--time-column", "when",
                      "--value-columns", "temp,temp", "--out", str(out))
    assert wrong.returncode == 2 and "--value-columns names 2 column(s) but model" in wrong.stderr

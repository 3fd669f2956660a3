"""`make demo`: the whole path on one machine, with real parts.

A private mosquitto on a free loopback port, `statecast serve` on a shipped model, and
`statecast replay` of a real sensor CSV (NAB machine_temperature); forecasts and alerts are
printed as they arrive, then everything stops cleanly.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from .local_broker import LocalMosquitto
from .series_csv import parse_timestamp

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))   # daemon/tools/demo.py -> repo
CSV = os.path.join(ROOT, "data", "nab", "data", "realKnownCause", "machine_temperature_system_failure.csv")
MODELS = [os.path.join(ROOT, "models", name) for name in ("default", "machine_temperature-float32")]
PRINT_EVERY = 1000


def _config(directory: str, port: int, model: str) -> str:
    path = os.path.join(directory, "statecast.toml")
    with open(path, "w") as handle:
        handle.write(f'[broker]\nhost = "127.0.0.1"\nport = {port}\nclient_id = "statecast-demo"\n\n'
                     f'[[streams]]\ntopic = "sensors/+/temperature"\nmodel = "{model}"\nname = "demo"\n\n'
                     f'[state]\ndirectory = "{directory}/state"\n\n[output]\nstats_interval_seconds = 1\n')
    return path


def _watch(port: int, rows_expected: int, done: threading.Event, thresholds: tuple[float, float]) -> dict:
    seen = {"forecasts": 0, "alerts": 0, "abs_error": 0.0, "scored": 0, "previous": None, "stats": {},
            "inside": 0, "caught": set()}
    windows = labelled_windows(CSV)

    def on_message(_client, _userdata, message):
        body = json.loads(message.payload)
        if message.topic == "statecast/stats":
            seen["stats"] = body
            # Done when every message is accounted for: forecast, or rejected with a reason.
            if body["messages_in"] >= rows_expected and seen["forecasts"] >= body["forecasts_out"]:
                done.set()
            return
        if message.topic.startswith("statecast/alert/"):
            seen["alerts"] += body["event"] == "alert"
            print(alert_line(body, windows, thresholds, seen))
            return
        seen["forecasts"] += 1
        if seen["previous"] is not None:
            seen["abs_error"] += abs(body["value"] - seen["previous"])
            seen["scored"] += 1
        seen["previous"] = body["forecast"][0]
        if seen["forecasts"] % PRINT_EVERY == 0 or seen["forecasts"] <= 3:
            score = body["anomaly_score"]
            print(f"  forecast #{body['step']:>6} stream={body['stream']} value={body['value']:.2f} "
                  f"next={body['forecast'][0]:.2f} anomaly_score={'-' if score is None else f'{score:.3f}'}")

    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="statecast-demo-watcher")
    client.on_message = on_message
    client.connect("127.0.0.1", port)
    client.subscribe([("statecast/forecast/#", 1), ("statecast/alert/#", 1), ("statecast/stats", 1)])
    client.loop_start()
    seen["client"] = client
    return seen


def main(rows: int = 0, rate_hz: float = 3000.0) -> int:
    model = next(m for m in MODELS if os.path.exists(os.path.join(m, "manifest.json")))
    rows = rows or sum(1 for _ in open(CSV)) - 1
    broker = LocalMosquitto().start()
    work = tempfile.mkdtemp(prefix="statecast-demo-")
    print(f"mosquitto on 127.0.0.1:{broker.port}; model {os.path.relpath(model, ROOT)}; replaying {rows} rows "
          f"of {os.path.basename(CSV)} at {rate_hz:.0f} msg/s")
    daemon = subprocess.Popen([sys.executable, "-m", "statecast.daemon", "serve", "--config",
                               _config(work, broker.port, model)], stdout=open(os.path.join(work, "daemon.log"), "w"),
                              stderr=subprocess.STDOUT)
    done = threading.Event()
    try:
        seen = _watch(broker.port, rows, done, model_thresholds(model))
        _wait_for_log(os.path.join(work, "daemon.log"), "serving:", daemon)
        started = time.monotonic()
        subprocess.run([sys.executable, "-m", "statecast.daemon", "replay", "--csv", CSV, "--topic",
                        "sensors/{stream}/temperature", "--stream-id", "machine1", "--port", str(broker.port),
                        "--rate", str(rate_hz), "--limit", str(rows)], check=True)
        done.wait(timeout=120)
        elapsed = time.monotonic() - started
        mae = seen["abs_error"] / max(seen["scored"], 1)
        rejected = seen["stats"].get("rejected", {})
        print(f"received {seen['forecasts']} forecasts and {seen['alerts']} alerts in {elapsed:.1f} s; "
              f"mean |next-step error| {mae:.3f}; rejected by the daemon: {rejected or 'none'}; "
              f"missing steps: {seen['stats'].get('missing_steps', 0)}")
        print(f"alerts inside NAB's labelled failure windows: {seen['inside']}, outside: "
              f"{seen['alerts'] - seen['inside']}; windows caught: {len(seen['caught'])} of "
              f"{len(labelled_windows(CSV))} (data/nab/windows.json)")
        if rejected.get("duplicate_or_old_timestamp"):
            print("  (the CSV steps back in time once, by 55 minutes: those rows are older than what the stream "
                  "has seen, so they are counted and not stepped twice)")
        seen["client"].loop_stop()
    finally:
        daemon.send_signal(signal.SIGTERM)
        code = daemon.wait(timeout=30)
        broker.cleanup()
    print(f"daemon stopped cleanly (exit {code}); its log: {os.path.join(work, 'daemon.log')}")
    accounted = seen["forecasts"] + sum(seen["stats"].get("rejected", {}).values())
    return 0 if code == 0 and accounted >= rows else 1


def labelled_windows(csv_path: str) -> list[tuple[float, float]]:
    """NAB's labelled anomaly windows of one data file, as (start, end) epoch seconds (UTC)."""
    with open(os.path.join(ROOT, "data", "nab", "windows.json")) as handle:
        windows = json.load(handle)
    key = "/".join(csv_path.split(os.sep)[-2:])
    return [(parse_timestamp(start), parse_timestamp(end)) for start, end in windows.get(key, [])]


def model_thresholds(model_dir: str) -> tuple[float, float]:
    """(threshold, clear_threshold) the model's tuned anomaly settings give (the daemon's defaults
    otherwise): shown where an event's payload carries no threshold of its own."""
    with open(os.path.join(model_dir, "manifest.json")) as handle:
        settings = json.load(handle).get("anomaly", {}).get("settings", {})
    return settings.get("threshold", 0.99), settings.get("clear_threshold", 0.9)


def alert_line(body: dict, windows: list[tuple[float, float]], thresholds: tuple[float, float], seen: dict) -> str:
    """One printed line per event: an alert with its threshold and whether it falls inside a
    labelled window; a clear as a clear (the score is below the clear threshold)."""
    when = time.strftime("%Y-%m-%d %H:%M", time.gmtime(body["ts"]))
    if body["event"] == "clear":
        threshold = body.get("threshold", thresholds[1])
        lasted = body.get("duration_seconds")
        return (f"  clear  {when} stream={body['stream']} score={body['score']:.4f} fell below {threshold:g}"
                + (f" after {lasted / 3600:.1f} h" if lasted is not None else ""))
    threshold = body.get("threshold", thresholds[0])
    inside = next((i for i, (start, end) in enumerate(windows) if start <= body["ts"] <= end), None)
    if inside is not None:
        seen["inside"] += 1
        seen["caught"].add(inside)
    where = f"INSIDE labelled window {inside + 1}" if inside is not None else "outside the labelled windows"
    direction = f" ({body['direction']})" if body.get("direction") else ""
    return (f"  ALERT  {when} stream={body['stream']} value={body['value']:.2f} expected={body['expected']:.2f} "
            f"score={body['score']:.4f} >= {threshold:g}{direction}: {where}")


def _wait_for_log(path: str, needle: str, process: subprocess.Popen, timeout_seconds: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_seconds
    while time.monotonic() < deadline:
        if needle in open(path).read():
            return
        if process.poll() is not None:
            raise SystemExit(f"daemon exited early:\n{open(path).read()[-2000:]}")
        time.sleep(0.1)
    raise SystemExit("daemon did not start serving in time")


if __name__ == "__main__":
    sys.exit(main(*(int(a) for a in sys.argv[1:2])))

"""README "Using it" runs as written: train, convert, score, serve, watch, replay (issue 18).

The shell block after the `<!-- walkthrough` marker is run by bash in a stand-in for a fresh
clone (a temporary directory with this checkout's .venv and data/ linked in), with two changes
only: port 1883 becomes a free port (in the two config files, and as --port for the two
commands that use the default), so the test cannot collide with a broker already on 1883.
"""
import json
import os
import re
import subprocess

import numpy as np

import pytest

from broker import free_port, mosquitto_binary
from statecast.daemon.tools.series_csv import read_series

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ROWS = 1000                          # `head -n 1001` in the README


def readme_block() -> str:
    text = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
    after = text.split("<!-- walkthrough", 1)[1]
    return re.search(r"```sh\n(.*?)```", after, re.S).group(1)


def on_port(script: str, port: int) -> str:
    script = script.replace("listener 1883", f"listener {port}").replace("port = 1883", f"port = {port}")
    return re.sub(r"^statecast (watch|replay) ", rf"statecast \1 --port {port} ", script, flags=re.M)


@pytest.mark.skipif(mosquitto_binary() is None, reason="needs mosquitto")
def test_readme_walkthrough_runs_as_written(tmp_path):
    clone = tmp_path / "clone"
    clone.mkdir()
    for name in (".venv", "data"):
        os.symlink(os.path.join(ROOT, name), clone / name)
    port = free_port()
    script = on_port(readme_block(), port)
    assert script.count(f"--port {port}") == 2 and "1883" not in script
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    env["PATH"] = "/usr/sbin:/usr/bin:/bin"            # `statecast` must come from the activated .venv
    done = subprocess.run(["bash", "-e", "-c", script], cwd=clone, env=env, capture_output=True, text=True,
                          timeout=600)
    try_dir = clone / "try"
    assert done.returncode == 0, (done.stdout[-3000:], done.stderr[-3000:],
                                  (try_dir / "serve.log").read_text()[-2000:] if (try_dir / "serve.log").exists() else "")
    out = done.stdout
    assert "parity vs Keras" in out and "PASS" in out and "Edge TPU pre-check" in out
    assert f"statecast.toml: OK" in out
    assert re.search(rf"^{ROWS}$", out, re.M), out[-2000:]          # grep -c: one forecast per row
    stats = [json.loads(line.split(" ", 1)[1]) for line in out.splitlines() if line.startswith("statecast/stats ")]
    assert stats and stats[-1]["forecasts_out"] == ROWS and stats[-1]["last_error"] is None, stats
    # the history has holes: the daemon counts exactly the hours the CSV lacks
    series = read_series(str(try_dir / "history.csv"))
    hours = np.diff(series.timestamps) / 3600.0
    assert stats[-1]["missing_steps"] == int(sum(round(h) - 1 for h in hours if h > 1)) == 32
    log = (try_dir / "serve.log").read_text()
    assert "stream room1: 1 step(s) missing before 2013-07-28T03:00:00Z" in log
    # seconds later, inside the same minute: held back, then written when the daemon stops
    assert "stream room1: 31 more step(s) missing since the last line, the latest before 2013-07-29T12:00:00Z" in log
    assert "disconnected" not in (try_dir / "serve.log").read_text()
    scored = (try_dir / "scored.csv").read_text().splitlines()
    assert len(scored) == ROWS + 1 and scored[0].startswith("timestamp,value,forecast_1")
    assert "\nTraceback" not in done.stderr and "Warning" not in done.stderr, done.stderr[-3000:]

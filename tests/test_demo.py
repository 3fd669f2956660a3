"""`make demo`, the README's first command, runs from the repository as a user runs it: the
module finds the shipped model and data (a layout move once left it looking under daemon/)."""
import subprocess
import sys


def test_demo_runs_on_the_shipped_default():
    done = subprocess.run([sys.executable, "-m", "statecast.daemon.tools.demo", "2000"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "model models/default;" in done.stdout
    assert "received 2000 forecasts" in done.stdout
    assert "daemon stopped cleanly (exit 0)" in done.stdout

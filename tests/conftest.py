import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NAB = os.path.join(ROOT, "data", "nab", "data")
FIXTURES = os.path.join(ROOT, "tests", "fixtures")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from broker import Mosquitto  # noqa: E402


def nab_csv(name: str) -> str:
    for folder in ("realKnownCause", "artificialWithAnomaly", "artificialNoAnomaly"):
        path = os.path.join(NAB, folder, name)
        if os.path.exists(path):
            return path
    raise FileNotFoundError(name)


MACHINE_TEMPERATURE = nab_csv("machine_temperature_system_failure.csv")


@pytest.fixture(scope="session")
def broker():
    server = Mosquitto().start()
    yield server
    server.cleanup()


@pytest.fixture(autouse=True)
def no_daemon_outlives_its_test():
    """A failing test must not leave `statecast serve` processes behind."""
    from daemon_proc import RUNNING
    yield
    while RUNNING:
        RUNNING.pop().stop()

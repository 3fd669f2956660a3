"""int8 calibration pools the states the float model visits over every calibration series, each
scaled on its own (issue 15: a model calibrated on one stream clipped the others' states)."""
import numpy as np

from conftest import MACHINE_TEMPERATURE
from statecast.convert.calibration import pooled_visited_states, visited_states
from statecast.daemon.model.features import assemble_inputs
from statecast.daemon.model.scaling import IoScaling
from statecast.daemon.model.step_model import StepModel
from statecast.daemon.tools.series_csv import read_series

DEFAULT = "models/default"


def raw_inputs(model, timestamps, values):
    return assemble_inputs(timestamps, values, model.manifest.features, ("value",)).astype(np.float32)


def test_each_series_gives_its_share_of_the_samples():
    model = StepModel(DEFAULT)
    real = read_series(MACHINE_TEMPERATURE)
    first = raw_inputs(model, real.timestamps[:4000], real.values[:4000])
    # A second stream at another level, sampled 100 s off machine_temperature's 5-minute grid: its
    # time-of-day features then match none of the first stream's, which tells its rows apart.
    ts = 1_600_000_000.0 + 300.0 * np.arange(3000)
    assert ts[0] % 300 == 100 and real.timestamps[0] % 300 == 0
    second = raw_inputs(model, ts, (1000.0 + 50.0 * np.sin(np.arange(3000) / 40.0))[:, None])
    samples = pooled_visited_states(model, [first, second], samples=1024)
    assert len(samples) == 2 * 512
    second_calendar = {tuple(np.round(row[1:], 5)) for row in IoScaling(model.manifest).sequence(second)[0]}
    from_second = sum(tuple(np.round(s[model.manifest.input][0, 1:], 5)) in second_calendar for s in samples)
    assert from_second == 512


def test_one_series_calibrates_as_before():
    """A single --calibration-csv gives exactly the samples it gave before pooling existed."""
    model = StepModel(DEFAULT)
    real = read_series(MACHINE_TEMPERATURE)
    x_raw = raw_inputs(model, real.timestamps[:3000], real.values[:3000])
    before = visited_states(model, IoScaling(model.manifest).sequence(x_raw)[0])
    after = pooled_visited_states(model, [x_raw])
    assert len(before) == len(after) == 1024
    assert all(np.array_equal(a[k], b[k]) for a, b in zip(before, after) for k in a)

"""convert/skill.py: the skill report's figures on cases whose answer is known by hand."""
import numpy as np
import pytest

from statecast.convert.skill import horizon_errors


def test_nrmse_is_rmse_over_the_truths_spread_and_skill_is_one_minus_the_ratio():
    values = np.arange(20, dtype=np.float64)[:, None]                  # a ramp: persistence is off by 1
    forecast = values + 0.5                                            # the model: off by 0.5
    report = horizon_errors(forecast, values, 10, 20, 1, {})
    step = report["steps"][0]
    spread = values[10:20].std()                                       # the origins' rows and one ahead
    assert step["nrmse_persistence"] == pytest.approx(1.0 / spread, rel=1e-4)
    assert step["nrmse_model"] == pytest.approx(0.5 / spread, rel=1e-4)
    assert step["skill"] == pytest.approx(0.5, abs=1e-3)


def test_a_flat_truth_is_measured_in_sensor_units_not_over_rounding_noise():
    """A constant's float std is rounding noise (~1e-16 of its level), not 0; dividing by it made
    an error of 1e-4 look like 1e12 (MSL M-7's unseen part)."""
    values = np.full((50, 1), -0.99960241)
    assert 0 < values.std() < 1e-15                                    # the trap
    forecast = values + 1e-4
    step = horizon_errors(forecast, values, 10, 50, 1, {})["steps"][0]
    assert step["nrmse_model"] == pytest.approx(1e-4, rel=1e-3) and step["nrmse_persistence"] == 0.0

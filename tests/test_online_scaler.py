"""OnlineScaler: one glitch reading must not take over a stream's statistics (model/scaling.py)."""
import math

import numpy as np

from statecast.daemon.model.scaling import OnlineScaler

HALFLIFE = 250.0                                  # models/default's input_scaling.halflife_steps
ALPHA = 1.0 - 0.5 ** (1.0 / HALFLIFE)
CLIP = OnlineScaler.DEFAULT_CLIP
BOUND = OnlineScaler.WINSOR_SCALES


def _scaler_after(values) -> OnlineScaler:
    scaler = OnlineScaler(1, HALFLIFE)
    for x in values:
        scaler.observe([float(x)])
    return scaler


def _room_temperature(steps: int, seed: int = 0) -> np.ndarray:
    return 20.0 + np.random.default_rng(seed).normal(0.0, 0.5, steps)


def test_a_glitch_moves_the_statistics_no_more_than_a_value_at_the_bound():
    """The update is winsorised at WINSOR_SCALES scales: a 65535 in a 20-degree stream (~130,000
    scales) moves the mean by alpha x WINSOR_SCALES scales and multiplies the variance by
    (1 - alpha)(1 + alpha WINSOR_SCALES**2 / c), c the bias correction 1 - (1 - alpha)**count, so
    the scale by the root of that times c / c', c' the next step's correction: 5.4-fold at a
    half-life of 250 steps, where learning the glitch whole made it 7,000-fold. rel_tol 1e-9: the
    same float64 arithmetic in another order."""
    scaler = _scaler_after(_room_temperature(3000))
    mean_before, scale_before = scaler.mean[0], scaler._scale(0)
    correction, correction_after = (1.0 - (1.0 - ALPHA) ** n for n in (scaler.count, scaler.count + 1))
    z, (centre,), (scale,) = scaler.observe([65535.0])
    assert z == [CLIP]
    assert math.isclose(centre - mean_before, ALPHA * BOUND * scale_before, rel_tol=1e-9)
    growth = (1.0 - ALPHA) * (1.0 + ALPHA * BOUND ** 2 / correction) * correction / correction_after
    assert math.isclose(scale / scale_before, math.sqrt(growth), rel_tol=1e-9)
    assert scale / scale_before < 6.0


def test_a_real_level_shift_still_gets_through():
    """A shift of 1,000 scales (0.5 -> +500 degrees) is learnt: each step past the bound multiplies
    the variance by ~29 at a half-life of 250, so z is back inside its clip within 10 steps
    (5 here), and 1,000 steps later the centre is within 1 degree, plus what is left of the shift,
    of the new level (the unbounded update closes the gap at alpha a step: (1 - alpha)**990
    leaves 6.4% of 500 degrees)."""
    scaler = _scaler_after(_room_temperature(500))
    shifted = _room_temperature(1000, seed=1) + 500.0
    inside = [abs(scaler.observe([float(x)])[0][0]) < CLIP for x in shifted]
    assert not inside[0]
    assert inside.index(True) < 10 and all(inside[10:])
    assert abs(scaler.mean[0] - 520.0) < 1.0 + 0.065 * 500.0


def test_the_first_values_and_a_flat_streams_first_change_are_learnt_whole():
    """Until WINSOR_AFTER_STEPS values the scale rests on a handful of differences, and a stream
    that has not changed yet has none at all: both learn a step of 1,000 whole (the mean moves by
    alpha x the step). A stream that has shown its noise for WINSOR_AFTER_STEPS values learns the
    same step (4,000 of its scales) as one of WINSOR_SCALES scales."""
    young = _scaler_after([20.0, 20.5] * (OnlineScaler.WINSOR_AFTER_STEPS // 2 - 1) + [20.0])
    before = young.mean[0]
    young.observe([1020.0])
    assert math.isclose(young.mean[0] - before, ALPHA * (1020.0 - before), rel_tol=1e-9)

    flat = _scaler_after([20.0] * 500)
    flat.observe([1020.0])
    assert math.isclose(flat.mean[0] - 20.0, ALPHA * 1000.0, rel_tol=1e-9)

    settled = _scaler_after([20.0, 20.5] * (OnlineScaler.WINSOR_AFTER_STEPS // 2))
    before, scale = settled.mean[0], settled._scale(0)
    settled.observe([1020.0])
    assert math.isclose(settled.mean[0] - before, ALPHA * BOUND * scale, rel_tol=1e-9)

"""The one range check on a sensor value, for every way a reading arrives (MQTT payloads, CSV
rows), so that `statecast serve` and `statecast score` refuse the same values.

The models compute in float32 (their quantised forms within it). A value beyond float32's range,
1e300 say, is a finite Python float but infinite to the model: it would turn the stream's
recurrent state into inf/NaN for good, and its anomaly statistics overflow (a payload of 1e300
raised OverflowError in the daily profile and stopped the daemon)."""
from __future__ import annotations

import math

FLOAT32_MAX = 3.4028234663852886e38       # numpy.finfo(numpy.float32).max


def out_of_range(number: float) -> str | None:
    """None for a finite value the model can take, else why not (a short phrase)."""
    if not math.isfinite(number):
        return "is not a finite number"
    if abs(number) > FLOAT32_MAX:
        return "is beyond float32's range (±3.4e38), in which the model computes"
    return None

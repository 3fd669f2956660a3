"""Published JSON (daemon/mqtt/outputs.py, documented in docs/payloads.md): times, rounding, alert details."""
import json
import os
import re

import numpy as np
from hypothesis import given, settings, strategies as st

from statecast.daemon.messages import Forecast
from statecast.daemon.mqtt.outputs import alert_message, forecast_message, forecast_message_general

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TS = 1386018000.0                                            # 2013-12-02T21:00:00Z


def result(forecast=(18.57326316833496, 18.6), event=None, detail=None, value=18.5):
    return Forecast("hall", TS, (value,), np.asarray(forecast, np.float32).reshape(-1, 1), 0.123456789, 18.49,
                    event, 7, detail=detail)


def test_forecast_times_and_iso_time():
    body = json.loads(forecast_message(result(), "m", ("value",), interval_seconds=300.0000004))
    assert body["time"] == "2013-12-02T21:00:00Z"
    assert body["forecast_ts"] == [TS + 300, TS + 600]       # one learned interval per element, ms rounded
    assert json.loads(forecast_message(result(), "m", ("value",)))["forecast_ts"] is None


def test_precision_rounds_every_number_but_times():
    full = json.loads(forecast_message(result(), "m", ("value",)))
    assert full["forecast"][0] == float(np.float32(18.57326316833496))        # default: full repr
    body = json.loads(forecast_message(result(), "m", ("value",), interval_seconds=300.0, precision=4))
    assert body["forecast"] == [18.57, 18.6] and body["anomaly_score"] == 0.1235 and body["expected"] == 18.49
    assert body["ts"] == TS


def test_alert_carries_every_detail_key():
    detail = {"threshold": 0.99, "direction": "high", "signal": "likelihood", "episode_start": TS - 600.0}
    body = json.loads(alert_message(result(event="alert", detail=detail), "m", precision=3))
    for key, value in detail.items():
        assert body[key] == value
    assert body["episode_start_time"] == "2013-12-02T20:50:00Z" and body["time"] == "2013-12-02T21:00:00Z"
    assert body["event"] == "alert" and body["score"] == 0.123
    clear = dict(detail, direction=None, duration_seconds=900.0)
    body = json.loads(alert_message(result(event="clear", detail=clear), "m"))
    assert body["duration_seconds"] == 900.0 and body["direction"] is None and body["event"] == "clear"
    assert "threshold" not in json.loads(alert_message(result(event="alert"), "m"))   # no detail: no keys


def test_every_published_field_is_documented():
    doc = open(os.path.join(ROOT, "docs", "payloads.md"), encoding="utf-8").read()
    documented = set(re.findall(r"^\| `([a-z_0-9]+)`", doc, re.M))
    detail = {"threshold": 0.9, "direction": "low", "signal": "s", "episode_start": TS, "duration_seconds": 1.0}
    fields = set(json.loads(forecast_message(result(), "m", ("value",), 300.0)))
    two = Forecast("hall", TS, (1.0, 2.0), np.ones((2, 2), np.float32), None, None, None, 1)
    fields |= set(json.loads(forecast_message_general(two, "m", ("a", "b"), 300.0)))
    fields |= set(json.loads(alert_message(result(event="clear", detail=detail), "m")))
    assert fields - documented == set()


@settings(max_examples=300, deadline=None)
@given(ts=st.floats(-1e12, 1e12), forecast=st.lists(st.floats(width=32), min_size=1, max_size=4),
       interval=st.one_of(st.none(), st.floats(0.001, 1e6)), precision=st.integers(0, 17),
       stream=st.from_regex(r"[A-Za-z0-9._-]{1,20}", fullmatch=True))
def test_fast_path_matches_the_general_encoder(ts, forecast, interval, precision, stream):
    r = Forecast(stream, ts, (1.5,), np.asarray(forecast, np.float32).reshape(-1, 1), None, 2.25, None, 1)
    fast = forecast_message(r, "m", ("value",), interval, precision)
    assert fast == forecast_message_general(r, "m", ("value",), interval, precision)

"""decode_payload: every format, every rejection reason, and fuzzing that only PayloadError escapes."""
from __future__ import annotations

import json
import math
import time

import pytest
from hypothesis import given, settings, strategies as st

from statecast.daemon.mqtt.payload import MAX_JSON_DEPTH, PayloadError, Reading, decode_payload
from statecast.daemon.value_range import FLOAT32_MAX

VALUE = ("value",)
REASONS = {"bad_json", "missing_field", "non_numeric", "non_finite", "oversize", "empty", "not_utf8",
           "wrong_field_count", "bad_senml", "bad_timestamp", "too_deep", "out_of_range"}


def reason_of(payload: bytes, fmt: str = "auto", fields: tuple[str, ...] = VALUE, **kwargs) -> str:
    with pytest.raises(PayloadError) as caught:
        decode_payload(payload, fmt, fields, **kwargs)
    message = str(caught.value)
    assert message and "\n" not in message and len(message) < 200
    assert caught.value.reason in REASONS
    return caught.value.reason


# --- bare numbers ---------------------------------------------------------------------------

@pytest.mark.parametrize("text, expected", [(b"21.5", 21.5), (b"  -3\n", -3.0), (b"1e3", 1000.0),
                                            (b".5", 0.5), (b"+7.", 7.0)])
def test_number(text, expected):
    assert decode_payload(text, "number", VALUE) == Reading((expected,), None)
    assert decode_payload(text, "auto", VALUE) == Reading((expected,), None)


@pytest.mark.parametrize("text", [b"1_000", b"0x10", b"21,5", b"abc", b'"21.5"', b"true", b"1 2"])
def test_number_rejects_non_decimal_text(text):
    assert reason_of(text, "number") == "non_numeric"


def test_number_needs_exactly_one_field():
    assert reason_of(b"21.5", "number", ("a", "b")) == "wrong_field_count"
    assert reason_of(b"21.5", "auto", ("a", "b")) == "wrong_field_count"


# --- JSON objects ---------------------------------------------------------------------------

def test_json_single_value_with_epoch_ts():
    reading = decode_payload(b'{"value": 21.5, "ts": 1732550000.0}', "json", VALUE)
    assert reading == Reading((21.5,), 1732550000.0)


def test_json_several_fields_in_requested_order():
    payload = b'{"temperature": 21.5, "humidity": 40, "ts": 1732550000}'
    reading = decode_payload(payload, "auto", ("humidity", "temperature"))
    assert reading.values == (40.0, 21.5) and all(type(v) is float for v in reading.values)
    assert reading.ts == 1732550000.0


def test_json_without_ts_has_none():
    assert decode_payload(b'{"value": 1}', "json", VALUE).ts is None


@pytest.mark.parametrize("ts, expected", [("2024-11-25T16:00:00Z", 1732550400.0),
                                          ("2024-11-25T17:00:00+01:00", 1732550400.0),
                                          ("2024-11-25T16:00:00", 1732550400.0)])  # naive = UTC
def test_json_iso_timestamp(ts, expected):
    payload = json.dumps({"value": 1.0, "ts": ts}).encode()
    assert decode_payload(payload, "json", VALUE).ts == expected


@pytest.mark.parametrize("ts", ["yesterday", "", None, True, [1], {"s": 1}, "2024-13-45"])
def test_json_bad_timestamp(ts):
    assert reason_of(json.dumps({"value": 1.0, "ts": ts}).encode(), "json") == "bad_timestamp"


def test_json_missing_field_names_it():
    with pytest.raises(PayloadError) as caught:
        decode_payload(b'{"temperature": 21.5}', "json", ("temperature", "humidity"))
    assert caught.value.reason == "missing_field"
    assert str(caught.value) == "missing field 'humidity'"


@pytest.mark.parametrize("value", ['"21.5"', "true", "false", "null", "[1]", '{"v": 1}'])
def test_json_field_must_be_a_number(value):
    # Booleans are ints in Python and numeric strings look harmless; both are refused.
    assert reason_of(f'{{"value": {value}}}'.encode(), "json") == "non_numeric"


@pytest.mark.parametrize("payload", [b"[1, 2]", b"21.5", b'"x"', b"null"])
def test_json_format_requires_an_object(payload):
    assert reason_of(payload, "json") == "bad_json"


@pytest.mark.parametrize("payload", [b"{", b'{"value": 1,}', b"{'value': 1}", b'{"value": 1} x', b'[{"n": "a"'])
def test_malformed_json(payload):
    assert reason_of(payload) == "bad_json"


# --- SenML ----------------------------------------------------------------------------------

def test_senml_single_record_fills_value():
    payload = b'[{"n": "urn:dev:ow:10e2073a01080063", "u": "Cel", "v": 23.1, "t": 1732550000}]'
    assert decode_payload(payload, "auto", VALUE) == Reading((23.1,), 1732550000.0)


def test_senml_base_fields_and_name_matching():
    payload = json.dumps([
        {"bn": "urn:dev:ow:10e2073a01080063:", "bt": 1.732550e9, "bv": 10.0, "n": "temp", "v": 11.5, "t": 5},
        {"n": "humidity", "v": 30, "t": 6},
        {"n": "status", "vs": "ok"},   # string value: not a reading, ignored
    ]).encode()
    reading = decode_payload(payload, "senml", ("humidity", "temp"))
    assert reading.values == (40.0, 21.5)          # bv is added to every v
    assert reading.ts == 1.732550e9 + 6           # time of the first matched field's record


@pytest.mark.parametrize("name", ["room1/temp", "room1:temp", "room1.temp", "temp"])
def test_senml_name_suffix_after_separator(name):
    payload = json.dumps([{"n": name, "v": 1.0}, {"n": "other", "v": 2.0}]).encode()
    assert decode_payload(payload, "senml", ("temp",)).values == (1.0,)


def test_senml_suffix_without_separator_does_not_match():
    payload = json.dumps([{"n": "attemp", "v": 1.0}, {"n": "x", "v": 2.0}]).encode()
    assert reason_of(payload, "senml", ("temp",)) == "missing_field"


def test_senml_relative_time_without_bt_is_relative_to_now():
    before = time.time()
    reading = decode_payload(b'[{"n": "value", "v": 1, "t": -10}]', "senml", VALUE)
    assert before - 10 <= reading.ts <= time.time() - 10


def test_senml_relative_bt_is_relative_to_now():
    before = time.time()
    reading = decode_payload(b'[{"bt": -5, "n": "value", "v": 1, "t": 2}]', "senml", VALUE)
    assert before - 3 <= reading.ts <= time.time() - 3


def test_senml_without_any_time_has_none():
    assert decode_payload(b'[{"n": "value", "v": 1}]', "senml", VALUE).ts is None


def test_senml_first_matching_record_wins():
    payload = b'[{"bt": 1.7e9, "n": "t", "v": 1, "t": 0}, {"n": "t", "v": 2, "t": 60}]'
    assert decode_payload(payload, "senml", ("t",)) == Reading((1.0,), 1.7e9)


def test_senml_value_fallback_needs_exactly_one_numeric_record():
    assert reason_of(b'[{"n": "a", "v": 1}, {"n": "b", "v": 2}]', "senml") == "missing_field"
    assert decode_payload(b'[{"n": "a", "v": 1}, {"n": "b", "vs": "x"}]', "senml", VALUE).values == (1.0,)


@pytest.mark.parametrize("payload", [b"[]", b"[1]", b'[{"n": 5, "v": 1}]', b'[{"bn": [], "v": 1}]',
                                     b'[{"v": 1, "bt": "x"}]', b'[{"v": 1, "t": true}]', b'{"value": 1}'])
def test_bad_senml(payload):
    assert reason_of(payload, "senml") == "bad_senml"


def test_senml_non_numeric_value():
    assert reason_of(b'[{"n": "value", "v": "21.5"}]', "senml") == "non_numeric"


def test_senml_overflowing_base_sum_is_non_finite():
    assert reason_of(b'[{"bv": 1e308, "n": "value", "v": 1e308}]', "senml") == "non_finite"


# --- rejections shared by all formats ----------------------------------------------------------

@pytest.mark.parametrize("payload, fmt", [
    (b"1e300", "number"), (b"-3.5e38", "auto"), (b'{"value": 1e300}', "json"),
    (b'[{"n": "value", "v": 1e300}]', "senml"),
    (b'[{"bv": 3e38, "n": "value", "v": 3e38}]', "senml"),  # each in range, their sum is not
])
def test_values_beyond_float32_are_out_of_range(payload, fmt):
    """Finite to Python, infinite to a float32 model: 1e300 raised OverflowError in the anomaly
    scorer's daily profile and stopped the daemon."""
    assert reason_of(payload, fmt) == "out_of_range"


def test_the_range_is_checked_on_the_fields_the_model_reads():
    payload = b'{"value": 1, "other": 2e39}'
    assert decode_payload(payload, "json", VALUE).values == (1.0,)
    assert reason_of(payload, "json", ("value", "other")) == "out_of_range"


def test_float32s_own_extremes_and_subnormals_are_accepted():
    for value in (FLOAT32_MAX, -FLOAT32_MAX, 5e-324, -1e-310):
        assert decode_payload(repr(value).encode(), "number", VALUE).values == (value,)
        assert decode_payload(json.dumps({"value": value}).encode(), "json", VALUE).values == (value,)


@pytest.mark.parametrize("payload", [b"", b"   ", b"\n\t"])
def test_empty(payload):
    assert reason_of(payload) == "empty"


@pytest.mark.parametrize("payload", [b"\xff", b"21.\xc3", b'{"value": 1, "\xed\xa0\x80": 2}'])
def test_not_utf8(payload):
    assert reason_of(payload) == "not_utf8"


@pytest.mark.parametrize("payload, fmt", [
    (b"NaN", "number"), (b"-inf", "auto"), (b"Infinity", "number"), (b"1e400", "number"),
    (b'{"value": NaN}', "json"), (b'{"value": -Infinity}', "json"), (b'{"value": 1e400}', "json"),
    (b'{"value": 1, "spare": 1e999}', "json"),            # any non-finite number spoils the payload
    (b'{"value": 1' + b"0" * 400 + b"}", "json"),         # a huge integer overflows float
    (b'{"value": 1, "ts": 1e400}', "json"),
    (b'[{"n": "value", "v": NaN}]', "senml"), (b'[{"n": "value", "v": 1e400}]', "auto"),
])
def test_non_finite(payload, fmt):
    assert reason_of(payload, fmt) == "non_finite"


def test_oversize_is_checked_before_decoding():
    # Invalid UTF-8 and nesting too: only the size check may run.
    huge = b"\xff" + b"[" * (10 * 1024 * 1024)
    started = time.perf_counter()
    assert reason_of(huge) == "oversize"
    assert time.perf_counter() - started < 0.05
    assert reason_of(b"12345", max_bytes=4) == "oversize"
    assert decode_payload(b"1234", "auto", VALUE, max_bytes=4).values == (1234.0,)


def test_nesting_limit():
    at_limit = b'{"value": 1, "x": ' + b"[" * (MAX_JSON_DEPTH - 1) + b"]" * (MAX_JSON_DEPTH - 1) + b"}"
    assert decode_payload(at_limit, "json", VALUE).values == (1.0,)
    over = b'{"value": 1, "x": ' + b"[" * MAX_JSON_DEPTH + b"]" * MAX_JSON_DEPTH + b"}"
    assert reason_of(over, "json") == "too_deep"


def test_brackets_inside_strings_do_not_count_as_nesting():
    payload = json.dumps({"value": 2.0, "note": "[[[[[[[[[[{{{{{{{{{{ \" \\"}).encode()
    assert decode_payload(payload, "json", VALUE).values == (2.0,)


@pytest.mark.parametrize("opener", [b"[", b'{"a":', b'[{"a":'])
def test_very_deep_nesting_is_rejected_fast(opener):
    payload = opener * 100_000
    started = time.perf_counter()
    assert reason_of(payload, "auto", max_bytes=len(payload)) == "too_deep"
    assert time.perf_counter() - started < 0.5


def test_configuration_errors_are_value_errors():
    with pytest.raises(ValueError):
        decode_payload(b"1", "xml", VALUE)
    with pytest.raises(ValueError):
        decode_payload(b"1", "auto", ())


# --- property-based fuzzing -------------------------------------------------------------------

FORMATS = st.sampled_from(["auto", "json", "senml", "number"])
FIELDS = st.sampled_from([("value",), ("temp",), ("temp", "humidity")])
json_values = st.recursive(
    st.none() | st.booleans() | st.floats(allow_nan=True, allow_infinity=True) | st.integers()
    | st.text(max_size=10) | st.sampled_from(["value", "ts", "2024-11-25T16:00:00Z"]),
    lambda children: st.lists(children, max_size=5)
    | st.dictionaries(st.sampled_from(["value", "temp", "humidity", "ts", "n", "bn", "v", "t", "bt", "bv"])
                      | st.text(max_size=5), children, max_size=5),
    max_leaves=30)
# Near-valid shapes, so the fuzzing also walks the success paths and not only early rejections.
finite = st.floats(allow_nan=False, allow_infinity=False)
scalars = st.one_of(finite, finite, finite, st.integers(-10**6, 10**6), st.booleans(), st.none(),
                    st.sampled_from(["21.5", "", "room/", "urn:dev:x:", "2024-11-25T16:00:00Z", "temp", "value"]))
near_json = st.dictionaries(st.sampled_from(["value", "temp", "humidity", "ts"]), scalars, max_size=4)
near_senml = st.lists(st.dictionaries(st.sampled_from(["bn", "bt", "bv", "n", "v", "t", "vs", "u"]), scalars,
                                      max_size=6), min_size=1, max_size=4)


def check_outcome(payload: bytes, fmt: str, fields: tuple[str, ...]) -> None:
    try:
        reading = decode_payload(payload, fmt, fields)
    except PayloadError as error:
        assert error.reason in REASONS and "\n" not in str(error)
        return
    assert len(reading.values) == len(fields)
    assert all(type(v) is float and math.isfinite(v) for v in reading.values)
    assert reading.ts is None or (type(reading.ts) is float and math.isfinite(reading.ts))


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=300), FORMATS, FIELDS)
def test_arbitrary_bytes_only_raise_payload_error(payload, fmt, fields):
    check_outcome(payload, fmt, fields)


@settings(max_examples=400, deadline=None)
@given(json_values | near_json | near_senml, FORMATS, FIELDS)
def test_arbitrary_json_only_raises_payload_error(document, fmt, fields):
    check_outcome(json.dumps(document).encode(), fmt, fields)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(["[", "]", "{", "}", '"', "\\", ",", ":", "1", "NaN", '"a"']), max_size=60),
       FORMATS)
def test_json_like_fragments_only_raise_payload_error(tokens, fmt):
    check_outcome("".join(tokens).encode(), fmt, VALUE)


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(["NaN", "Infinity", "-Infinity", "1e400", "-1e400", "1" + "0" * 400]),
       st.sampled_from(['{{"value": {}}}', '[{{"n": "value", "v": {}}}]', "{}"]))
def test_non_finite_numbers_always_rejected(literal, template):
    payload = template.format(literal).encode()
    assert reason_of(payload) == "non_finite"


@settings(max_examples=200, deadline=None)
@given(st.floats(-FLOAT32_MAX, FLOAT32_MAX), st.floats(0, 4e9, allow_nan=False))
def test_values_in_float32_range_round_trip_in_every_format(value, ts):
    assert decode_payload(repr(value).encode(), "number", VALUE).values == (value,)
    assert decode_payload(json.dumps({"value": value, "ts": ts}).encode(), "auto", VALUE) == Reading((value,), ts)
    if ts >= 2 ** 28:   # below that SenML reads the time as relative to now
        senml = json.dumps([{"n": "value", "v": value, "t": ts}]).encode()
        assert decode_payload(senml, "auto", VALUE) == Reading((value,), ts)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(-1e38, 1e38), min_size=1, max_size=4),     # v - bv + bv stays in float32's range
       st.sampled_from(["", "urn:dev:ow:10e2:", "site/room1/"]), st.floats(-1e38, 1e38),
       st.floats(2 ** 28, 4e9), st.booleans())
def test_generated_valid_payloads_decode_exactly(values, base_name, base_value, base_time, reverse):
    fields = tuple(f"f{i}" for i in range(len(values)))
    document = {name: value for name, value in zip(fields, values)}
    assert decode_payload(json.dumps(document).encode(), "auto", fields) == Reading(tuple(values), None)
    records = [{"n": name, "v": value - base_value, "t": i} for i, (name, value) in enumerate(zip(fields, values))]
    records[0].update(bn=base_name, bv=base_value, bt=base_time)
    asked = fields[::-1] if reverse else fields
    reading = decode_payload(json.dumps(records).encode(), "senml", asked)
    expected = [value - base_value + base_value for value in values]
    assert reading.values == tuple(expected[::-1] if reverse else expected)
    assert reading.ts == base_time + fields.index(asked[0])


# --- forecast JSON: the f-string fast path is byte-identical to the general (dict) path --------
finite_or_odd = st.one_of(st.floats(allow_nan=True, allow_infinity=True, width=32), st.floats(width=64))


@settings(max_examples=400, deadline=None)
@given(stream=st.one_of(st.from_regex(r"[A-Za-z0-9._-]{1,40}", fullmatch=True), st.text(max_size=12)),
       ts=st.floats(allow_nan=False, allow_infinity=False, width=64),
       value=finite_or_odd, forecast=st.lists(st.floats(width=32), min_size=1, max_size=4),   # float32 model output
       score=st.one_of(st.none(), finite_or_odd), expected=st.one_of(st.none(), finite_or_odd),
       model=st.one_of(st.just("machine_temperature-float32"), st.text(max_size=10)),
       steps=st.integers(min_value=1, max_value=10**9))
def test_forecast_message_fast_path_matches_the_general_encoder(stream, ts, value, forecast, score, expected,
                                                                model, steps):
    import numpy as np

    from statecast.daemon.messages import Forecast
    from statecast.daemon.mqtt.outputs import forecast_message, forecast_message_general
    result = Forecast(stream, ts, (value,), np.asarray(forecast, np.float32).reshape(-1, 1), score, expected,
                      None, steps)
    fast = forecast_message(result, model, ("value",))
    assert fast == forecast_message_general(result, model, ("value",))
    assert json.loads(fast)["step"] == steps


@pytest.mark.parametrize("ts_text", ["1700000000", "1.7e9", "2023-11-14T22:13:20Z", "2023-11-14T22:13:20+00:00",
                                     "2023-11-14 22:13:20"])
def test_payload_and_csv_read_a_timestamp_the_same_way(ts_text, tmp_path):
    """serve (payload `ts`) and score (CSV timestamp column) share one parser: numeric strings, a
    trailing 'Z', offsets and naive (UTC) times give the same instant in both."""
    from statecast.daemon.tools.series_csv import read_series
    reading = decode_payload(json.dumps({"value": 1.0, "ts": ts_text}).encode(), "json", ("value",))
    path = tmp_path / "one.csv"
    path.write_text(f"timestamp,value\n{ts_text},1.0\n")
    assert reading.ts == float(read_series(str(path)).timestamps[0])

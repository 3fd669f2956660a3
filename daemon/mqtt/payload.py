"""Decode one MQTT payload (bytes) into a typed Reading, or raise PayloadError with a reason.

Formats: a bare number, a JSON object of named fields, or a SenML pack (RFC 8428). Decoding is
strict: a payload is either fully usable or rejected with a short reason key the daemon counts.
Every failure, whatever the bytes, is a PayloadError; nothing else escapes decode_payload.
"""
from __future__ import annotations

import json
import math
import re
import time
from dataclasses import dataclass

from statecast.daemon.timestamps import parse_timestamp
from statecast.daemon.value_range import out_of_range

FORMATS = ("auto", "json", "senml", "number")
MAX_JSON_DEPTH = 8
# RFC 8428 section 4.5.3: a resolved time below 2**28 seconds is relative to "now".
SENML_RELATIVE_LIMIT_SECONDS = 2.0 ** 28
# Plain decimal only: float() would also accept "1_000", "inf", "nan" and "infinity".
_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_NON_FINITE_WORDS = {"nan", "+nan", "-nan", "inf", "+inf", "-inf", "infinity", "+infinity", "-infinity"}
# One token per match: a complete JSON string (skipped), a bracket (counted) or a lone quote.
_DEPTH_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]|"', re.DOTALL)
_NAME_SEPARATORS = ("/", ":", ".")


@dataclass(frozen=True)
class Reading:
    values: tuple[float, ...]   # one per requested field, in the order of `fields`
    ts: float | None            # epoch seconds if the payload carried a timestamp, else None


class PayloadError(Exception):
    """A payload that cannot be used; `reason` is a short counter key, str() a one-line message."""

    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def _show(value: object, limit: int = 40) -> str:
    """repr() clipped, so hostile content cannot make a log line long or multi-line."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _finite(number: float, what: str) -> float:
    if not math.isfinite(number):
        raise PayloadError("non_finite", f"{what} is not a finite number")
    return number


def _as_number(value: object, what: str) -> float:
    # Booleans are ints in Python but never a sensor reading. Numeric strings ("21.5") are
    # rejected too: accepting them hides publisher bugs and invites locale forms like "21,5".
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise PayloadError("non_numeric", f"{what} is not a number ({_show(value)})")
    return _finite(float(value), what)


def _parse_number_text(text: str) -> float:
    if _NUMBER.fullmatch(text):
        return _finite(float(text), "payload")
    if text.lower() in _NON_FINITE_WORDS:
        raise PayloadError("non_finite", f"payload {_show(text)} is not a finite number")
    raise PayloadError("non_numeric", f"payload {_show(text)} is not a number")


def _check_depth(text: str) -> None:
    """Reject nesting deeper than MAX_JSON_DEPTH before json.loads recurses into it."""
    depth = 0
    for token in _DEPTH_TOKEN.finditer(text):
        char = token.group()
        if char in "[{":
            depth += 1
            if depth > MAX_JSON_DEPTH:
                raise PayloadError("too_deep", f"JSON nested deeper than {MAX_JSON_DEPTH} levels")
        elif char in "]}":
            depth -= 1
        elif char == '"':
            return  # unterminated string: json.loads reports it as bad_json


def _reject_constant(name: str) -> float:
    raise PayloadError("non_finite", f"JSON literal {name} is not a finite number")


def _finite_number(text: str) -> float:
    return _finite(float(text), "JSON number")


# Ints go through float too, so a 400-digit integer becomes inf and is rejected here; the whole
# payload is refused if any number in it is non-finite, even in an unused key. One decoder for
# all messages: json.loads with hooks builds a new one per call.
_DECODER = json.JSONDecoder(parse_constant=_reject_constant, parse_float=_finite_number, parse_int=_finite_number)


def _load_json(text: str) -> object:
    if text.count("[") + text.count("{") > MAX_JSON_DEPTH:     # fewer opening brackets cannot nest deeper
        _check_depth(text)
    try:
        return _DECODER.decode(text)
    except RecursionError:
        raise PayloadError("too_deep", "JSON nested too deeply") from None
    except ValueError as error:
        raise PayloadError("bad_json", f"invalid JSON ({(str(error).splitlines() or ['?'])[0][:80]})") from None


def _parse_ts(value: object) -> float:
    """JSON `ts`: epoch seconds (a number or a numeric string) or ISO-8601; naive means UTC.
    The same parser reads CSV timestamps for `statecast score` (timestamps.py)."""
    try:
        return parse_timestamp(value)
    except ValueError:
        raise PayloadError("bad_timestamp", f"ts {_show(value)} is neither epoch seconds nor ISO-8601") from None


def _decode_json(document: object, fields: tuple[str, ...]) -> Reading:
    if not isinstance(document, dict):
        raise PayloadError("bad_json", f"expected a JSON object, got {type(document).__name__}")
    values = []
    for field in fields:
        if field not in document:
            raise PayloadError("missing_field", f"missing field {_show(field)}")
        values.append(_as_number(document[field], f"field {_show(field)}"))
    ts = _parse_ts(document["ts"]) if "ts" in document else None
    return Reading(tuple(values), ts)


def _senml_number(record: dict, key: str, default: float | None) -> float | None:
    if key not in record:
        return default
    value = record[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        reason = "non_numeric" if key == "v" else "bad_senml"
        raise PayloadError(reason, f"SenML '{key}' is not a number ({_show(value)})")
    return float(value)


def _senml_records(pack: object) -> list[tuple[str, float | None, float | None]]:
    """Resolve base fields (bn, bt, bv carry forward to later records) -> (name, value, time)."""
    if not isinstance(pack, list) or not pack:
        raise PayloadError("bad_senml", "SenML must be a non-empty JSON array of records")
    base_name, base_time, base_value = "", None, None
    now = time.time()
    resolved = []
    for record in pack:
        if not isinstance(record, dict):
            raise PayloadError("bad_senml", f"SenML record is not an object ({_show(record)})")
        base_name = record.get("bn", base_name)
        name = record.get("n", "")
        if not isinstance(base_name, str) or not isinstance(name, str):
            raise PayloadError("bad_senml", "SenML 'bn'/'n' must be strings")
        base_time = _senml_number(record, "bt", base_time)
        base_value = _senml_number(record, "bv", base_value)
        value = _senml_number(record, "v", None)
        if value is not None and base_value is not None:
            value = _finite(value + base_value, "SenML value")
        offset = _senml_number(record, "t", None)
        when = None
        if base_time is not None or offset is not None:
            when = (base_time or 0.0) + (offset or 0.0)
            if when < SENML_RELATIVE_LIMIT_SECONDS:
                when += now
            when = _finite(when, "SenML time")
        resolved.append((base_name + name, value, when))
    return resolved


def _name_matches(name: str, field: str) -> bool:
    """'urn:dev:ow:10e2:temp', 'room1/temp' and 'room1.temp' all match field 'temp'."""
    return name == field or any(name.endswith(sep + field) for sep in _NAME_SEPARATORS)


def _decode_senml(pack: object, fields: tuple[str, ...]) -> Reading:
    records = [r for r in _senml_records(pack) if r[1] is not None]  # only records with a 'v'
    matched = []
    for field in fields:
        # A pack holding a time series of one name is reduced to its first record.
        hit = next((r for r in records if _name_matches(r[0], field)), None)
        if hit is None and fields == ("value",) and len(records) == 1:
            hit = records[0]   # the common single-sensor pack, whatever its name
        if hit is None:
            names = ", ".join(_show(r[0], 30) for r in records[:4]) or "none"
            raise PayloadError("missing_field", f"missing field {_show(field)} (SenML names: {names})")
        matched.append(hit)
    return Reading(tuple(r[1] for r in matched), matched[0][2])


def decode_payload(payload: bytes, fmt: str, fields: tuple[str, ...], max_bytes: int = 65536) -> Reading:
    """Decode one message. `fmt` and `fields` are configuration: bad values raise ValueError."""
    if fmt not in FORMATS or not fields or not all(isinstance(f, str) and f for f in fields):
        raise ValueError(f"decode_payload: fmt must be one of {FORMATS} and fields a non-empty tuple of names")
    if len(payload) > max_bytes:   # before any decoding, so a huge payload costs nothing
        raise PayloadError("oversize", f"payload is {len(payload)} bytes, limit {max_bytes}")
    try:
        text = bytes(payload).decode("utf-8").strip()
    except UnicodeDecodeError:
        raise PayloadError("not_utf8", "payload is not UTF-8 text") from None
    if not text:
        raise PayloadError("empty", "payload is empty")
    if fmt == "auto":
        fmt = {"[": "senml", "{": "json"}.get(text[0], "number")
    if fmt == "number":
        if len(fields) != 1:
            raise PayloadError("wrong_field_count", f"a bare number carries one field, {len(fields)} configured")
        reading = Reading((_parse_number_text(text),), None)
    else:
        document = _load_json(text)
        reading = _decode_json(document, fields) if fmt == "json" else _decode_senml(document, fields)
    for field, value in zip(fields, reading.values):     # finite already; the model's range too
        why = out_of_range(value)
        if why is not None:
            raise PayloadError("out_of_range", f"field {_show(field)} {why} ({_show(value)})")
    return reading

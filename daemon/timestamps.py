"""One timestamp parser for every way a reading arrives (MQTT payloads, CSV rows), so that
`statecast serve` and `statecast score` read the same text as the same instant; and the one
ISO 8601 formatter for the times the daemon logs and publishes."""
from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone


def parse_timestamp(value) -> float:
    """Epoch seconds (UTC) from a number, a numeric string ("1700000000", "1.7e9") or ISO-8601
    ("2024-01-01T00:00:00Z", "+02:00" offsets; naive times are UTC). Raises ValueError."""
    if isinstance(value, bool):
        raise ValueError("a boolean is not a timestamp")
    if isinstance(value, (int, float)):
        number = float(value)
        if not math.isfinite(number):
            raise ValueError("timestamp is not finite")
        return number
    if not isinstance(value, str):
        raise ValueError(f"a {type(value).__name__} is not a timestamp")
    text = value.strip()
    try:
        number = float(text)
    except ValueError:
        number = None
    if number is not None:
        if not math.isfinite(number):
            raise ValueError("timestamp is not finite")
        return number
    if text[-1:] in ("Z", "z"):                      # Python 3.10's fromisoformat has no 'Z'
        text = text[:-1] + "+00:00"
    try:
        moment = datetime.fromisoformat(text)
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=timezone.utc)
        return moment.timestamp()
    except (OverflowError, OSError) as error:
        raise ValueError(str(error)) from None


def iso_time(ts: float) -> str:
    """Epoch seconds -> ISO 8601 UTC, e.g. 2013-12-02T21:15:00Z (milliseconds only when present).
    Every published message carries one: the date part is cached per day, which makes this ~5x
    cheaper than datetime.strftime (it was a quarter of a forecast message's encoding time)."""
    whole = math.floor(ts)
    ms = int(round((ts - whole) * 1000))
    if ms == 1000:
        whole, ms = whole + 1, 0
    day, second = divmod(int(whole), 86400)
    date = _dates.get(day)
    if date is None:
        if len(_dates) >= 1024:
            _dates.clear()
        date = _dates[day] = (_EPOCH + timedelta(days=day)).strftime("%Y-%m-%d")
    hour, rest = divmod(second, 3600)
    text = f"{date}T{hour:02d}:{rest // 60:02d}:{rest % 60:02d}"
    return f"{text}.{ms:03d}Z" if ms else text + "Z"


_EPOCH = datetime(1970, 1, 1)
_dates: dict[int, str] = {}

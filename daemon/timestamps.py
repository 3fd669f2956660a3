"""One timestamp parser for every way a reading arrives (MQTT payloads, CSV rows), so that
`statecast serve` and `statecast score` read the same text as the same instant."""
from __future__ import annotations

import math
from datetime import datetime, timezone


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

"""The generic TOML table reader behind daemon/config.py.

A `Table` is one TOML table being read. It knows its dotted path and the keys it may hold (with
their defaults), rejects unknown keys up front, and checks one key at a time for type, range,
choices or a custom rule. Every error is one line: `<file>: <dotted.key>: <reason>`.
"""
from __future__ import annotations

import dataclasses
import difflib
import json
import math
import os
import re
from typing import Any, Callable

REQUIRED = dataclasses.MISSING
_FROM_TABLE = object()                      # "use the default registered for this key"
_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_KIND_TEXT = {bool: "a boolean (true or false)", int: "an integer", float: "a number",
              str: "a string", tuple: "an array"}


class ConfigError(Exception):
    """A config problem a user can fix; the message is one line naming the file and the key."""


def defaults_of(cls: type) -> dict[str, Any]:
    """TOML key -> default (REQUIRED when the dataclass field has none) for a section dataclass."""
    return {f.name: f.default if f.default_factory is dataclasses.MISSING else f.default_factory()
            for f in dataclasses.fields(cls)}          # f.default is MISSING (= REQUIRED) when there is none


def render(value: Any) -> str:
    """A value as a short, single-line, TOML-like text for error messages."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return _num(value) if math.isfinite(value) else repr(value)
    text = json.dumps(value, default=str)   # ensure_ascii: control and line-break characters escaped
    return text if len(text) <= 60 else text[:57] + "..."


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else repr(float(x))


def _type_ok(value: Any, kind: type) -> bool:
    if kind in (int, float) and isinstance(value, bool):
        return False                          # bool is an int subclass in Python, not in TOML
    if kind is float:
        return isinstance(value, (int, float))
    if kind is tuple:
        return isinstance(value, (list, tuple))
    return isinstance(value, kind)


def range_text(lo=None, hi=None, lo_open=False, hi_open=False, zero_off=False) -> str:
    if lo is not None and hi is not None and not (lo_open or hi_open):
        text = f"between {_num(lo)} and {_num(hi)}"
    else:
        parts = ([f"{'>' if lo_open else '>='} {_num(lo)}"] if lo is not None else []) + \
                ([f"{'<' if hi_open else '<='} {_num(hi)}"] if hi is not None else [])
        text = " and ".join(parts)
    return f"must be 0 (off) or {text}" if zero_off else f"must be {text}"


def _in_range(value, lo, hi, lo_open, hi_open) -> bool:
    above = lo is None or (value > lo if lo_open else value >= lo)
    below = hi is None or (value < hi if hi_open else value <= hi)
    return above and below


class Table:
    def __init__(self, data: dict, prefix: str, source: str, base_dir: str, known: dict[str, Any]):
        self.data, self.prefix, self.source, self.base_dir, self.known = data, prefix, source, base_dir, known
        for name in data:
            if name not in known:
                close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
                hint = f"did you mean {close[0]!r}?" if close else f"known keys: {', '.join(known)}"
                raise self.error(name, f"unknown key; {hint}")

    def key(self, name: str) -> str:
        shown = name if _BARE_KEY.fullmatch(name) else json.dumps(name)
        return f"{self.prefix}.{shown}" if self.prefix else shown

    def error(self, name: str, reason: str) -> ConfigError:
        return ConfigError(f"{self.source}: {self.key(name)}: {reason}")

    def has(self, name: str) -> bool:
        return name in self.data

    def get(self, name: str, kind: type, default: Any = _FROM_TABLE, *, lo=None, hi=None, lo_open=False,
            hi_open=False, zero_off=False, choices: tuple | None = None,
            check: Callable[[Any], str | None] | None = None, secret: bool = False) -> Any:
        """One key: its default when absent, else the type/range/choices/check-validated value.

        `check(value)` returns None or a complete reason. `secret` keeps the value out of errors.
        """
        if default is _FROM_TABLE:
            default = self.known[name]
        if name not in self.data:
            if default is REQUIRED:
                raise self.error(name, "required key is missing")
            return default
        value = self.data[name]
        got = "" if secret else f", got {render(value)}"
        if not _type_ok(value, kind):
            raise self.error(name, f"must be {_KIND_TEXT[kind]}{got}")
        if kind is float:
            value = float(value)
            if not math.isfinite(value):
                raise self.error(name, f"must be a finite number{got}")
        if kind is tuple:
            value = tuple(value)
        if choices is not None and value not in choices:
            raise self.error(name, f"must be one of {', '.join(render(c) for c in choices)}{got}")
        if (lo is not None or hi is not None) and not (zero_off and value == 0) \
                and not _in_range(value, lo, hi, lo_open, hi_open):
            raise self.error(name, range_text(lo, hi, lo_open, hi_open, zero_off) + got)
        problem = check(value) if check is not None else None
        if problem:
            raise self.error(name, problem)
        return value

    def path(self, name: str, default: Any = _FROM_TABLE) -> str | None:
        """A file or directory path, resolved against the config file's directory."""
        value = self.get(name, str, default, check=path_problem)
        return None if value is None else os.path.normpath(os.path.join(self.base_dir, value))

    def table(self, name: str, known: dict[str, Any]) -> Table:
        value = self.data.get(name, {})
        if not isinstance(value, dict):
            raise self.error(name, f"must be a table ([{name}]), got {render(value)}")
        return Table(value, self.key(name), self.source, self.base_dir, known)

    def tables(self, name: str, known: dict[str, Any]) -> list[Table]:
        """A required, non-empty array of tables ([[name]])."""
        value = self.data.get(name, [])
        if not value:
            raise self.error(name, f"required: at least one [[{name}]] table")
        if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
            raise self.error(name, f"must be an array of tables ([[{name}]]), got {render(value)}")
        return [Table(item, f"{self.key(name)}[{i}]", self.source, self.base_dir, known)
                for i, item in enumerate(value)]


def path_problem(value: str) -> str | None:
    if not value:
        return "must not be empty"
    if "\x00" in value:
        return f"must not contain NUL, got {render(value)}"
    return None

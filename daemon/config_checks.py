"""Field-level checks behind daemon/config.py.

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

from statecast.daemon.mqtt.topics import TopicError, stream_id_from_topic, validate_filter, validate_template

REQUIRED = dataclasses.MISSING
_FROM_TABLE = object()                      # "use the default registered for this key"
_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_STREAM_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")     # a stream name becomes a file name
_EDGETPU_DEVICE = re.compile(r"(usb|pci)(:[0-9]+)?|:[0-9]+")
_SHARD = re.compile(r"([0-9]+)/([0-9]+)")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
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


# --- custom rules: each returns None or a complete one-line reason -------------------------

def path_problem(value: str) -> str | None:
    if not value:
        return "must not be empty"
    if "\x00" in value:
        return f"must not contain NUL, got {render(value)}"
    return None


def inner_filter(topic_filter: str) -> str:
    """The filter topics are matched against: `$share/<group>/<filter>` matches `<filter>`."""
    return topic_filter.split("/", 2)[2] if topic_filter.startswith("$share/") else topic_filter


def filter_problem(topic_filter: str) -> str | None:
    """An MQTT subscription filter, optionally a shared subscription `$share/<group>/<filter>`."""
    if topic_filter.startswith("$share/"):
        parts = topic_filter.split("/", 2)
        if len(parts) < 3 or not parts[1] or not parts[2] or "+" in parts[1] or "#" in parts[1]:
            return f"a shared subscription must be \"$share/<group>/<filter>\", got {render(topic_filter)}"
    try:
        validate_filter(topic_filter)
    except TopicError as error:
        return str(error)
    return None


def template_problem(template: str, placeholder: bool = True) -> str | None:
    """An output topic: no wildcards; {stream} required (per-stream topics) or absent (fixed ones)."""
    try:
        validate_template(template)
    except TopicError as error:
        return str(error)
    if ("{stream}" in template) != placeholder:
        return f"{'must contain' if placeholder else 'takes no'} {{stream}} placeholder, got {render(template)}"
    return None


def topic_name_problem(topic: str) -> str | None:
    return template_problem(topic, placeholder=False)


def names_problem(items: tuple) -> str | None:
    """A non-empty array of unique, non-empty strings."""
    if not items:
        return "must be a non-empty array of strings, got []"
    for item in items:
        if not isinstance(item, str) or not item:
            return f"entries must be non-empty strings, got {render(item)}"
    duplicates = sorted({item for item in items if items.count(item) > 1})
    return f"duplicate entry {render(duplicates[0])}" if duplicates else None


def nonempty_problem(value: str) -> str | None:
    return None if value else "must not be empty"


def client_id_problem(value: str) -> str | None:
    return None if 0 < len(value) <= 128 else f"must be 1 to 128 characters, got {len(value)}"


def stream_name_problem(name: str) -> str | None:
    if _STREAM_NAME.fullmatch(name):
        return None
    return f"must be 1 to 64 of A-Z a-z 0-9 _ . - starting with a letter or digit, got {render(name)}"


def edgetpu_device_problem(device: str) -> str | None:
    if _EDGETPU_DEVICE.fullmatch(device):
        return None
    return f'must be "usb", "pci", "usb:N", "pci:N" or ":N", got {render(device)}'


def log_level_problem(level: str) -> str | None:
    return None if level.upper() in LOG_LEVELS else f"must be one of {', '.join(LOG_LEVELS)}, got {render(level)}"


def shard_problem(shard: str) -> str | None:
    return None if parse_shard(shard) else f'must be "i/N" with 0 <= i < N, got {render(shard)}'


def parse_shard(shard: str) -> tuple[int, int] | None:
    """"i/N" -> (i, N) when 0 <= i < N, else None."""
    match = _SHARD.fullmatch(shard)
    if not match or not int(match[1]) < int(match[2]):
        return None
    return int(match[1]), int(match[2])


# --- rules across keys ----------------------------------------------------------------------

def credentials(t: Table) -> tuple[str | None, str | None, str | None]:
    """[broker] username, password (inline or read from password_file), password_file."""
    password = t.get("password", str, secret=True)
    password_file = t.path("password_file")
    if password is not None and password_file is not None:
        raise t.error("password_file", f"cannot be combined with {t.key('password')}; set one of them")
    if password_file is not None:
        password = read_password(t, password_file)
    username = t.get("username", str)
    if password is not None and not username:
        raise t.error("username", "required (non-empty) when a password is set")
    return username, password, password_file


def read_password(t: Table, path: str) -> str:
    """The password file's text without its trailing newline(s); errors name `password_file`."""
    try:
        with open(path, encoding="utf-8") as f:
            password = f.read().rstrip("\r\n")
    except OSError as error:
        raise t.error("password_file", f"cannot read {render(path)}: {error.strerror or error}") from None
    except UnicodeDecodeError:
        raise t.error("password_file", f"{render(path)} is not UTF-8 text") from None
    if not password:
        raise t.error("password_file", f"{render(path)} is empty")
    return password


def tls_files(t: Table) -> tuple[bool, str | None, str | None, str | None]:
    """[broker] tls, ca_file, cert_file, key_file: TLS settings only with tls, cert and key together."""
    tls = t.get("tls", bool)
    for name in ("ca_file", "cert_file", "key_file", "tls_server_name"):
        if t.has(name) and not tls:
            raise t.error(name, f"is set but {t.key('tls')} is false; set tls = true or remove it")
    cert_file, key_file = t.path("cert_file"), t.path("key_file")
    if (cert_file is None) != (key_file is None):
        missing, given = ("key_file", "cert_file") if key_file is None else ("cert_file", "key_file")
        raise t.error(missing, f"required together with {t.key(given)}")
    return tls, t.path("ca_file"), cert_file, key_file


def check_streams(tables: list[Table], streams: tuple, own_topics: list[str]) -> None:
    """Unique stream names, and no filter that would subscribe to the daemon's own output."""
    first: dict[str, int] = {}
    for i, (t, stream) in enumerate(zip(tables, streams)):
        if stream.name in first:
            raise t.error("name", f"duplicate stream name {render(stream.name)} (also streams[{first[stream.name]}]);"
                          " set a distinct name")
        first[stream.name] = i
        for topic in own_topics:
            if stream_id_from_topic(inner_filter(stream.topic), topic.replace("{stream}", "x")) is not None:
                raise t.error("topic", f"{render(stream.topic)} matches the daemon's own output topic "
                              f"{render(topic)}; narrow the filter or move the output topics")

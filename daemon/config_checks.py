"""The rules behind daemon/config.py that know MQTT and the service: topic filters and
templates, stream names, shards, Edge TPU devices, log levels, credentials and TLS files, and the
checks across [[streams]]. Each rule returns None or a complete one-line reason; the generic
table reader is config_table.py.
"""
from __future__ import annotations

import re

from statecast.daemon.mqtt.topics import TopicError, stream_id_from_topic, validate_filter, validate_template
from .config_table import Table, render

_STREAM_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")     # a stream name becomes a file name
_EDGETPU_DEVICE = re.compile(r"(usb|pci)(:[0-9]+)?|:[0-9]+")
_SHARD = re.compile(r"([0-9]+)/([0-9]+)")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


# --- custom rules: each returns None or a complete one-line reason -------------------------

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

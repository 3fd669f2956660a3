"""MQTT topic handling: filter validation, stream ids taken from topics, output topic templates.

A stream id ends up both in an MQTT topic level and in a state file name, so it is reduced to
[A-Za-z0-9._-] before use; topics arriving from the broker are untrusted text.
"""
from __future__ import annotations

import hashlib
import re

MAX_TOPIC_BYTES = 65535   # MQTT: topics are UTF-8 strings with a 16-bit length prefix
PLACEHOLDER = "{stream}"
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")
_SAFE_ID = re.compile(r"[A-Za-z0-9._-]+")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_HASH_HEX_CHARS = 8


class TopicError(Exception):
    """A topic filter, template or rendered topic that cannot be used (one-line message)."""


def _check_text(text: str, what: str) -> None:
    """Rules shared by filters and templates: non-empty, no control chars, UTF-8 length."""
    if not text:
        raise TopicError(f"{what} is empty")
    if "\x00" in text:
        raise TopicError(f"{what} {text!r} contains NUL")
    # MQTT only forbids NUL, but a control character (a stray newline from a config file, say)
    # would make a topic that silently never matches.
    if _CONTROL.search(text):
        raise TopicError(f"{what} {text[:80]!r} contains a control character")
    try:
        size = len(text.encode("utf-8"))
    except UnicodeEncodeError:
        raise TopicError(f"{what} {text[:80]!r} is not valid UTF-8 (lone surrogate)") from None
    if size > MAX_TOPIC_BYTES:
        raise TopicError(f"{what} is {size} bytes in UTF-8, MQTT allows {MAX_TOPIC_BYTES}")


def validate_filter(topic_filter: str) -> None:
    """MQTT subscription filter: '+' fills a whole level, '#' only as the whole last level."""
    _check_text(topic_filter, "topic filter")
    levels = topic_filter.split("/")
    for index, level in enumerate(levels):
        if "#" in level and (level != "#" or index != len(levels) - 1):
            raise TopicError(f"topic filter {topic_filter!r}: '#' must be the whole last level")
        if "+" in level and level != "+":
            raise TopicError(f"topic filter {topic_filter!r}: '+' must be a whole level")


def _wildcard_count(levels: list[str]) -> int:
    return sum(level in ("+", "#") for level in levels)


def _match(filter_levels: list[str], topic_levels: list[str]) -> list[str] | None:
    """What each wildcard matched, in order, or None if the topic does not match."""
    captured = []
    for index, level in enumerate(filter_levels):
        if level == "#":   # matches the parent level too: "a/#" matches "a", capturing ""
            captured.append("/".join(topic_levels[index:]))
            return captured
        if index >= len(topic_levels):
            return None
        if level == "+":
            captured.append(topic_levels[index])
        elif level != topic_levels[index]:
            return None
    return captured if len(filter_levels) == len(topic_levels) else None


def stream_id_from_topic(topic_filter: str, topic: str, wildcard_index: int = 0) -> str | None:
    """The text the wildcard_index-th wildcard ('+' or '#', in filter order) matched in `topic`.

    Returns the whole topic when the filter has no wildcard, and None when the topic does not
    match or is not a valid topic name. The result may be "" (an empty level) and is raw text:
    pass it through sanitize_stream_id. Raises TopicError only for a bad filter or index.
    """
    validate_filter(topic_filter)
    filter_levels = topic_filter.split("/")
    wildcards = _wildcard_count(filter_levels)
    if wildcards and not 0 <= wildcard_index < wildcards:
        raise TopicError(f"topic filter {topic_filter!r} has {wildcards} wildcard(s), "
                         f"no wildcard number {wildcard_index}")
    # Topic names from the broker are never empty and never hold wildcards or NUL.
    if not topic or "+" in topic or "#" in topic or "\x00" in topic:
        return None
    # MQTT: a filter starting with a wildcard does not match "$SYS/..."-style topics.
    if topic.startswith("$") and filter_levels[0] in ("+", "#"):
        return None
    captured = _match(filter_levels, topic.split("/"))
    if captured is None:
        return None
    return captured[wildcard_index] if wildcards else topic


def _only_filler(cleaned: str) -> bool:
    return not cleaned.strip("._")


def sanitize_stream_id(raw: str, max_length: int = 128) -> str | None:
    """Id safe as one topic level and as a file name, or None if nothing meaningful is left.

    Every character outside [A-Za-z0-9._-] becomes '_' (so "a/b" and "a_b" share an id). Ids
    longer than max_length keep a prefix plus '-' and 8 hex of sha256(raw), and are exactly
    max_length long, so distinct long ids stay distinct.
    """
    if max_length < _HASH_HEX_CHARS + 2:
        raise ValueError(f"max_length must be at least {_HASH_HEX_CHARS + 2}, got {max_length}")
    cleaned = _UNSAFE.sub("_", raw)
    if _only_filler(cleaned):   # also covers "", "." and ".."
        return None
    if len(cleaned) <= max_length:
        return cleaned
    # surrogatepass: a topic may carry lone surrogates; hashing must still never fail.
    digest = hashlib.sha256(raw.encode("utf-8", "surrogatepass")).hexdigest()[:_HASH_HEX_CHARS]
    return f"{cleaned[: max_length - _HASH_HEX_CHARS - 1]}-{digest}"


def validate_template(template: str) -> None:
    """An output topic template: a valid topic apart from the optional {stream} placeholder."""
    _check_text(template, "topic template")
    if "+" in template or "#" in template:
        raise TopicError(f"topic template {template!r} contains a wildcard ('+' or '#')")
    rest = template.replace(PLACEHOLDER, "")
    unknown = re.search(r"\{[^{}]*\}", rest)
    if unknown:
        raise TopicError(f"topic template {template!r}: unknown placeholder {unknown.group()} "
                         f"(only {PLACEHOLDER})")
    if "{" in rest or "}" in rest:
        raise TopicError(f"topic template {template!r} has an unmatched brace")


def render_topic(template: str, stream_id: str) -> str:
    """Fill {stream} with an already sanitized id; raise TopicError if the result is unsafe."""
    if not _SAFE_ID.fullmatch(stream_id) or _only_filler(stream_id):
        raise TopicError(f"stream id {stream_id[:80]!r} is not sanitized (see sanitize_stream_id)")
    topic = template.replace(PLACEHOLDER, stream_id)
    if "+" in topic or "#" in topic or "\x00" in topic:
        raise TopicError(f"rendered topic {topic[:80]!r} contains a wildcard or NUL")
    return topic

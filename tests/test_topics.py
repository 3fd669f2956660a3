"""Topic filters, stream ids from untrusted topics, and output topic templates."""
from __future__ import annotations

import re

import pytest
from hypothesis import given, settings, strategies as st

from statecast.daemon.mqtt.topics import (TopicError, render_topic, sanitize_stream_id, stream_id_from_topic,
                                     validate_filter, validate_template)

SAFE = re.compile(r"[A-Za-z0-9._-]+")


# --- validate_filter ---------------------------------------------------------------------------

@pytest.mark.parametrize("topic_filter", ["sensors/+/temperature", "sensors/#", "#", "+", "+/+",
                                          "a//b", "/leading", "$SYS/broker/+", "häuser/+/temp"])
def test_valid_filters(topic_filter):
    assert validate_filter(topic_filter) is None


@pytest.mark.parametrize("topic_filter, problem", [
    ("", "empty"), ("a/b+/c", "'+' must be a whole level"), ("a/#/c", "'#' must be the whole last level"),
    ("a/b#", "'#' must be the whole last level"), ("a/++", "'+' must be a whole level"),
    ("a/\x00", "NUL"), ("a/b\n", "control character"), ("a/\ud800", "UTF-8"),
    ("a/" + "x" * 65534, "65535"),
])
def test_invalid_filters_name_the_problem(topic_filter, problem):
    with pytest.raises(TopicError, match=re.escape(problem)) as caught:
        validate_filter(topic_filter)
    assert "\n" not in str(caught.value) and len(str(caught.value)) < 200


def test_filter_length_counts_utf8_bytes():
    validate_filter("é" * 32767)                 # 65534 bytes
    with pytest.raises(TopicError, match="65536 bytes"):
        validate_filter("é" * 32768)


# --- stream_id_from_topic ----------------------------------------------------------------------

@pytest.mark.parametrize("topic_filter, topic, index, expected", [
    ("sensors/+/temperature", "sensors/kitchen/temperature", 0, "kitchen"),
    ("sensors/+/temperature", "sensors/kitchen/humidity", 0, None),
    ("sensors/+/temperature", "sensors/kitchen/temperature/x", 0, None),
    ("sensors/+/temperature", "sensors/temperature", 0, None),
    ("site/+/room/+", "site/berlin/room/12", 1, "12"),
    ("site/+/room/+", "site/berlin/room/12", 0, "berlin"),
    ("sensors/#", "sensors/a/b/c", 0, "a/b/c"),
    ("sensors/#", "sensors", 0, ""),              # '#' also matches the parent level
    ("+/#", "a/b", 1, "b"),
    ("sensors/+/t", "sensors//t", 0, ""),         # an empty level is a legal match for '+'
    ("plain/topic", "plain/topic", 0, "plain/topic"),
    ("plain/topic", "plain/other", 0, None),
    ("#", "$SYS/broker/load", 0, None),           # wildcards first never match $-topics
    ("+/broker/load", "$SYS/broker/load", 0, None),
    ("$SYS/+/load", "$SYS/broker/load", 0, "broker"),
    ("sensors/+", "sensors/+", 0, None),          # topic names cannot carry wildcards
    ("sensors/+", "sensors/#", 0, None),
    ("sensors/+", "", 0, None),
    ("sensors/+", "sensors/a\x00b", 0, None),
])
def test_stream_id_from_topic(topic_filter, topic, index, expected):
    assert stream_id_from_topic(topic_filter, topic, index) == expected


@pytest.mark.parametrize("topic_filter, index", [("a/+", 1), ("a/+/#", 2), ("a/+", -1), ("a/b+", 0)])
def test_bad_filter_or_wildcard_index_raises(topic_filter, index):
    with pytest.raises(TopicError):
        stream_id_from_topic(topic_filter, "a/b", index)


# --- sanitize_stream_id --------------------------------------------------------------------------

@pytest.mark.parametrize("raw, expected", [
    ("kitchen", "kitchen"), ("boiler-2.main_loop", "boiler-2.main_loop"), ("a/b", "a_b"),
    ("a b\tc", "a_b_c"), ("+#", None), ("wärme", "w_rme"), ("a\x00b", "a_b"),
    ("", None), (".", None), ("..", None), ("._._", None), ("/", None), ("   ", None),
    ("../etc/passwd", ".._etc_passwd"),
])
def test_sanitize(raw, expected):
    assert sanitize_stream_id(raw) == expected


def test_long_ids_are_truncated_with_a_distinguishing_hash():
    a = sanitize_stream_id("x" * 200 + "a")
    b = sanitize_stream_id("x" * 200 + "b")
    assert a != b and len(a) == len(b) == 128
    assert a.startswith("x" * 119 + "-") and re.fullmatch(r"[0-9a-f]{8}", a[-8:])
    assert sanitize_stream_id("x" * 200 + "a") == a                     # deterministic
    assert sanitize_stream_id("y" * 128) == "y" * 128                    # at the limit: untouched
    assert len(sanitize_stream_id("y" * 40, max_length=32)) == 32


def test_tiny_max_length_is_a_configuration_error():
    with pytest.raises(ValueError):
        sanitize_stream_id("abc", max_length=5)


# --- templates --------------------------------------------------------------------------------

def test_render_topic():
    assert render_topic("statecast/forecast/{stream}", "kitchen") == "statecast/forecast/kitchen"
    assert render_topic("statecast/{stream}/alerts/{stream}", "k") == "statecast/k/alerts/k"
    assert render_topic("statecast/status", "k") == "statecast/status"


@pytest.mark.parametrize("stream_id", ["a/b", "+", "#", "", "..", "a\x00", "wärme"])
def test_render_topic_rejects_unsanitized_ids(stream_id):
    with pytest.raises(TopicError, match="not sanitized"):
        render_topic("statecast/{stream}", stream_id)


def test_render_topic_rejects_wildcards_in_the_template():
    with pytest.raises(TopicError, match="wildcard"):
        render_topic("statecast/+/{stream}", "kitchen")


@pytest.mark.parametrize("template", ["statecast/forecast/{stream}", "statecast/status", "{stream}"])
def test_valid_templates(template):
    assert validate_template(template) is None


@pytest.mark.parametrize("template, problem", [
    ("", "empty"), ("statecast/+/{stream}", "wildcard"), ("statecast/#", "wildcard"),
    ("statecast/{sensor}", "unknown placeholder {sensor}"), ("statecast/{}", "unknown placeholder {}"),
    ("statecast/{stream", "unmatched brace"), ("statecast/stream}", "unmatched brace"),
    ("a/\x00", "NUL"),
])
def test_invalid_templates(template, problem):
    with pytest.raises(TopicError, match=re.escape(problem)):
        validate_template(template)


# --- property-based fuzzing -------------------------------------------------------------------

hostile_text = st.lists(st.sampled_from(["+", "#", "/", ".", "..", "\x00", "$", " ", "a", "Z", "9", "_", "-",
                                         "é", "\U0001f600", "\ud800", "\n"]), max_size=40).map("".join)
any_topic = hostile_text | st.text(max_size=40) | st.text(min_size=300, max_size=2000)
FILTERS = st.sampled_from(["sensors/+/temperature", "sensors/#", "#", "+", "+/+/#", "a/b", "$SYS/+"])


def check_sanitized(stream_id: str | None) -> None:
    if stream_id is None:
        return
    assert SAFE.fullmatch(stream_id) and stream_id not in (".", "..")
    assert not set(stream_id) & {"/", "+", "#", "\x00"}
    assert render_topic("statecast/forecast/{stream}", stream_id).count("/") == 2   # exactly one level


@settings(max_examples=500, deadline=None)
@given(FILTERS, any_topic, st.integers(0, 1))
def test_arbitrary_topics_never_raise(topic_filter, topic, index):
    index = 0 if topic_filter.count("+") + topic_filter.count("#") < 2 else index
    raw = stream_id_from_topic(topic_filter, topic, index)
    assert raw is None or isinstance(raw, str)
    if raw is not None and "+" not in topic_filter and "#" not in topic_filter:
        assert raw == topic
    check_sanitized(None if raw is None else sanitize_stream_id(raw))


@settings(max_examples=500, deadline=None)
@given(any_topic, st.integers(10, 300))
def test_sanitized_ids_are_safe_bounded_and_deterministic(raw, max_length):
    stream_id = sanitize_stream_id(raw, max_length)
    check_sanitized(stream_id)
    assert stream_id is None or len(stream_id) <= max_length
    assert sanitize_stream_id(raw, max_length) == stream_id


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text(alphabet=st.characters(blacklist_characters="+#/\x00", blacklist_categories=("Cs", "Cc")),
                        max_size=8), min_size=1, max_size=5))
def test_plus_captures_exactly_the_level(levels):
    topic_filter = "/".join(["root", "+", *levels])
    for position, level in enumerate(levels):
        topic = "/".join(["root", level, *levels])
        assert stream_id_from_topic(topic_filter, topic) == level
        if level:   # changing any fixed level breaks the match
            other = "/".join(["root", level, *levels[:position], level + "x", *levels[position + 1:]])
            assert stream_id_from_topic(topic_filter, other) is None


def test_router_cache_keeps_first_matching_route_and_stays_bounded():
    """The per-route topic cache answers as the uncached match does: a topic matching two filters
    belongs to the first, also when it is seen again; and the cache is cleared at its bound."""
    from statecast.daemon.mqtt.routing import Route, Router

    broad = Route("broad", "plant/+/#", 0, "json", ("value",))
    narrow = Route("narrow", "plant/+/temperature", 0, "json", ("value",))
    other = Route("other", "lab/+/temperature", 0, "json", ("value",))
    router = Router([broad, narrow, other], max_payload_bytes=1024)
    router.CACHE_SIZE = 3
    payload = b'{"value": 1.5}'
    for _ in range(2):                                   # uncached, then cached
        assert router.route("plant/p1/temperature", payload)[0] is broad
        assert router.route("lab/l1/temperature", payload)[0] is other
        assert router.route("lab/l1/temperature", payload)[1].stream_id == "l1"
    for i in range(10):
        route, message = router.route(f"lab/l{i}/temperature", payload)
        assert (route, message.stream_id) == (other, f"l{i}")
    assert sum(len(ids) for ids in router._ids_by_route) <= router.CACHE_SIZE

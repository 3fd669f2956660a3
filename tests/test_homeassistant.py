"""Home Assistant MQTT discovery payloads: topics, shapes, sanitisation, valid retained JSON."""
from __future__ import annotations

import json
import re

import pytest

from statecast.daemon.mqtt import homeassistant as ha
from statecast.daemon.mqtt.topics import TopicError, sanitize_stream_id

FORECAST = "statecast/forecast/{stream}"
ALERT = "statecast/alert/{stream}"
STATUS = "statecast/status"
SLUG = re.compile(r"[a-z0-9_]+")


def messages(stream_id="kitchen", **kwargs):
    return ha.discovery_messages("homeassistant", stream_id, FORECAST, ALERT, STATUS, **kwargs)


def test_two_retained_configs_on_the_documented_topics():
    sensor, alert = messages()
    assert sensor.topic == "homeassistant/sensor/statecast_kitchen/forecast/config"
    assert alert.topic == "homeassistant/binary_sensor/statecast_kitchen/alert/config"
    for message in (sensor, alert):
        assert message.retain is True and message.qos == 1
        assert isinstance(json.loads(message.payload), dict)


def test_sensor_reads_the_first_forecast_from_the_stream_forecast_topic():
    config = json.loads(messages(unit="°C", model_name="default")[0].payload)
    assert config["state_topic"] == config["json_attributes_topic"] == "statecast/forecast/kitchen"
    assert config["value_template"] == "{{ value_json.forecast[0] }}"
    assert "value_json.anomaly_score" in config["json_attributes_template"]
    assert config["unit_of_measurement"] == "°C"
    assert config["state_class"] == "measurement"
    assert config["device"]["model"] == "default"


def test_unit_is_optional():
    assert "unit_of_measurement" not in json.loads(messages()[0].payload)


def test_binary_sensor_maps_alert_events_to_on_and_clear_to_off():
    config = json.loads(messages()[1].payload)
    assert config["state_topic"] == "statecast/alert/kitchen"
    assert (config["payload_on"], config["payload_off"]) == ("ON", "OFF")
    assert config["device_class"] == "problem"
    template = config["value_template"]
    assert "value_json.event == 'alert' %}ON" in template
    assert "value_json.event == 'clear' %}OFF" in template


@pytest.mark.parametrize("index", [0, 1])
def test_both_follow_the_daemon_availability_topic_and_share_one_device(index):
    config = json.loads(messages()[index].payload)
    assert config["availability_topic"] == STATUS
    assert (config["payload_available"], config["payload_not_available"]) == ("online", "offline")
    assert config["device"]["identifiers"] == ["statecast_kitchen"]
    assert config["device"]["name"] == "statecast kitchen"
    assert config["origin"]["name"] == "statecast"


def test_ids_are_unique_per_entity_and_per_stream():
    a_sensor, a_alert = (json.loads(m.payload) for m in messages("a"))
    b_sensor, _ = (json.loads(m.payload) for m in messages("b"))
    ids = {a_sensor["unique_id"], a_alert["unique_id"], b_sensor["unique_id"]}
    assert len(ids) == 3
    assert a_sensor["object_id"] == a_sensor["unique_id"] == "statecast_a_forecast"
    assert a_sensor["default_entity_id"] == "sensor.statecast_a_forecast"
    assert a_alert["default_entity_id"] == "binary_sensor.statecast_a_alert"


@pytest.mark.parametrize("raw", ["Hall.Temp", "hall-temp", "Küche/Ofen", "a" * 300, "...x", "HALL_TEMP"])
def test_object_ids_are_home_assistant_slugs_and_keep_distinct_ids_apart(raw):
    stream_id = sanitize_stream_id(raw)          # what the daemon hands over
    slug = ha.object_id(stream_id)
    assert SLUG.fullmatch(slug) and len(slug) <= ha.MAX_SLUG_CHARS
    sensor, alert = messages(stream_id)
    node = f"statecast_{slug}"
    assert sensor.topic.split("/")[2] == alert.topic.split("/")[2] == node
    assert slug != ha.object_id("hall_temp") or stream_id == "hall_temp"


def test_slug_collisions_are_broken_by_a_hash():
    assert ha.object_id("hall_temp") == "hall_temp"
    assert ha.object_id("Hall_Temp") != ha.object_id("hall_temp")
    assert ha.object_id("hall.temp") != ha.object_id("hall-temp")
    assert ha.object_id("hall.temp") == ha.object_id("hall.temp")      # stable across restarts


def test_unsanitised_stream_ids_are_refused():
    with pytest.raises(TopicError):
        messages("a/b")
    with pytest.raises(TopicError):
        messages("+")


def test_removal_clears_both_retained_configs():
    removal = ha.removal_messages("homeassistant", "kitchen")
    assert [m.topic for m in removal] == [m.topic for m in messages()]
    assert all(m.payload == "" and m.retain for m in removal)


def test_custom_prefix_and_topics():
    sensor, alert = ha.discovery_messages("ha", "k1", "home/{stream}/forecast", "home/{stream}/alert", "home/status")
    assert sensor.topic.startswith("ha/sensor/") and alert.topic.startswith("ha/binary_sensor/")
    assert json.loads(sensor.payload)["state_topic"] == "home/k1/forecast"
    assert json.loads(alert.payload)["availability_topic"] == "home/status"

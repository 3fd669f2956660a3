"""Home Assistant MQTT discovery for one stream (pure functions: topics and JSON, no MQTT I/O).

For each stream the daemon announces two entities on one device ("statecast <stream>"):
- sensor        <prefix>/sensor/statecast_<id>/forecast/config: the next-step forecast, read
                from the forecast topic's JSON (`forecast[0]`); the anomaly score, timestamp and
                whole forecast path are attributes.
- binary_sensor <prefix>/binary_sensor/statecast_<id>/alert/config: the alert state, from the
                alert topic's `event` field ("alert" -> ON, "clear" -> OFF), device_class problem.
Both are available while the daemon's retained status topic says "online". Publish the configs
retained (QoS 1) when a stream first appears; an empty retained payload on the same topics
removes the entities (removal_messages).

<id> is the (already sanitised) stream id reduced to what Home Assistant accepts in a node id
and an entity id: [a-z0-9_], lower case. When that changes the id, 6 hex of its sha256 are
appended so "Hall.Temp" and "hall_temp" stay two devices.
"""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass

from .topics import render_topic

_NOT_SLUG = re.compile(r"[^a-z0-9_]")
_HASH_HEX_CHARS = 6
MAX_SLUG_CHARS = 64
SENSOR_VALUE_TEMPLATE = "{{ value_json.forecast[0] }}"
SENSOR_ATTRIBUTES_TEMPLATE = ('{{ {"anomaly_score": value_json.anomaly_score, "expected": value_json.expected, '
                              '"forecast": value_json.forecast, "ts": value_json.ts} | tojson }}')
ALERT_VALUE_TEMPLATE = ("{% if value_json.event == 'alert' %}ON"
                        "{% elif value_json.event == 'clear' %}OFF{% endif %}")


@dataclass(frozen=True)
class DiscoveryMessage:
    topic: str
    payload: str          # JSON config, or "" to remove the entity
    retain: bool = True
    qos: int = 1


def object_id(stream_id: str) -> str:
    """Home Assistant-safe slug of a stream id: [a-z0-9_], never empty, distinct ids stay distinct."""
    slug = _NOT_SLUG.sub("_", stream_id.lower()).strip("_")
    if slug == stream_id and slug and len(slug) <= MAX_SLUG_CHARS:
        return slug
    digest = hashlib.sha256(stream_id.encode("utf-8", "surrogatepass")).hexdigest()[:_HASH_HEX_CHARS]
    prefix = slug[: MAX_SLUG_CHARS - _HASH_HEX_CHARS - 1]
    return f"{prefix}_{digest}" if prefix else digest


def device_block(stream_id: str, model_name: str | None = None, sw_version: str | None = None) -> dict:
    device = {"identifiers": [f"statecast_{object_id(stream_id)}"], "name": f"statecast {stream_id}",
              "manufacturer": "statecast"}
    if model_name:
        device["model"] = model_name
    if sw_version:
        device["sw_version"] = sw_version
    return device


def _common(stream_id: str, domain: str, entity: str, name: str, status_topic: str,
            model_name: str | None, sw_version: str | None) -> dict:
    slug = f"statecast_{object_id(stream_id)}_{entity}"
    return {"name": name, "unique_id": slug,
            "object_id": slug,                                   # Home Assistant before 2025.10
            "default_entity_id": f"{domain}.{slug}",             # Home Assistant 2025.10 and later
            "availability_topic": status_topic, "payload_available": "online",
            "payload_not_available": "offline",
            "device": device_block(stream_id, model_name, sw_version),
            "origin": {"name": "statecast", **({"sw_version": sw_version} if sw_version else {})}}


def sensor_config(stream_id: str, forecast_topic: str, status_topic: str, unit: str | None = None,
                  model_name: str | None = None, sw_version: str | None = None) -> dict:
    """Discovery config of the forecast sensor; forecast_topic is the rendered topic of this stream."""
    config = _common(stream_id, "sensor", "forecast", "Forecast", status_topic, model_name, sw_version)
    config.update({"state_topic": forecast_topic, "value_template": SENSOR_VALUE_TEMPLATE,
                   "json_attributes_topic": forecast_topic,
                   "json_attributes_template": SENSOR_ATTRIBUTES_TEMPLATE,
                   "state_class": "measurement", "icon": "mdi:chart-bell-curve-cumulative"})
    if unit:
        config["unit_of_measurement"] = unit
    return config


def binary_sensor_config(stream_id: str, alert_topic: str, status_topic: str, model_name: str | None = None,
                         sw_version: str | None = None) -> dict:
    """Discovery config of the alert binary_sensor; alert_topic is the rendered topic of this stream."""
    config = _common(stream_id, "binary_sensor", "alert", "Anomaly", status_topic, model_name, sw_version)
    config.update({"state_topic": alert_topic, "value_template": ALERT_VALUE_TEMPLATE,
                   "payload_on": "ON", "payload_off": "OFF", "device_class": "problem"})
    return config


def discovery_topics(prefix: str, stream_id: str) -> tuple[str, str]:
    """(sensor config topic, binary_sensor config topic) of a stream."""
    node = f"statecast_{object_id(stream_id)}"
    return f"{prefix}/sensor/{node}/forecast/config", f"{prefix}/binary_sensor/{node}/alert/config"


def discovery_messages(prefix: str, stream_id: str, forecast_template: str, alert_template: str,
                       status_topic: str, unit: str | None = None, model_name: str | None = None,
                       sw_version: str | None = None) -> list[DiscoveryMessage]:
    """Both retained config messages of a stream; the templates are the daemon's output topic
    templates ("statecast/forecast/{stream}"), stream_id the sanitised stream id."""
    forecast_topic = render_topic(forecast_template, stream_id)
    alert_topic = render_topic(alert_template, stream_id)
    sensor_topic, alert_config_topic = discovery_topics(prefix, stream_id)
    return [DiscoveryMessage(sensor_topic, _dumps(sensor_config(stream_id, forecast_topic, status_topic, unit,
                                                                model_name, sw_version))),
            DiscoveryMessage(alert_config_topic, _dumps(binary_sensor_config(stream_id, alert_topic, status_topic,
                                                                             model_name, sw_version)))]


def removal_messages(prefix: str, stream_id: str) -> list[DiscoveryMessage]:
    """Empty retained configs: Home Assistant removes the stream's entities."""
    return [DiscoveryMessage(topic, "") for topic in discovery_topics(prefix, stream_id)]


def _dumps(config: dict) -> str:
    return json.dumps(config, separators=(",", ":"), sort_keys=True)

"""daemon/config.py: the shipped example parses, defaults apply, and every kind of mistake is a
one-line ConfigError naming the file and the dotted key."""
from __future__ import annotations

import copy
import dataclasses
import os
import stat

import pytest

from statecast.daemon.config import (AnomalyConfig, BatchingConfig, BrokerConfig, ConfigError, HomeAssistantConfig,
                                     LoggingConfig, OutputConfig, RuntimeConfig, load_config, parse_config)
from statecast.daemon.service.runtime_setup import manifest_anomaly_settings, open_model
from statecast.daemon.service.stream_pipeline import anomaly_settings

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLE = os.path.join(ROOT, "systemd", "statecast.example.toml")
DEFAULT_MODEL = os.path.join(ROOT, "models", "default")
SOURCE = "/etc/statecast/config.toml"
BASE = "/etc/statecast"
MINIMAL = {"broker": {"host": "127.0.0.1", "port": 1883},
           "streams": [{"topic": "sensors/+/temperature", "model": "models/default"}]}
MINIMAL_TOML = """\
[broker]
host = "127.0.0.1"
port = 1883

[[streams]]
topic = "sensors/+/temperature"
model = "models/default"
"""


def config_with(section: str, **keys) -> dict:
    """MINIMAL plus keys in one section ("streams" means the first [[streams]] table)."""
    data = copy.deepcopy(MINIMAL)
    target = data["streams"][0] if section == "streams" else data.setdefault(section, {})
    target.update(keys)
    return data


def config_error(data: dict, key: str, base_dir: str = BASE) -> str:
    """Parse `data`, expect a ConfigError for `key`; return the message."""
    with pytest.raises(ConfigError) as caught:
        parse_config(data, SOURCE, base_dir)
    message = str(caught.value)
    assert len(message.splitlines()) == 1, message
    assert message.startswith(f"{SOURCE}: {key}: "), message
    return message


def write(path, text: str, mode: int = 0o600) -> str:
    path.write_text(text)
    os.chmod(path, mode)
    return str(path)


# --- files that parse ---------------------------------------------------------------------------

def test_example_file_parses():
    config = load_config(EXAMPLE)
    assert config.source == EXAMPLE
    assert config.state.directory == "/var/lib/statecast"
    [stream] = config.streams
    assert (stream.topic, stream.model, stream.name) == ("sensors/+/temperature", "/opt/statecast/models/default",
                                                         "default")
    assert (config.cluster.shard_index, config.cluster.shard_count) == (0, 1)
    assert config.broker.password is None and config.warnings == ()


def test_example_file_shows_the_defaults():
    """Apart from the device paths, the example states exactly the built-in defaults, and leaves
    the anomaly settings to the model (a key written there would override its tuned value)."""
    config = load_config(EXAMPLE)
    for section, cls in [("output", OutputConfig), ("batching", BatchingConfig),
                         ("homeassistant", HomeAssistantConfig), ("runtime", RuntimeConfig),
                         ("logging", LoggingConfig)]:
        assert getattr(config, section) == cls(), section
    assert config.anomaly == AnomalyConfig(keys_set=frozenset({"enabled"}))
    assert config.broker == BrokerConfig()


def test_minimal_config_gets_the_defaults(tmp_path):
    config = load_config(write(tmp_path / "config.toml", MINIMAL_TOML))
    assert config.broker == BrokerConfig()
    assert config.broker.client_id.startswith("statecast-") and config.broker.protocol == "5"
    assert config.broker.clean_start is False and config.broker.max_queued_messages == 10000
    [stream] = config.streams
    assert stream.model == str(tmp_path / "models" / "default")
    assert stream.name == "default" and stream.fields == ("value",) and stream.payload == "auto"
    assert (stream.qos, stream.horizon, stream.stream_id_wildcard, stream.window_model) == (1, 0, 0, None)
    assert config.output == OutputConfig() and config.output.forecast_topic == "statecast/forecast/{stream}"
    assert config.batching == BatchingConfig() and config.batching.max_batch == 256
    assert config.state.directory == str(tmp_path / "state")
    assert (config.state.checkpoint_interval_seconds, config.state.gap_policy) == (30.0, "reset")
    assert config.anomaly == AnomalyConfig() and config.anomaly.threshold == 0.99
    assert config.homeassistant.enabled is False and config.runtime.backend == "auto"
    assert (config.cluster.shard_index, config.cluster.shard_count) == (0, 1)
    assert config.logging.level == "INFO" and config.warnings == ()


def test_relative_paths_resolve_against_the_config_directory(tmp_path):
    (tmp_path / "secret").write_text("s3cret\n")
    data = config_with("broker", tls=True, ca_file="tls/ca.pem", cert_file="tls/c.pem", key_file="/abs/k.pem",
                       username="u", password_file="secret")
    data["streams"][0].update(model="../models/m1", window_model="models/w")
    data["state"] = {"directory": "var/state"}
    config = parse_config(data, SOURCE, str(tmp_path))
    b = config.broker
    assert (b.ca_file, b.cert_file, b.key_file) == (str(tmp_path / "tls/ca.pem"), str(tmp_path / "tls/c.pem"),
                                                    "/abs/k.pem")
    assert b.password_file == str(tmp_path / "secret")
    assert config.streams[0].model == os.path.join(os.path.dirname(tmp_path), "models", "m1")
    assert config.streams[0].window_model == str(tmp_path / "models" / "w")
    assert config.state.directory == str(tmp_path / "var" / "state")


def test_several_streams_and_lowercase_log_level():
    data = config_with("logging", level="debug")
    data["streams"].append({"topic": "$share/g/plant/+/+/pressure", "model": "/m/p", "stream_id_wildcard": 1,
                            "fields": ["p", "t"], "payload": "senml"})
    config = parse_config(data, SOURCE, BASE)
    assert [s.name for s in config.streams] == ["default", "p"]
    assert config.streams[1].fields == ("p", "t") and config.logging.level == "DEBUG"


# --- errors name the key ------------------------------------------------------------------------

def test_anomaly_keys_set_override_the_models_tuned_settings_exactly():
    """Every [anomaly] key written overrides the model's tuned value, even one set to the built-in
    default (models/default tunes threshold to 0.997; the default is 0.99); the rest stay tuned."""
    model = open_model(DEFAULT_MODEL)
    tuned = manifest_anomaly_settings(model)
    assert tuned.threshold != AnomalyConfig().threshold and tuned.min_steps == AnomalyConfig().min_steps
    config = parse_config(config_with("anomaly", threshold=AnomalyConfig().threshold, min_steps=50), SOURCE, BASE)
    assert config.anomaly.keys_set == {"threshold", "min_steps"}
    assert anomaly_settings(config, model) == dataclasses.replace(tuned, threshold=0.99, min_steps=50)
    assert anomaly_settings(parse_config(config_with("anomaly", enabled=True), SOURCE, BASE), model) == tuned
    assert anomaly_settings(parse_config(MINIMAL, SOURCE, BASE), model) == tuned


def test_anomaly_override_that_contradicts_the_tuned_settings_names_the_file():
    model = open_model(DEFAULT_MODEL)             # tuned clear_threshold 0.99
    with pytest.raises(ConfigError) as caught:
        anomaly_settings(parse_config(config_with("anomaly", threshold=0.95), SOURCE, BASE), model)
    assert str(caught.value).startswith(f"{SOURCE}: [anomaly] sets threshold; "), caught.value
    assert "clear_threshold=0.99" in str(caught.value)


def test_unknown_key_is_named_with_a_suggestion():
    message = config_error(config_with("broker", prot=1883), "broker.prot")
    assert "did you mean 'port'?" in message
    message = config_error({**MINIMAL, "stream": []}, "stream")
    assert "did you mean 'streams'?" in message
    message = config_error(config_with("streams", feilds=["a"]), "streams[0].feilds")
    assert "did you mean 'fields'?" in message
    message = config_error(config_with("batching", zzz=1), "batching.zzz")
    assert "known keys: max_batch, max_wait_ms" in message
    message = config_error(config_with("anomaly", keys_set=["threshold"]), "anomaly.keys_set")
    assert "unknown key" in message and "keys_set" not in message.split("unknown key")[1]


@pytest.mark.parametrize("section, key, value, expected", [
    ("broker", "port", True, "must be an integer, got true"),          # bool is not an int
    ("broker", "port", 1883.0, "must be an integer, got 1883"),
    ("broker", "protocol", 5, 'must be a string, got 5'),
    ("broker", "clean_start", 1, "must be a boolean (true or false), got 1"),
    ("batching", "max_wait_ms", "2", 'must be a number, got "2"'),
    ("batching", "max_wait_ms", float("nan"), "must be a finite number"),
    ("streams", "fields", "value", 'must be an array, got "value"'),
    ("output", "forecast_qos", False, "must be an integer, got false"),
])
def test_wrong_type(section, key, value, expected):
    prefix = "streams[0]" if section == "streams" else section
    assert expected in config_error(config_with(section, **{key: value}), f"{prefix}.{key}")


def test_documented_error_message():
    with pytest.raises(ConfigError) as caught:
        parse_config(config_with("batching", max_batch=0), SOURCE, BASE)
    assert str(caught.value) == f"{SOURCE}: batching.max_batch: must be between 1 and 4096, got 0"


@pytest.mark.parametrize("section, key, value, expected", [
    ("broker", "port", 0, "must be between 1 and 65535, got 0"),
    ("broker", "keepalive_seconds", 4, "must be between 5 and 3600"),
    ("broker", "session_expiry_seconds", 2 ** 32, "must be between 0 and 4294967295"),
    ("broker", "reconnect_min_seconds", 0, "must be > 0, got 0"),
    ("broker", "reconnect_max_seconds", 0.5, "must be >= broker.reconnect_min_seconds (1), got 0.5"),
    ("broker", "max_queued_messages", 0, "must be between 1 and 10000000"),
    ("broker", "client_id", "", "must be 1 to 128 characters, got 0"),
    ("broker", "protocol", "mqttv5", 'must be one of "5", "3.1.1", got "mqttv5"'),
    ("streams", "qos", 3, "must be between 0 and 2"),
    ("streams", "horizon", 1001, "must be between 0 and 1000"),
    ("streams", "payload", "xml", 'must be one of "auto", "json", "senml", "number", got "xml"'),
    ("streams", "fields", [], "must be a non-empty array"),
    ("streams", "fields", ["a", "a"], 'duplicate entry "a"'),
    ("streams", "fields", ["a", ""], "entries must be non-empty strings"),
    ("streams", "window_stride", 0, "must be >= 1"),
    ("streams", "stream_id_wildcard", 1, "has 1 wildcard level(s)"),
    ("streams", "name", "a/b", "must be 1 to 64 of"),
    ("output", "stats_interval_seconds", 0.5, "must be 0 (off) or >= 1, got 0.5"),
    ("output", "forecast_topic", "statecast/forecast", "must contain {stream}"),
    ("output", "alert_topic", "statecast/+/{stream}", "wildcard"),
    ("output", "window_topic", "w/{stream}/{model}", "unknown placeholder {model}"),
    ("output", "status_topic", "statecast/{stream}/status", "takes no {stream} placeholder"),
    ("output", "stats_topic", "statecast/#", "wildcard"),
    ("batching", "max_wait_ms", 1000.5, "must be between 0 and 1000"),
    ("batching", "max_payload_bytes", 15, "must be between 16 and 16777216"),
    ("state", "checkpoint_interval_seconds", 0.05, "must be between 0.1 and 86400, got 0.05"),
    ("state", "idle_eviction_seconds", -1, "must be >= 0"),
    ("state", "gap_policy", "drop", 'must be one of "reset", "continue"'),
    ("anomaly", "threshold", 1.0, "must be > 0 and < 1, got 1"),
    ("anomaly", "clear_threshold", 0.995, "must be < anomaly.threshold (0.99), got 0.995"),
    ("anomaly", "debounce_steps", 1001, "must be between 1 and 1000"),
    ("anomaly", "long_window", 9, "must be between 10 and 100000"),
    ("anomaly", "short_window", 2000, "must be < anomaly.long_window (2000), got 2000"),
    ("anomaly", "min_steps", 2001, "must be <= anomaly.long_window (2000), got 2001"),
    ("homeassistant", "discovery_prefix", "ha/+", "wildcard"),
    ("runtime", "num_threads", 65, "must be between 1 and 64"),
    ("runtime", "backend", "onnx", 'must be one of "auto", "ai_edge_litert"'),
    ("runtime", "delegate", "gpu", 'must be one of "edgetpu"'),
    ("runtime", "edgetpu_device", "usb", 'is set but runtime.delegate is not "edgetpu"'),
    ("logging", "level", "TRACE", "must be one of DEBUG, INFO, WARNING, ERROR"),
])
def test_out_of_range(section, key, value, expected):
    prefix = "streams[0]" if section == "streams" else section
    assert expected in config_error(config_with(section, **{key: value}), f"{prefix}.{key}")


def test_clear_threshold_default_is_named_as_the_default():
    message = config_error(config_with("anomaly", threshold=0.8), "anomaly.clear_threshold")
    assert message.endswith("got 0.9 (the default)")


def test_missing_required():
    config_error({"broker": {"host": "h"}}, "streams")
    config_error({**MINIMAL, "streams": []}, "streams")
    message = config_error({**MINIMAL, "streams": {"topic": "a", "model": "m"}}, "streams")
    assert "array of tables ([[streams]])" in message
    assert "required key is missing" in config_error({"streams": [{"model": "m"}]}, "streams[0].topic")
    assert "required key is missing" in config_error({"streams": [{"topic": "a/+"}]}, "streams[0].model")
    assert "must be a table ([broker])" in config_error({**MINIMAL, "broker": "localhost"}, "broker")


@pytest.mark.parametrize("topic, expected", [
    ("sensors/temp+/x", "'+' must be a whole level"),
    ("sensors/#/x", "'#' must be the whole last level"),
    ("sensors/x#", "'#' must be the whole last level"),
    ("sensors/\x00", "NUL"),
    ("sensors/a\nb", "control character"),
    ("", "empty"),
    ("$share//sensors/+", "$share/<group>/<filter>"),
])
def test_bad_topic_filter(topic, expected):
    assert expected in config_error(config_with("streams", topic=topic), "streams[0].topic")


def test_stream_filter_must_not_match_the_daemons_own_output():
    message = config_error(config_with("streams", topic="#"), "streams[0].topic")
    assert "matches the daemon's own output topic" in message
    config_error(config_with("streams", topic="statecast/+"), "streams[0].topic")     # statecast/status


def test_stream_names_are_unique():
    data = copy.deepcopy(MINIMAL)
    data["streams"].append({"topic": "other/+", "model": "elsewhere/default"})
    assert "duplicate stream name" in config_error(data, "streams[1].name")
    data["streams"][1]["name"] = "other"
    assert [s.name for s in parse_config(data, SOURCE, BASE).streams] == ["default", "other"]


def test_derived_stream_name_must_be_usable():
    message = config_error(config_with("streams", model="models/my model"), "streams[0].name")
    assert "derived from the model directory" in message


def test_tls_settings_need_tls():
    assert "broker.tls is false" in config_error(config_with("broker", ca_file="ca.pem"), "broker.ca_file")
    config_error(config_with("broker", tls_server_name="b.example"), "broker.tls_server_name")
    message = config_error(config_with("broker", tls=True, cert_file="c.pem"), "broker.key_file")
    assert "required together with broker.cert_file" in message


def test_unknown_top_level_key_and_odd_key_names_stay_on_one_line():
    message = config_error(config_with("broker", **{"bad\nkey": 1}), 'broker."bad\\nkey"')
    assert "unknown key" in message
    assert "\\n" in config_error(config_with("streams", payload="a\nb"), "streams[0].payload")


# --- passwords -----------------------------------------------------------------------------------

def test_password_and_password_file_are_exclusive(tmp_path):
    (tmp_path / "pw").write_text("x")
    data = config_with("broker", username="u", password="inline", password_file="pw")
    message = config_error(data, "broker.password_file", base_dir=str(tmp_path))
    assert "broker.password" in message and "inline" not in message


def test_password_file_is_read_at_load_time(tmp_path):
    write(tmp_path / "mqtt-password", "s3cret pass\n")
    config_path = write(tmp_path / "config.toml", MINIMAL_TOML.replace(
        'port = 1883', 'port = 1883\nusername = "statecast"\npassword_file = "mqtt-password"'), mode=0o644)
    config = load_config(config_path)
    assert config.broker.password == "s3cret pass"
    assert config.broker.password_file == str(tmp_path / "mqtt-password")
    assert config.warnings == ()                   # the secret is not in the world-readable file


def test_unreadable_or_empty_password_file(tmp_path):
    data = config_with("broker", username="u", password_file="missing")
    assert "cannot read" in config_error(data, "broker.password_file", base_dir=str(tmp_path))
    write(tmp_path / "empty", "\n")
    data = config_with("broker", username="u", password_file="empty")
    assert "is empty" in config_error(data, "broker.password_file", base_dir=str(tmp_path))


def test_password_needs_a_username():
    config_error(config_with("broker", password="pw"), "broker.username")


def test_password_never_appears_in_repr_or_errors():
    config = parse_config(config_with("broker", username="u", password="hunter2-secret"), SOURCE, BASE)
    assert config.broker.password == "hunter2-secret"
    assert "hunter2-secret" not in repr(config) and "hunter2-secret" not in repr(config.broker)
    message = config_error(config_with("broker", username="u", password=123456), "broker.password")
    assert "123456" not in message and "must be a string" in message


def test_world_readable_config_with_password_warns(tmp_path):
    text = MINIMAL_TOML.replace('port = 1883', 'port = 1883\nusername = "u"\npassword = "pw"')
    path = write(tmp_path / "config.toml", text, mode=0o644)
    config = load_config(path)
    [warning] = config.warnings
    assert path in warning and "broker.password" in warning and "0644" in warning and "pw\"" not in warning
    os.chmod(path, 0o640)
    assert load_config(path).warnings == ()
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o640


# --- cluster -------------------------------------------------------------------------------------

@pytest.mark.parametrize("shard, parsed", [("0/1", (0, 1)), ("1/2", (1, 2)), ("9/10", (9, 10))])
def test_shard_parsing(shard, parsed):
    cluster = parse_config(config_with("cluster", shard=shard), SOURCE, BASE).cluster
    assert (cluster.shard_index, cluster.shard_count) == parsed


@pytest.mark.parametrize("shard", ["2/2", "x", "0/0", "1", "-1/2", "1/2/3", " 1/2"])
def test_bad_shard(shard):
    assert 'must be "i/N" with 0 <= i < N' in config_error(config_with("cluster", shard=shard), "cluster.shard")


def test_cluster_shard_must_be_a_string():
    assert "must be a string, got 1" in config_error(config_with("cluster", shard=1), "cluster.shard")


# --- the file itself -----------------------------------------------------------------------------

def test_file_errors_are_one_line(tmp_path):
    with pytest.raises(ConfigError, match="cannot read") as caught:
        load_config(str(tmp_path / "absent.toml"))
    assert len(str(caught.value).splitlines()) == 1
    bad = write(tmp_path / "bad.toml", "[broker]\nport = \n")
    with pytest.raises(ConfigError, match=r"invalid TOML: .*line 2") as caught:
        load_config(bad)
    assert str(caught.value).startswith(bad + ": ") and len(str(caught.value).splitlines()) == 1


def test_anomaly_signals_and_alert_limits_are_config_keys():
    config = parse_config(config_with("anomaly", signals=["range", "stuck"], hold_breakers=["range"],
                                      cooldown_seconds=600.0, max_alerts_per_hour=2.0), SOURCE, BASE)
    assert config.anomaly.signals == ("range", "stuck") and config.anomaly.hold_breakers == ("range",)
    assert (config.anomaly.cooldown_seconds, config.anomaly.max_alerts_per_hour) == (600.0, 2.0)
    assert "unknown signal(s) [\"nope\"]" in config_error(config_with("anomaly", signals=["nope"]), "anomaly.signals")
    message = config_error(config_with("anomaly", signals=["range"], hold_breakers=["stuck"]), "anomaly.hold_breakers")
    assert "must name signals listed in anomaly.signals" in message

"""The daemon's configuration: frozen dataclasses (whose defaults are the config defaults) read from TOML.

Unknown keys, wrong types and out-of-range values are one-line errors naming the file and dotted key:
`/etc/statecast/config.toml: batching.max_batch: must be between 1 and 4096, got 0`. Relative paths
resolve against the config file's directory. Nothing here logs; advice goes to Config.warnings.
"""
from __future__ import annotations

import os
import socket
import stat
import sys
from dataclasses import dataclass, field, fields as dataclass_fields, replace

if sys.version_info >= (3, 11):
    import tomllib
else:                                         # pragma: no cover - Python 3.10
    import tomli as tomllib

from statecast.daemon.anomaly.settings import AnomalySettings
from statecast.daemon.anomaly.settings import RANGES as ANOMALY_RANGES
from statecast.daemon.model.backends import AUTO_ORDER
from statecast.daemon.model.backends.kernels import KERNEL_CHOICES
from statecast.daemon.mqtt.payload import FORMATS

from .config_checks import (check_streams, client_id_problem, credentials, edgetpu_device_problem, filter_problem,
                            inner_filter, log_level_problem, names_problem, nonempty_problem, parse_shard,
                            shard_problem, stream_name_problem, template_problem, tls_files, topic_name_problem)
from .config_table import ConfigError, Table, defaults_of, render


@dataclass(frozen=True)
class BrokerConfig:
    host: str = "127.0.0.1"
    port: int = 1883
    client_id: str = field(default_factory=lambda: ("statecast-" + socket.gethostname())[:128])
    protocol: str = "5"                           # "5" or "3.1.1"
    keepalive_seconds: int = 30
    session_expiry_seconds: int = 86400
    clean_start: bool = False
    username: str | None = None
    password: str | None = field(default=None, repr=False)   # from password or password_file
    password_file: str | None = None
    tls: bool = False
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    tls_server_name: str | None = None
    reconnect_min_seconds: float = 1.0
    reconnect_max_seconds: float = 60.0
    max_queued_messages: int = 10000              # paho's outgoing bound while disconnected
    max_inflight_messages: int = 20


@dataclass(frozen=True)
class StreamConfig:
    topic: str                                    # MQTT filter, may be "$share/<group>/<filter>"
    model: str                                    # artifact directory (absolute)
    name: str                                     # TOML default: the model directory's basename
    stream_id_wildcard: int = 0                   # which wildcard of the filter is the stream id
    payload: str = "auto"                         # one of payload.FORMATS
    fields: tuple[str, ...] = ("value",)
    qos: int = 1
    horizon: int = 0                              # 0: the model's own horizon
    window_model: str | None = None               # optional window-model artifact directory
    window_stride: int = 1
    unit: str | None = None                       # the values' unit, e.g. "°C" (Home Assistant's sensor)


@dataclass(frozen=True)
class OutputConfig:
    forecast_topic: str = "statecast/forecast/{stream}"
    alert_topic: str = "statecast/alert/{stream}"
    window_topic: str = "statecast/window/{stream}"
    status_topic: str = "statecast/status"
    stats_topic: str = "statecast/stats"
    stats_interval_seconds: float = 30.0          # 0: no stats
    forecast_qos: int = 0
    alert_qos: int = 1
    precision: int = 0                            # significant digits of published numbers; 0: full


@dataclass(frozen=True)
class BatchingConfig:
    max_batch: int = 256
    max_wait_ms: float = 0.0     # 0: batches form from what queues while a round runs
    queue_size: int = 100000
    max_payload_bytes: int = 65536


@dataclass(frozen=True)
class StateConfig:
    directory: str = "state"                      # resolved against the config file's directory
    checkpoint_interval_seconds: float = 30.0
    max_streams: int = 10000
    idle_eviction_seconds: float = 86400.0        # 0: never evict
    max_gap_seconds: float = 0.0                  # 0: no gap policy
    gap_policy: str = "reset"                     # "reset" | "continue"
    journal: bool = True                          # write-ahead journal + acknowledge inputs after it
    journal_fsync: bool = True                    # fsync appends that acks wait for (power loss, not just kill -9)


@dataclass(frozen=True)
class AnomalyConfig(AnomalySettings):
    """[anomaly]: the scorer's settings (fields, defaults and ranges declared once, in
    daemon/anomaly/settings.py) plus the daemon's switch."""
    enabled: bool = True
    # Not a TOML key: the keys the [anomaly] table sets. Exactly these override a model's tuned
    # anomaly settings (service/stream_pipeline.anomaly_settings), even where the value is the built-in default.
    keys_set: frozenset[str] = frozenset()


@dataclass(frozen=True)
class HomeAssistantConfig:
    enabled: bool = False
    discovery_prefix: str = "homeassistant"


@dataclass(frozen=True)
class RuntimeConfig:
    backend: str = "auto"                         # "auto" or one of backends.AUTO_ORDER
    num_threads: int = 1
    delegate: str | None = None                   # None | "edgetpu"
    edgetpu_device: str | None = None             # "usb", "pci", "usb:0", ":0"
    kernels: str = "auto"                         # backends.kernels.KERNEL_CHOICES (int8: reference by default)


@dataclass(frozen=True)
class ClusterConfig:
    shard_index: int = 0                          # TOML: shard = "i/N"
    shard_count: int = 1


@dataclass(frozen=True)
class LoggingConfig:
    level: str = "INFO"


@dataclass(frozen=True)
class Config:
    broker: BrokerConfig
    streams: tuple[StreamConfig, ...]
    output: OutputConfig
    batching: BatchingConfig
    state: StateConfig
    anomaly: AnomalyConfig
    homeassistant: HomeAssistantConfig
    runtime: RuntimeConfig
    cluster: ClusterConfig
    logging: LoggingConfig
    source: str
    warnings: tuple[str, ...] = ()


def _broker(t: Table) -> BrokerConfig:
    username, password, password_file = credentials(t)
    tls, ca_file, cert_file, key_file = tls_files(t)
    reconnect_min = t.get("reconnect_min_seconds", float, lo=0, lo_open=True)
    reconnect_max = t.get("reconnect_max_seconds", float, lo=0, lo_open=True)
    if reconnect_max < reconnect_min:
        raise t.error("reconnect_max_seconds", f"must be >= {t.key('reconnect_min_seconds')} "
                      f"({render(reconnect_min)}), got {render(reconnect_max)}")
    return BrokerConfig(
        host=t.get("host", str, check=nonempty_problem), port=t.get("port", int, lo=1, hi=65535),
        client_id=t.get("client_id", str, check=client_id_problem),
        protocol=t.get("protocol", str, choices=("5", "3.1.1")),
        keepalive_seconds=t.get("keepalive_seconds", int, lo=5, hi=3600),
        session_expiry_seconds=t.get("session_expiry_seconds", int, lo=0, hi=4294967295),
        clean_start=t.get("clean_start", bool), username=username, password=password,
        password_file=password_file, tls=tls, ca_file=ca_file, cert_file=cert_file,
        key_file=key_file, tls_server_name=t.get("tls_server_name", str, check=nonempty_problem),
        reconnect_min_seconds=reconnect_min, reconnect_max_seconds=reconnect_max,
        max_queued_messages=t.get("max_queued_messages", int, lo=1, hi=10_000_000),
        max_inflight_messages=t.get("max_inflight_messages", int, lo=1, hi=65535))


def _stream(t: Table) -> StreamConfig:
    topic = t.get("topic", str, check=filter_problem)
    model = t.path("model")
    name = t.get("name", str, default=None, check=stream_name_problem)
    if name is None and stream_name_problem(os.path.basename(model)):
        raise t.error("name", f"{stream_name_problem(os.path.basename(model))} (derived from the model directory)")
    name = name or os.path.basename(model)
    wildcards = sum(level in ("+", "#") for level in inner_filter(topic).split("/"))
    index = t.get("stream_id_wildcard", int, lo=0)
    if index >= wildcards and (wildcards or t.has("stream_id_wildcard")):
        raise t.error("stream_id_wildcard", f"the filter {render(topic)} has {wildcards} wildcard level(s), "
                      f"numbered from 0, got {index}")
    return StreamConfig(
        topic=topic, model=model, name=name, stream_id_wildcard=index,
        payload=t.get("payload", str, choices=FORMATS), fields=t.get("fields", tuple, check=names_problem),
        qos=t.get("qos", int, lo=0, hi=2), horizon=t.get("horizon", int, lo=0, hi=1000),
        window_model=t.path("window_model"), window_stride=t.get("window_stride", int, lo=1),
        unit=t.get("unit", str, check=nonempty_problem))


def _output(t: Table) -> OutputConfig:
    return OutputConfig(
        forecast_topic=t.get("forecast_topic", str, check=template_problem),
        alert_topic=t.get("alert_topic", str, check=template_problem),
        window_topic=t.get("window_topic", str, check=template_problem),
        status_topic=t.get("status_topic", str, check=topic_name_problem),
        stats_topic=t.get("stats_topic", str, check=topic_name_problem),
        stats_interval_seconds=t.get("stats_interval_seconds", float, lo=1, zero_off=True),
        forecast_qos=t.get("forecast_qos", int, lo=0, hi=2), alert_qos=t.get("alert_qos", int, lo=0, hi=2),
        precision=t.get("precision", int, lo=0, hi=17))


def _batching(t: Table) -> BatchingConfig:
    return BatchingConfig(max_batch=t.get("max_batch", int, lo=1, hi=4096),
                          max_wait_ms=t.get("max_wait_ms", float, lo=0, hi=1000),
                          queue_size=t.get("queue_size", int, lo=1, hi=10_000_000),
                          max_payload_bytes=t.get("max_payload_bytes", int, lo=16, hi=16_777_216))


def _state(t: Table) -> StateConfig:
    return StateConfig(directory=t.path("directory"),
                       checkpoint_interval_seconds=t.get("checkpoint_interval_seconds", float, lo=0.1, hi=86400),
                       max_streams=t.get("max_streams", int, lo=1, hi=10_000_000),
                       idle_eviction_seconds=t.get("idle_eviction_seconds", float, lo=0),
                       max_gap_seconds=t.get("max_gap_seconds", float, lo=0),
                       gap_policy=t.get("gap_policy", str, choices=("reset", "continue")),
                       journal=t.get("journal", bool), journal_fsync=t.get("journal_fsync", bool))


_ANOMALY_KEYS = {"enabled": AnomalyConfig.enabled, **defaults_of(AnomalySettings)}


def _bounds(name: str) -> dict:
    """The anomaly settings' own range for a key, as Table.get's arguments."""
    lo, hi, lo_open, hi_open = ANOMALY_RANGES[name]
    return {"lo": lo, "hi": hi, "lo_open": lo_open, "hi_open": hi_open}


def _anomaly(t: Table) -> AnomalyConfig:
    threshold = t.get("threshold", float, **_bounds("threshold"))
    clear = t.get("clear_threshold", float, **_bounds("clear_threshold"))
    if clear >= threshold:
        raise t.error("clear_threshold", f"must be < {t.key('threshold')} ({render(threshold)}), got {render(clear)}"
                      + ("" if t.has("clear_threshold") else " (the default)"))
    long_window = t.get("long_window", int, **_bounds("long_window"))
    short_window = t.get("short_window", int, **_bounds("short_window"))
    min_steps = t.get("min_steps", int, **_bounds("min_steps"))
    for name, value, ok, relation in (("short_window", short_window, short_window < long_window, "<"),
                                      ("min_steps", min_steps, min_steps <= long_window, "<=")):
        if not ok:
            raise t.error(name, f"must be {relation} {t.key('long_window')} ({long_window}), got {value}")
    signals = t.get("signals", tuple, check=_signals_problem)
    breakers = t.get("hold_breakers", tuple, check=_signals_problem)
    if any(name not in signals for name in breakers):
        raise t.error("hold_breakers", f"must name signals listed in {t.key('signals')} ({render(list(signals))}), "
                      f"got {render(list(breakers))}")
    return AnomalyConfig(enabled=t.get("enabled", bool), threshold=threshold, clear_threshold=clear,
                         debounce_steps=t.get("debounce_steps", int, **_bounds("debounce_steps")),
                         refractory_steps=t.get("refractory_steps", int, **_bounds("refractory_steps")),
                         long_window=long_window, short_window=short_window, min_steps=min_steps,
                         scale_window=t.get("scale_window", int, **_bounds("scale_window")),
                         spatial_tolerance=t.get("spatial_tolerance", float, **_bounds("spatial_tolerance")),
                         daily_profile=t.get("daily_profile", bool), profile_either=t.get("profile_either", bool),
                         signals=signals, hold_breakers=breakers,
                         range_warmup_steps=t.get("range_warmup_steps", int, **_bounds("range_warmup_steps")),
                         range_noise_scales=t.get("range_noise_scales", float, **_bounds("range_noise_scales")),
                         novelty_noise_scales=t.get("novelty_noise_scales", float, **_bounds("novelty_noise_scales")),
                         stuck_min_steps=t.get("stuck_min_steps", int, **_bounds("stuck_min_steps")),
                         stuck_margin=t.get("stuck_margin", float, **_bounds("stuck_margin")),
                         stuck_rare_decades=t.get("stuck_rare_decades", float, **_bounds("stuck_rare_decades")),
                         level_window=t.get("level_window", int, **_bounds("level_window")),
                         drift_window=t.get("drift_window", int, **_bounds("drift_window")),
                         drift_records=t.get("drift_records", float, **_bounds("drift_records")),
                         drift_rate_ratio=t.get("drift_rate_ratio", float, **_bounds("drift_rate_ratio")),
                         drift_long_window=t.get("drift_long_window", int, **_bounds("drift_long_window")),
                         cooldown_seconds=t.get("cooldown_seconds", float, **_bounds("cooldown_seconds")),
                         max_alerts_per_hour=t.get("max_alerts_per_hour", float, **_bounds("max_alerts_per_hour")),
                         keys_set=frozenset(t.data))


def _signals_problem(names: tuple) -> str | None:
    from statecast.daemon.anomaly.signals import SIGNALS
    unknown = [name for name in names if not isinstance(name, str) or name not in SIGNALS]
    if unknown:
        return f"unknown signal(s) {render(unknown)}; known: {', '.join(SIGNALS)}"
    return None if len(set(names)) == len(names) else "lists a signal twice"


def _homeassistant(t: Table) -> HomeAssistantConfig:
    return HomeAssistantConfig(enabled=t.get("enabled", bool),
                               discovery_prefix=t.get("discovery_prefix", str, check=topic_name_problem))


def _runtime(t: Table) -> RuntimeConfig:
    delegate = t.get("delegate", str, choices=("edgetpu",))
    device = t.get("edgetpu_device", str, check=edgetpu_device_problem)
    if device is not None and delegate != "edgetpu":
        raise t.error("edgetpu_device", f'is set but {t.key("delegate")} is not "edgetpu"')
    return RuntimeConfig(backend=t.get("backend", str, choices=("auto",) + AUTO_ORDER), delegate=delegate,
                         num_threads=t.get("num_threads", int, lo=1, hi=64), edgetpu_device=device,
                         kernels=t.get("kernels", str, choices=KERNEL_CHOICES))


def _cluster(t: Table) -> ClusterConfig:
    index, count = parse_shard(t.get("shard", str, check=shard_problem))
    return ClusterConfig(shard_index=index, shard_count=count)


def _logging(t: Table) -> LoggingConfig:
    return LoggingConfig(level=t.get("level", str, check=log_level_problem).upper())


def section_keys() -> dict[str, dict]:
    """Every TOML table the config reads -> its keys and their defaults (REQUIRED where none)."""
    return {"broker": defaults_of(BrokerConfig), "streams": defaults_of(StreamConfig),
            "output": defaults_of(OutputConfig), "batching": defaults_of(BatchingConfig),
            "state": defaults_of(StateConfig), "anomaly": _ANOMALY_KEYS,
            "homeassistant": defaults_of(HomeAssistantConfig), "runtime": defaults_of(RuntimeConfig),
            "cluster": {"shard": "0/1"}, "logging": defaults_of(LoggingConfig)}


def parse_config(data: dict, source: str, base_dir: str) -> Config:
    """Validate a decoded TOML document; relative paths resolve against base_dir."""
    sections = [f.name for f in dataclass_fields(Config) if f.name not in ("source", "warnings")]
    root = Table(data, "", source, os.path.abspath(base_dir), dict.fromkeys(sections))
    keys = section_keys()
    stream_tables = root.tables("streams", keys["streams"])
    config = Config(
        broker=_broker(root.table("broker", keys["broker"])),
        streams=tuple(_stream(t) for t in stream_tables),
        output=_output(root.table("output", keys["output"])),
        batching=_batching(root.table("batching", keys["batching"])),
        state=_state(root.table("state", keys["state"])),
        anomaly=_anomaly(root.table("anomaly", keys["anomaly"])),
        homeassistant=_homeassistant(root.table("homeassistant", keys["homeassistant"])),
        runtime=_runtime(root.table("runtime", keys["runtime"])),
        cluster=_cluster(root.table("cluster", keys["cluster"])),
        logging=_logging(root.table("logging", keys["logging"])),
        source=source)
    own_topics = [value for name, value in vars(config.output).items() if name.endswith("_topic")]
    if config.homeassistant.enabled:
        own_topics.append(f"{config.homeassistant.discovery_prefix}/sensor/{{stream}}/config")
    check_streams(stream_tables, config.streams, own_topics)
    return config


def load_config(path: str) -> Config:
    """Read, parse and validate one TOML config file; raises ConfigError with a one-line reason."""
    try:
        with open(path, "rb") as f:
            mode = os.fstat(f.fileno()).st_mode
            data = tomllib.load(f)
    except OSError as error:
        raise ConfigError(f"{path}: cannot read: {error.strerror or error}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path}: invalid TOML: {' '.join(str(error).split())}") from None
    config = parse_config(data, path, os.path.dirname(os.path.abspath(path)))
    if config.broker.password is not None and config.broker.password_file is None and mode & stat.S_IROTH:
        config = replace(config, warnings=config.warnings + (
            f"{path}: broker.password is stored in a world-readable file (mode {stat.S_IMODE(mode):04o}); "
            "move it to broker.password_file (mode 0600) or make the config unreadable to others",))
    return config

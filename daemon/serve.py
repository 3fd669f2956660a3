"""`statecast serve`: MQTT in, batched step inference, forecasts and alerts out.

Threads: paho's network thread decodes and enqueues (routing.Router); this module's engine
loop drains the queue in micro-batches, steps the engines, publishes, checkpoints and keeps
systemd informed. Signals only set flags; the loop acts on them.
"""
from __future__ import annotations

import json
import logging
import os
import queue
import signal
import sys
import time

from .checkpoint import restore as restore_checkpoint
from .checkpoint import save as save_checkpoint
from .config import Config, ConfigError, load_config
from .engine import Engine, EngineSettings
from .mqtt_link import MqttLink
from .outputs import alert_message, forecast_message
from .routing import Route, Router
from .runtime_setup import anomaly_factory_for, open_model
from .sdnotify import Notifier, WatchdogPacer
from .topics import render_topic

log = logging.getLogger("statecast.serve")


class Pipeline:
    """One [[streams]] entry: its route, model, engine and checkpoint file."""

    def __init__(self, entry, config: Config):
        self.entry = entry
        self.route = Route(entry.name, entry.topic, entry.stream_id_wildcard, entry.payload, tuple(entry.fields))
        self.model = open_model(entry.model, config.runtime.backend, config.runtime.num_threads,
                                config.runtime.delegate, config.runtime.edgetpu_device, config.batching.max_batch)
        if len(entry.fields) != len(self.model.manifest.value_features):
            raise ConfigError(f"{config.source}: streams '{entry.name}'.fields: {len(entry.fields)} fields but model "
                              f"{self.model.manifest.name} takes {len(self.model.manifest.value_features)} values "
                              f"({', '.join(self.model.manifest.value_features)})")
        s = config.state
        settings = EngineSettings(max_streams=s.max_streams, idle_eviction_seconds=s.idle_eviction_seconds,
                                  max_gap_seconds=s.max_gap_seconds, gap_policy=s.gap_policy, horizon=entry.horizon)
        factory = anomaly_factory_for(self.model, _anomaly_settings(config)) if config.anomaly.enabled else None
        self.engine = Engine(self.model, settings, factory)
        self.checkpoint_path = os.path.join(s.directory, f"{entry.name}.ckpt")

    def restore(self) -> None:
        restore_fn = None
        if self.engine.anomaly_factory is not None:
            from .anomaly import StreamAnomaly
            settings = self.engine.anomaly_factory().settings
            restore_fn = lambda data: StreamAnomaly.from_state(settings, data)
        count, source = restore_checkpoint(self.checkpoint_path, self.engine.table, self.model.manifest.sha256, restore_fn)
        log.info("%s: restored %d streams (%s)", self.entry.name, count, source)

    def checkpoint(self) -> None:
        save_checkpoint(self.checkpoint_path, self.engine.table, self.model.manifest.sha256)


def _anomaly_settings(config: Config):
    from .anomaly import AnomalySettings
    a = config.anomaly
    return AnomalySettings(threshold=a.threshold, clear_threshold=a.clear_threshold, debounce_steps=a.debounce_steps,
                           refractory_steps=a.refractory_steps, long_window=a.long_window,
                           short_window=a.short_window, min_steps=a.min_steps)


class Daemon:
    def __init__(self, config: Config):
        self.config = config
        self.pipelines = {entry.name: Pipeline(entry, config) for entry in config.streams}
        self.router = Router([p.route for p in self.pipelines.values()], config.batching.max_payload_bytes,
                             config.cluster.shard_index, config.cluster.shard_count)
        self.inbox: queue.Queue = queue.Queue(maxsize=config.batching.queue_size)
        self.dropped_queue_full = 0
        self.notifier = Notifier()
        self.pacer = WatchdogPacer(self.notifier)
        self.stop_requested = False
        self.reload_requested = False
        self.checkpoint_errors = 0
        self.last_error: str | None = None
        self.link = MqttLink(config.broker, config.output.status_topic,
                             [(e.topic, e.qos) for e in config.streams], self._on_message)

    # --- network thread -----------------------------------------------------------------
    def _on_message(self, message) -> None:
        routed = self.router.route(message.topic, message.payload)
        if routed is None:
            return
        try:
            self.inbox.put_nowait(routed)
        except queue.Full:
            self.dropped_queue_full += 1

    # --- engine loop --------------------------------------------------------------------
    def run(self) -> int:
        os.makedirs(self.config.state.directory, mode=0o700, exist_ok=True)
        for pipeline in self.pipelines.values():
            pipeline.restore()
        self.link.start()
        started = time.monotonic()
        while not self.link.subscribed.wait(timeout=0.5):
            self.pacer.tick()
            if self.stop_requested:
                return self._shutdown()
        log.info("serving: %s", ", ".join(f"{p.entry.topic} -> {p.model.manifest.name}" for p in self.pipelines.values()))
        self.notifier.ready(f"serving {len(self.pipelines)} stream filters, ready in {time.monotonic() - started:.1f}s")
        next_checkpoint = time.monotonic() + self.config.state.checkpoint_interval_seconds
        next_stats = time.monotonic() + (self.config.output.stats_interval_seconds or float("inf"))
        while not self.stop_requested:
            batch = self._drain()
            if batch:
                self._process(batch)
            now = time.monotonic()
            if now >= next_checkpoint:
                self._checkpoint_all()
                next_checkpoint = now + self.config.state.checkpoint_interval_seconds
            if now >= next_stats:
                self._publish_stats()
                next_stats = now + self.config.output.stats_interval_seconds
            self.pacer.tick()
            if self.reload_requested:
                self.reload_requested = False
                self._reload()
        return self._shutdown()

    def _drain(self) -> list:
        """Block briefly for the first message, then take more for up to max_wait_ms."""
        try:
            items = [self.inbox.get(timeout=0.2)]
        except queue.Empty:
            return []
        deadline = time.monotonic() + self.config.batching.max_wait_ms / 1000.0
        while len(items) < self.config.batching.max_batch:
            try:
                items.append(self.inbox.get_nowait())
            except queue.Empty:
                if time.monotonic() >= deadline:
                    break
                time.sleep(0.0002)
        return items

    def _process(self, batch: list) -> None:
        by_route: dict[str, list] = {}
        for route, message in batch:
            by_route.setdefault(route.name, []).append(message)
        out = self.config.output
        for name, messages in by_route.items():
            pipeline = self.pipelines[name]
            manifest = pipeline.model.manifest
            for result in pipeline.engine.process(messages):
                self.link.publish(render_topic(out.forecast_topic, result.stream_id),
                                  forecast_message(result, manifest.name, manifest.targets), qos=out.forecast_qos)
                if result.event is not None:
                    self.link.publish(render_topic(out.alert_topic, result.stream_id),
                                      alert_message(result, manifest.name), qos=out.alert_qos)

    def _checkpoint_all(self) -> None:
        for pipeline in self.pipelines.values():
            try:
                pipeline.checkpoint()
            except OSError as error:              # disk full etc.: loud, but keep serving
                self.checkpoint_errors += 1
                self.last_error = f"checkpoint failed: {error.strerror or error}"
                log.error("checkpoint %s failed: %s (serving continues)", pipeline.checkpoint_path, error)

    def stats(self) -> dict:
        engines = {name: p.engine.counters for name, p in self.pipelines.items()}
        rejected = dict(self.router.rejected)
        for counters in engines.values():
            for reason, count in counters.rejected.items():
                rejected[reason] = rejected.get(reason, 0) + count
        if self.dropped_queue_full:
            rejected["queue_full"] = self.dropped_queue_full
        batches = sum(c.batches for c in engines.values())
        return {
            "messages_in": sum(c.messages_in for c in engines.values()),
            "forecasts_out": sum(c.forecasts_out for c in engines.values()),
            "rejected": rejected, "other_shard": self.router.other_shard,
            "streams_live": sum(len(p.engine.table) for p in self.pipelines.values()),
            "evicted": sum(p.engine.table.evicted for p in self.pipelines.values()),
            "gap_resets": sum(c.gap_resets for c in engines.values()),
            "batches": batches,
            "mean_batch_size": (sum(c.forecasts_out for c in engines.values()) / batches) if batches else 0.0,
            "mean_step_ms": (1000 * sum(c.step_seconds_total for c in engines.values()) / batches) if batches else 0.0,
            "checkpoint_errors": self.checkpoint_errors, "queue_depth": self.inbox.qsize(),
            "connected": self.link.connected.is_set(), "last_error": self.last_error or self.link.last_error,
        }

    def _publish_stats(self) -> None:
        stats = self.stats()
        log.info("stats %s", json.dumps(stats, separators=(",", ":")))
        self.link.publish(self.config.output.stats_topic, json.dumps(stats, separators=(",", ":")), qos=0)
        self.notifier.status(f"{stats['streams_live']} streams, {stats['messages_in']} msgs in, "
                             f"last error: {stats['last_error'] or 'none'}")

    def _reload(self) -> None:
        from .reload import reload_daemon
        reload_daemon(self)

    def _shutdown(self) -> int:
        self.notifier.stopping()
        # Whatever is already queued is processed before the final checkpoint, so it is not lost.
        while not self.inbox.empty():
            self._process(self._drain())
        self._checkpoint_all()
        self._publish_stats()
        self.link.stop()
        log.info("stopped cleanly")
        return 0


def serve(config_path: str, check_only: bool = False) -> int:
    config = load_config(config_path)
    logging.getLogger().setLevel(config.logging.level)
    for warning in config.warnings:
        log.warning("%s", warning)
    daemon = Daemon(config)
    if check_only:
        print(f"{config_path}: OK ({len(daemon.pipelines)} stream filter(s), models "
              + ", ".join(p.model.manifest.name for p in daemon.pipelines.values()) + ")")
        return 0

    def request_stop(_signum, _frame):
        daemon.stop_requested = True

    def request_reload(_signum, _frame):
        daemon.reload_requested = True

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGHUP, request_reload)
    return daemon.run()

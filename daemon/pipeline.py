"""One [[streams]] entry of the daemon: its route, model, engine and checkpoint file."""
from __future__ import annotations

import logging
import os

from .checkpoint import save as save_checkpoint
from .config import Config, ConfigError
from .engine import Engine, EngineSettings
from .routing import Route
from .runtime_setup import anomaly_factory_for, open_model
from .takeover import checkpoint_name, restore_shard

log = logging.getLogger("statecast.serve")


class Pipeline:
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
        factory = anomaly_factory_for(self.model, anomaly_settings(config)) if config.anomaly.enabled else None
        self.engine = Engine(self.model, settings, factory)
        self.state_directory = s.directory
        self.shard = (config.cluster.shard_index, config.cluster.shard_count)
        self.checkpoint_path = os.path.join(s.directory, checkpoint_name(entry.name, *self.shard))

    def restore(self) -> int:
        """Add this shard's streams from every checkpoint of this entry (streams already live stay)."""
        restore_fn = None
        if self.engine.anomaly_factory is not None:
            from .anomaly import StreamAnomaly
            settings = self.engine.anomaly_factory().settings
            restore_fn = lambda data: StreamAnomaly.from_state(settings, data)    # noqa: E731
        count, sources = restore_shard(self.engine.table, self.state_directory, self.entry.name,
                                       self.model.manifest.sha256, *self.shard, anomaly_restore=restore_fn)
        log.info("%s: restored %d streams of shard %d/%d (%s)", self.entry.name, count, *self.shard,
                 ", ".join(os.path.basename(s) for s in sources) or "no checkpoint")
        return count

    def checkpoint(self) -> None:
        save_checkpoint(self.checkpoint_path, self.engine.table, self.model.manifest.sha256)


def anomaly_settings(config: Config):
    from .anomaly import AnomalySettings
    a = config.anomaly
    return AnomalySettings(threshold=a.threshold, clear_threshold=a.clear_threshold, debounce_steps=a.debounce_steps,
                           refractory_steps=a.refractory_steps, long_window=a.long_window,
                           short_window=a.short_window, min_steps=a.min_steps)

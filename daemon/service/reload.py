"""SIGHUP: reload the config and swap models without dropping the MQTT connection.

Streams keep their state when the new model's state shapes match the old one's, and are reset
(counted) when they do not. A broken config or model keeps the running one and says why (log,
STATUS=, last_error in the stats). A changed `[cluster] shard` first checkpoints under the old
shard's file name (so the streams given away are on disk for their new owner), then drops the
streams that left and restores the ones that arrived from the checkpoints in the state directory.
Broker settings and subscriptions are applied on restart only.
"""
from __future__ import annotations

import logging

from statecast.daemon.config import load_config
from statecast.daemon.state.takeover import drop_other_shards
from .stream_pipeline import Pipeline

log = logging.getLogger("statecast.reload")


def reload_daemon(daemon) -> bool:
    daemon.notifier.reloading()
    old_config = daemon.config
    try:
        config = load_config(old_config.source)
        for warning in config.warnings:
            log.warning("%s", warning)
        pipelines = {entry.name: Pipeline(entry, config) for entry in config.streams}
    except Exception as error:  # noqa: BLE001 - any failure keeps the running config
        reason = " ".join(str(error).split()) or type(error).__name__
        daemon.reload_failures += 1
        daemon.last_error = f"reload failed, kept running config: {reason}"
        log.error("reload failed, keeping the running config and models: %s", reason)
        daemon.notifier.ready(f"reload failed, still serving the previous config: {reason}")
        return False
    if (config.broker, [(e.topic, e.qos) for e in config.streams]) != \
            (old_config.broker, [(e.topic, e.qos) for e in old_config.streams]):
        log.warning("reload: broker settings and subscriptions are applied on restart only")
    shard_changed = config.cluster != old_config.cluster
    if shard_changed:
        daemon._checkpoint_all()                 # old file names: the streams we give away stay on disk
    for name, new in pipelines.items():
        old = daemon.pipelines.get(name)
        if old is None:
            new.restore()
            continue
        # the journal file is the entry's: the new pipeline appends where the old one did
        new.journal, new.recovered = old.journal, old.recovered
        if old.model.manifest.state_signature == new.model.manifest.state_signature:
            new.engine.keep_streams(old.engine.table)      # same shapes: streams keep their state
        else:
            count = len(old.engine.table)
            daemon.reload_resets += count
            new.engine.table.resets += count
            log.warning("reload: %s state shapes changed (%s -> %s), %d streams start fresh", name,
                        old.model.manifest.state_signature, new.model.manifest.state_signature, count)
        new.engine.counters = old.engine.counters
        if shard_changed:
            dropped = drop_other_shards(new.engine.table, config.cluster.shard_index, config.cluster.shard_count)
            log.info("reload: %s: %d streams moved to other shards", name, dropped)
            new.restore()
    daemon.pipelines = pipelines
    daemon.config = config
    daemon.router.routes = [p.route for p in pipelines.values()]
    daemon.router.shard_index, daemon.router.shard_count = config.cluster.shard_index, config.cluster.shard_count
    daemon.reloads += 1
    summary = ", ".join(f"{p.entry.name}: {p.model.manifest.name}" for p in pipelines.values())
    log.info("reloaded %s (shard %d/%d): %s", config.source, config.cluster.shard_index,
             config.cluster.shard_count, summary)
    daemon.notifier.ready(f"reloaded: {summary}")
    return True

"""SIGHUP: reload the config and swap models without dropping the MQTT connection.

Streams keep their state when the new model's state shapes match the old one's, and are reset
(counted) when they do not. A broken config or model keeps the running one and says why.
"""
from __future__ import annotations

import logging

from .config import load_config

log = logging.getLogger("statecast.reload")


def reload_daemon(daemon) -> bool:
    from .serve import Pipeline        # late import: serve imports this module's caller

    daemon.notifier.reloading()
    try:
        config = load_config(daemon.config.source)
        if (config.broker, [(e.topic, e.qos) for e in config.streams]) != \
                (daemon.config.broker, [(e.topic, e.qos) for e in daemon.config.streams]):
            log.warning("reload: broker settings and subscriptions are applied on restart only")
        pipelines = {entry.name: Pipeline(entry, config) for entry in config.streams}
    except Exception as error:  # noqa: BLE001 - any failure keeps the running config
        daemon.last_error = f"reload failed, kept running config: {error}"
        log.error("reload failed, keeping the running config and models: %s", error)
        daemon.notifier.ready("reload failed; still serving the previous config")
        return False
    for name, new in pipelines.items():
        old = daemon.pipelines.get(name)
        if old is None:
            continue
        if old.model.manifest.state_signature == new.model.manifest.state_signature:
            new.engine.table = old.engine.table            # same shapes: streams keep their state
        else:
            count = len(old.engine.table)
            new.engine.table.resets += count
            log.warning("reload: %s state shapes changed, %d streams start fresh", name, count)
        new.engine.counters = old.engine.counters
    daemon.pipelines = pipelines
    daemon.config = config
    daemon.router.routes = [p.route for p in pipelines.values()]
    log.info("reloaded %s: %s", config.source, ", ".join(p.model.manifest.name for p in pipelines.values()))
    daemon.notifier.ready("reloaded")
    return True

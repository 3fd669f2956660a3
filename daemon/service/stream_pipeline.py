"""One [[streams]] entry of the daemon: its route, model, engine and checkpoint file."""
from __future__ import annotations

import dataclasses
import logging
import os

from statecast.daemon.config import Config, ConfigError, StateConfig
from statecast.daemon.engine.gaps import learned_interval
from statecast.daemon.engine.step_engine import Engine, EngineSettings
from statecast.daemon.engine.window_engine import WindowEngine, window_message
from statecast.daemon.messages import Message
from statecast.daemon.model.window_model import open_window_model
from statecast.daemon.mqtt.outputs import alert_message, forecast_message
from statecast.daemon.mqtt.routing import Route
from statecast.daemon.mqtt.topics import render_topic
from statecast.daemon.state.checkpoint import restore as restore_checkpoint
from statecast.daemon.state.checkpoint import snapshot
from statecast.daemon.state.journal import Journal, read_journal
from statecast.daemon.state.takeover import checkpoint_name, owned, restore_shard
from .runtime_setup import anomaly_factory_for, manifest_anomaly_settings, open_model

log = logging.getLogger("statecast.serve")


class Pipeline:
    def __init__(self, entry, config: Config):
        self.entry = entry
        self.route = Route(entry.name, entry.topic, entry.stream_id_wildcard, entry.payload, tuple(entry.fields))
        self.model = open_model(entry.model, config.runtime.backend, config.runtime.num_threads,
                                config.runtime.delegate, config.runtime.edgetpu_device, config.batching.max_batch,
                                kernels=config.runtime.kernels)
        if len(entry.fields) != len(self.model.manifest.value_features):
            raise ConfigError(f"{config.source}: streams '{entry.name}'.fields: {len(entry.fields)} fields but model "
                              f"{self.model.manifest.name} takes {len(self.model.manifest.value_features)} values "
                              f"({', '.join(self.model.manifest.value_features)})")
        s = config.state
        settings = engine_settings(s, entry.horizon)
        factory = anomaly_factory_for(self.model, anomaly_settings(config, self.model)) if config.anomaly.enabled else None
        self.engine = Engine(self.model, settings, factory)
        self.state_directory = s.directory
        self.shard = (config.cluster.shard_index, config.cluster.shard_count)
        self.checkpoint_path = os.path.join(s.directory, checkpoint_name(entry.name, *self.shard))
        # Optional window model on the same streams: ring buffer of the last W inputs per stream,
        # run every `window_stride` messages; its own table and checkpoint file.
        self.window_engine = None
        if entry.window_model:
            window_model = open_window_model(entry.window_model, config.runtime.backend, config.runtime.num_threads,
                                             config.runtime.delegate, config.runtime.edgetpu_device,
                                             config.batching.max_batch)
            self.window_engine = WindowEngine(window_model, settings, entry.window_stride)
            self.window_checkpoint_path = self.checkpoint_path + ".window"
        self.journal_path = self.checkpoint_path + ".journal"
        self.journal_enabled, self.journal_fsync = s.journal, s.journal_fsync
        self.journal: Journal | None = None
        self.journal_errors = 0
        self._journal_errors_before_snapshot = 0
        self.output = config.output
        # (stream, ts) -> (values, messages to publish again) if the broker redelivers that input:
        # the open steps found in the journal at start-up, whose outputs may not have gone out.
        # Filled once, emptied as redeliveries arrive.
        self.recovered: dict[tuple[str, float], tuple[tuple[float, ...], list[tuple[str, str, int]]]] = {}
        # (journal seq, packet ids) of committed QoS 2 outputs whose PUBRELs may not have completed
        self.pending_releases: list[tuple[str, list[int]]] = []

    def step(self, messages: list) -> tuple[list, list]:
        """Advance both engines; returns the step results and, per result, everything it publishes
        ((topic, payload, qos) tuples: forecast, alert, and a window output when one is due)."""
        results = self.engine.process(messages)
        outputs = [self.outputs_for(r) for r in results]
        if self.window_engine is not None:
            window = {(w.stream_id, w.ts): w for w in self.window_engine.process(messages) if w.output is not None}
            name, targets = self.window_engine.model.manifest.name, self.window_engine.model.manifest.targets
            for result, items in zip(results, outputs):
                due = window.get((result.stream_id, result.ts))
                if due is not None:
                    items.append((render_topic(self.output.window_topic, result.stream_id),
                                  window_message(due, name, targets), self.output.forecast_qos))
        return results, outputs

    def outputs_for(self, result) -> list[tuple[str, str, int]]:
        """(topic, payload, qos) of everything one step publishes."""
        manifest, out = self.model.manifest, self.output
        info = self.engine.table.get(result.stream_id)
        interval = learned_interval(info) if info is not None else None      # for forecast_ts
        messages = [(render_topic(out.forecast_topic, result.stream_id),
                     forecast_message(result, manifest.name, manifest.targets, interval, out.precision),
                     out.forecast_qos)]
        if result.event is not None:
            messages.append((render_topic(out.alert_topic, result.stream_id),
                             alert_message(result, manifest.name, out.precision), out.alert_qos))
        return messages

    def restore(self) -> int:
        """Add this shard's streams from every checkpoint of this entry (streams already live stay)."""
        restore_fn = None
        if self.engine.anomaly_factory is not None:
            from statecast.daemon.anomaly import StreamAnomaly
            settings = self.engine.anomaly_factory().settings
            restore_fn = lambda data: StreamAnomaly.from_state(settings, data)    # noqa: E731
        count, sources = restore_shard(self.engine.table, self.state_directory, self.entry.name,
                                       self.model.manifest.sha256, *self.shard, anomaly_restore=restore_fn)
        log.info("%s: restored %d streams of shard %d/%d (%s)", self.entry.name, count, *self.shard,
                 ", ".join(os.path.basename(s) for s in sources) or "no checkpoint")
        if self.window_engine is not None:
            count_w, source = restore_checkpoint(self.window_checkpoint_path, self.window_engine.table,
                                                 self.window_engine.model.manifest.sha256)
            log.info("%s: restored %d window buffers (%s)", self.entry.name, count_w, source)
        if self.journal_enabled:
            self._replay_journal()
            if self.journal is None:
                self.journal = Journal(self.journal_path, self.journal_fsync)
        return count

    def _replay_journal(self) -> None:
        """Re-step what was journaled after the checkpoint. Steps the checkpoint already holds are
        older-or-equal timestamps to the engine, so replay is idempotent. A step re-sent after an
        earlier restart appears in two batches: the later one says what happened to its outputs."""
        replayed = 0
        for seq, settled, batch, committed in read_journal(self.journal_path):
            index = 0
            for sid, ts, values, outputs in batch:
                # outputs the broker may never have seen; committed ones only need their PUBREL
                unsent = [o for j, o in enumerate(outputs, index) if j not in committed]
                index += len(outputs)
                if settled or not unsent or not owned(sid, *self.shard):
                    self.recovered.pop((sid, ts), None)
                else:
                    self.recovered[(sid, ts)] = (values, unsent)
            if committed and not settled:
                self.pending_releases.append((seq, list(committed.values())))
            mine = [step for step in batch if owned(step[0], *self.shard)]
            replayed += len(self.step([Message(sid, values, ts, ts) for sid, ts, values, _ in mine])[0])
        if replayed:
            log.info("%s: replayed %d journaled steps after the checkpoint", self.entry.name, replayed)

    def record(self, results, outputs, resent: dict | None = None, sync: bool = True) -> str | None:
        """Journal a round's steps and the recovered steps whose outputs it sends again (before
        any input is acknowledged; sync: fsync it, if journal_fsync). A failing disk is loud but
        does not stop serving; until it recovers, a crash loses what the journal could not hold."""
        steps = [(sid, ts, values, items) for (sid, ts), (values, items) in (resent or {}).items()]
        steps += [(r.stream_id, r.ts, r.value, o) for r, o in zip(results, outputs)]
        if self.journal is None or not steps:
            return None
        try:
            return self.journal.append(steps, sync)
        except OSError as error:
            self._journal_failed(error)
            return None

    def _journal_failed(self, error: OSError) -> None:
        self.journal_errors += 1
        if self.journal_errors in (1, 10, 100) or self.journal_errors % 1000 == 0:
            log.error("%s: journal write failed (%d times): %s; serving continues without crash "
                      "protection", self.entry.name, self.journal_errors, error)

    def committed(self, batches: list[tuple[str, list[list[int]]]]) -> None:
        """The broker received these QoS 2 outputs ((seq, [[output index, packet id], ...]));
        must be durable before their PUBRELs."""
        if self.journal is not None:
            try:
                self.journal.committed(batches)
            except OSError as error:
                self._journal_failed(error)

    def settled(self, seq: str | None) -> None:
        if self.journal is not None and seq is not None:
            try:
                self.journal.settled(seq)
            except OSError:
                self.journal_errors += 1        # only costs a duplicate forecast after a crash

    def begin_checkpoint(self, settled: bool) -> list[tuple[str, dict]]:
        """Snapshot the tables: (path, arrays) per checkpoint file, copies that may be written
        while the engine goes on. settled: no input is waiting for its acknowledgement, so the
        journal is moved aside (its steps are all in this snapshot) and a new one started;
        otherwise it is kept whole (replaying it is harmless). end_checkpoint() once every file
        is durable."""
        files = [(self.checkpoint_path, snapshot(self.engine.table, self.model.manifest.sha256))]
        if self.window_engine is not None:
            files.append((self.window_checkpoint_path, snapshot(self.window_engine.table,
                                                                self.window_engine.model.manifest.sha256)))
        self._journal_errors_before_snapshot = self.journal_errors
        if self.journal is not None and settled:
            try:
                if self.journal.rotate() and self.recovered:    # inputs the broker may still redeliver
                    self.journal.append([(sid, ts, values, items)
                                         for (sid, ts), (values, items) in self.recovered.items()])
            except OSError as error:
                self._journal_failed(error)
        return files

    def end_checkpoint(self) -> None:
        """This pipeline's checkpoint files of the last begin_checkpoint are durable."""
        if self.journal is not None:
            try:
                self.journal.drop_pending()
            except OSError as error:
                self._journal_failed(error)
        # the checkpoint holds every step the journal missed before the snapshot
        self.journal_errors -= self._journal_errors_before_snapshot
        self._journal_errors_before_snapshot = 0


def engine_settings(state: StateConfig, horizon: int) -> EngineSettings:
    """The one place [state] (and a [[streams]] entry's horizon) becomes the engines' settings."""
    return EngineSettings(max_streams=state.max_streams, idle_eviction_seconds=state.idle_eviction_seconds,
                          max_gap_seconds=state.max_gap_seconds, gap_policy=state.gap_policy, horizon=horizon)


def anomaly_settings(config: Config, model):
    """The model's tuned anomaly settings (manifest `anomaly.settings`) with exactly the keys the
    config's [anomaly] table sets on top, whatever their values (`enabled` is the daemon's switch,
    not a scorer setting). An override that contradicts a tuned value it leaves in place is a
    ConfigError naming the file."""
    base, chosen = manifest_anomaly_settings(model), config.anomaly
    overrides = {name: getattr(chosen, name) for name in sorted(chosen.keys_set) if hasattr(base, name)}
    try:
        return dataclasses.replace(base, **overrides)
    except ValueError as error:        # e.g. threshold set below the model's tuned clear_threshold
        raise ConfigError(f"{config.source}: [anomaly] sets {', '.join(overrides)}; with the rest of model "
                          f"{model.manifest.name}'s tuned anomaly settings, {error}") from None

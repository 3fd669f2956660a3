"""`statecast serve`: MQTT in, batched step inference, forecasts and alerts out.

Threads: paho's network thread decodes and enqueues (routing.Router); this module's engine
loop drains the queue in micro-batches, steps the engines, publishes, snapshots the state for
checkpoints (a third thread writes the files: checkpoint_writer) and keeps systemd informed
(sdnotify): READY=1 once the models are loaded, the checkpoints restored and the broker has
acknowledged every subscription; WATCHDOG=1 from the loop itself, so a stuck engine (or a
checkpoint write stuck for half the watchdog timeout) stops pinging; a one-line STATUS=;
RELOADING=1 ... READY=1 around SIGHUP; STOPPING=1 then a final checkpoint on SIGTERM. Signals
only set flags; the loop acts on them.
"""
from __future__ import annotations

import faulthandler
import json
import logging
import os
import signal
import sys
import time

from statecast.daemon.config import Config, load_config
from statecast.daemon.engine.gaps import flush_held
from statecast.daemon.mqtt.broker_watch import BrokerWatch
from statecast.daemon.mqtt.delivery import Delivery, Publish
from statecast.daemon.mqtt.inbox import Inbox
from statecast.daemon.mqtt.mqtt_link import MqttLink
from statecast.daemon.mqtt.routing import Router
from statecast.daemon.state.checkpoint_writer import CheckpointRound
from statecast.daemon.state.takeover import owned
from .heap_trim import HeapTrimmer
from .housekeeping import StatusLine, daemon_stats
from .sdnotify import Notifier, WatchdogPacer
from .stream_pipeline import Pipeline

log = logging.getLogger("statecast.serve")
IDLE_WAIT_SECONDS = 0.2                # longest the loop blocks on an empty queue
WAKE = None                            # inbox marker: turn the loop (a QoS 2 PUBREC is waiting)


class Daemon:
    def __init__(self, config: Config, notifier: Notifier | None = None):
        self.config = config
        self.pipelines = {entry.name: Pipeline(entry, config) for entry in config.streams}
        self.router = Router([p.route for p in self.pipelines.values()], config.batching.max_payload_bytes,
                             config.cluster.shard_index, config.cluster.shard_count)
        self.inbox = Inbox(config.batching.queue_size)
        self.dropped_queue_full = 0
        self.notifier = notifier or Notifier()
        self.pacer = WatchdogPacer(self.notifier)
        # Turn the loop at least twice per watchdog interval even when no message arrives.
        interval = self.pacer.interval_seconds
        self.idle_wait_seconds = IDLE_WAIT_SECONDS if interval is None else min(IDLE_WAIT_SECONDS, interval / 2)
        self.status_line = StatusLine(config.output.stats_interval_seconds)
        self.heap_trimmer = HeapTrimmer()
        self.stop_requested = False
        self.reload_requested = False
        self.checkpoint_errors = 0
        self.checkpoint_round: CheckpointRound | None = None     # files being written off the loop
        self.reloads = self.reload_failures = self.reload_resets = 0
        self.last_error: str | None = None
        self.manual_ack = config.state.journal
        self.link = MqttLink(config.broker, config.output.status_topic,
                             [(e.topic, e.qos) for e in config.streams], self._on_message, self.manual_ack,
                             on_pubrec_held=self._wake)
        self._wake_pending = False
        self.delivery = Delivery(self.link)
        self.broker_watch = BrokerWatch(self.link)   # the broker's $SYS dropped-message counter
        self.republished = 0
        self.announced: set[str] = set()       # streams whose Home Assistant discovery went out

    # --- network thread -----------------------------------------------------------------
    def _on_message(self, message) -> None:
        if self.broker_watch.handles(message.topic):
            self.broker_watch.on_message(message.payload)
            return
        token = (message.mid, message.qos) if self.manual_ack and message.qos > 0 else None
        routed = self.router.route(message.topic, message.payload, token)
        if routed is None:
            if token is not None:               # rejected for good: acknowledge, or it comes back
                self.link.ack(*token)
            return
        if not self.inbox.put(routed):
            self.dropped_queue_full += 1

    def _wake(self) -> None:
        """A held PUBREC: turn the engine loop now (one marker in the inbox at a time)."""
        if not self._wake_pending:
            self._wake_pending = True
            self.inbox.put(WAKE)                # if full, the loop is busy anyway

    # --- engine loop --------------------------------------------------------------------
    def run(self) -> int:
        os.makedirs(self.config.state.directory, mode=0o700, exist_ok=True)
        for pipeline in self.pipelines.values():
            pipeline.restore()
        self._resume_releases()
        self.link.start()
        started = time.monotonic()
        if not self._wait_subscribed():
            return self._shutdown()
        log.info("serving: %s", ", ".join(f"{p.entry.topic} -> {p.model.manifest.name} ({p.model.backend.name})"
                                          for p in self.pipelines.values()))
        for name, raw in {p.model.manifest.name: p.model.manifest.raw for p in self.pipelines.values()}.items():
            log.info("model %s: %s", name, (raw.get("skill") or {}).get("line") or "no skill report in its manifest")
        self.notifier.ready(f"serving {len(self.pipelines)} stream filter(s), "
                            f"{sum(len(p.engine.table) for p in self.pipelines.values())} streams restored, "
                            f"ready in {time.monotonic() - started:.1f}s")
        next_checkpoint = time.monotonic() + self.config.state.checkpoint_interval_seconds
        next_stats = time.monotonic() + (self.config.output.stats_interval_seconds or float("inf"))
        while not self.stop_requested:
            batch = self._drain()
            if batch:
                with self.link.one_wakeup():
                    self._process(batch)
            else:
                self.heap_trimmer.idle()          # a burst's freed memory back to the kernel
            now = time.monotonic()
            self.broker_watch.poll()
            flush_held()                           # missing-step counts the per-minute log limit held
            self._collect_checkpoints(wait=False)
            if now >= next_checkpoint and self.checkpoint_round is None:
                self._begin_checkpoints()
                next_checkpoint = now + self.config.state.checkpoint_interval_seconds
            if now >= next_stats:
                self._publish_stats()
                next_stats = now + self.config.output.stats_interval_seconds
            if now >= self.status_line.due:
                self.notifier.status(self.status_line.text(self.stats()))
            with self.link.one_wakeup():
                self.delivery.poll()
            if not self._checkpoint_wedged(now):
                self.pacer.tick()
            if self.reload_requested:
                self.reload_requested = False
                self._collect_checkpoints(wait=True)     # the round's pipelines are about to be replaced
                self._reload()
                next_stats = min(next_stats, time.monotonic())
        return self._shutdown()

    def _wait_subscribed(self) -> bool:
        """Until the broker acknowledged every subscription (or a stop); STATUS= says what is missing."""
        b = self.config.broker
        shown = None
        while not self.link.subscribed.wait(timeout=self.idle_wait_seconds):
            self.pacer.tick()
            if self.stop_requested:
                return False
            waiting = "subscription acknowledgement" if self.link.connected.is_set() else "the broker"
            text = f"waiting for {waiting} ({b.host}:{b.port}); last error: {self.link.last_error or 'none'}"
            if text != shown:
                self.notifier.status(text)
                shown = text
        return True

    def _drain(self) -> list:
        """Block briefly for the first message, then take what is queued (after max_wait_ms, if set)."""
        if not self.inbox.wait(self.idle_wait_seconds):
            return []
        # One sleep for the batching window, then take what arrived: polling in short sleeps
        # handed the GIL back and forth with the network thread up to 10 times per batch.
        if self.inbox.qsize() < self.config.batching.max_batch and self.config.batching.max_wait_ms > 0:
            time.sleep(self.config.batching.max_wait_ms / 1000.0)
        items = self.inbox.take(self.config.batching.max_batch)
        self._wake_pending = False               # this turn polls delivery; a later PUBREC wakes again
        return [item for item in items if item is not WAKE]

    def _process(self, batch: list) -> None:
        by_route: dict[str, list] = {}
        shard = self.router.shard_index, self.router.shard_count
        for route, message in batch:
            if not owned(message.stream_id, *shard):     # queued before a reload moved its shard away
                self.router.other_shard += 1
                continue
            by_route.setdefault(route.name, []).append(message)
        parts, tokens = [], [message.token for _, message in batch]
        for name, messages in by_route.items():
            pipeline = self.pipelines.get(name)
            if pipeline is None:                    # routed just before a reload removed the entry
                continue
            outgoing = self._recovered(pipeline, messages)
            fresh = [m for m in messages if (m.stream_id, m.ts) not in outgoing] if outgoing else messages
            results, outputs = pipeline.step(fresh)
            if self.config.homeassistant.enabled:
                self._announce(pipeline, results)
            # Durable before any ack. Only a round with QoS 1/2 inputs is fsynced and keeps its
            # outputs (to re-send for a redelivered input); QoS 0 inputs are never redelivered,
            # so their steps are journaled for state replay alone.
            acked = any(m.token for m in messages)
            seq = pipeline.record(results, outputs if acked else [[] for _ in outputs], outgoing, sync=acked)
            self.republished += len(outgoing)
            publishes, index = [], 0            # index: the output's position in the journal batch
            for items in [o for _, o in outgoing.values()] + outputs:
                for topic, payload, qos in items:
                    info = self.link.publish(topic, payload, qos=qos)
                    if info is not None:
                        publishes.append(Publish(info, qos, index))
                    index += 1
            parts.append((pipeline, seq, publishes))
        if self.manual_ack:                     # without the journal nothing waits for the broker
            self.delivery.settle(parts, tokens)

    def _announce(self, pipeline, results) -> None:
        """Home Assistant discovery (retained) the first time this process sees a stream."""
        from statecast.daemon.mqtt.homeassistant import discovery_messages
        out, prefix = self.config.output, self.config.homeassistant.discovery_prefix
        for result in results:
            if result.stream_id in self.announced:
                continue
            self.announced.add(result.stream_id)
            for message in discovery_messages(prefix, result.stream_id, out.forecast_topic, out.alert_topic,
                                              out.status_topic, unit=pipeline.entry.unit,
                                              model_name=pipeline.model.manifest.name):
                self.link.publish(message.topic, message.payload, qos=message.qos, retain=message.retain)

    @staticmethod
    def _recovered(pipeline, messages) -> dict:
        """Redelivered inputs whose steps the journal replay restored: their outputs go out again.
        (stream, ts) -> (values, outputs). A broker redelivers a session's unacknowledged messages
        before anything newer, so entries older than a stream's first new input never come back."""
        if not pipeline.recovered:
            return {}
        outgoing = {(m.stream_id, m.ts): pipeline.recovered.pop((m.stream_id, m.ts))
                    for m in messages if (m.stream_id, m.ts) in pipeline.recovered}
        newest: dict[str, float] = {}
        for m in messages:
            if m.ts is not None and (m.stream_id, m.ts) not in outgoing:
                newest[m.stream_id] = max(m.ts, newest.get(m.stream_id, m.ts))
        for key in [k for k in pipeline.recovered if k[0] in newest and k[1] < newest[k[0]]]:
            del pipeline.recovered[key]
        return outgoing

    def _resume_releases(self) -> None:
        """QoS 2 publishes a previous process committed but did not see completed: their PUBRELs go
        out first thing on the resumed session (before any new publish could reuse a packet id)."""
        pending = [(pipeline, seq, mids) for pipeline in self.pipelines.values()
                   for seq, mids in pipeline.pending_releases]
        infos = self.link.resume_releases(sorted({mid for _, _, mids in pending for mid in mids}))
        by_mid = {info.mid: info for info in infos}
        for pipeline, seq, mids in pending:
            self.delivery.resume(pipeline, seq, [by_mid[mid] for mid in dict.fromkeys(mids)])
        if pending:
            log.info("re-sending %d PUBRELs of %d committed batches", len(by_mid), len(pending))

    def _begin_checkpoints(self) -> None:
        """Snapshot every pipeline's state on the loop; a CheckpointRound writes the files."""
        self.delivery.poll()
        settled = self.delivery.outstanding == 0
        started = time.monotonic()
        jobs = [(pipeline, pipeline.begin_checkpoint(settled)) for pipeline in self.pipelines.values()]
        self.checkpoint_round = CheckpointRound(jobs, time.monotonic() - started).start()

    def _collect_checkpoints(self, wait: bool) -> None:
        """Once the round in flight is written (now, with wait): its journals' pending files go,
        its failures are counted and logged (disk full etc.: loud, but serving continues)."""
        done = self.checkpoint_round
        if done is None or not (wait or done.done()):
            return
        done.wait()
        self.checkpoint_round = None
        for pipeline in done.written:
            pipeline.end_checkpoint()
        log.debug("checkpoint of %d streams: snapshot %.0f ms on the engine loop, files written in %.0f ms",
                  sum(len(p.engine.table) for p in done.written), done.snapshot_seconds * 1e3,
                  done.write_seconds * 1e3)
        for _, path, error in done.failures:
            self.checkpoint_errors += 1
            self.last_error = f"checkpoint failed: {getattr(error, 'strerror', None) or error}"
            log.error("checkpoint %s failed: %s (serving continues)", path, error)

    def _checkpoint_wedged(self, now: float) -> bool:
        """A checkpoint round still being written after half the watchdog timeout counts as a
        wedge (a dead SD card or NFS server): the loop stops pinging, so systemd's watchdog
        fires after WatchdogSec and faulthandler shows the writer's stack, as it did when the
        loop wrote checkpoints itself (it then fired after WatchdogSec of blocking)."""
        interval = self.pacer.interval_seconds
        return (interval is not None and self.checkpoint_round is not None
                and now - self.checkpoint_round.started > interval)

    def _checkpoint_all(self) -> None:
        """A checkpoint of everything, durable on return (final checkpoint, shard change)."""
        self._collect_checkpoints(wait=True)
        self._begin_checkpoints()
        self._collect_checkpoints(wait=True)

    def stats(self) -> dict:
        return daemon_stats(self)

    def _publish_stats(self) -> None:
        stats = json.dumps(self.stats(), separators=(",", ":"))
        log.info("stats %s", stats)
        self.link.publish(self.config.output.stats_topic, stats, qos=0)

    def _reload(self) -> None:
        from .reload import reload_daemon
        reload_daemon(self)

    def _shutdown(self) -> int:
        self.notifier.notify("STOPPING=1", "STATUS=stopping: writing the final checkpoint")
        # Whatever is already queued is processed before the final checkpoint, so it is not lost.
        while not self.inbox.empty():
            self._process(self._drain())
        deadline = time.monotonic() + 5.0           # let the broker acknowledge what is in flight
        while self.delivery.outstanding and self.link.connected.is_set() and time.monotonic() < deadline:
            time.sleep(0.01)
            self.delivery.poll()
        self._checkpoint_all()
        flush_held(force=True)
        self._publish_stats()
        self.link.stop()
        log.info("stopped cleanly (final checkpoint: %s)",
                 ", ".join(p.checkpoint_path for p in self.pipelines.values()))
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
    # systemd's watchdog kills a stuck daemon with SIGABRT: print every thread's stack first
    # (to stderr, i.e. the journal). SIGUSR1 prints them without stopping anything.
    faulthandler.enable(file=sys.stderr, all_threads=True)
    faulthandler.register(signal.SIGUSR1, file=sys.stderr, all_threads=True)

    def request_stop(_signum, _frame):
        daemon.stop_requested = True

    def request_reload(_signum, _frame):
        daemon.reload_requested = True

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGHUP, request_reload)
    return daemon.run()

"""Static partitioning: two real daemons (`shard = "0/2"` and `"1/2"`) on one mosquitto and one
shared state directory. Every stream is served by exactly one of them; when shard 1 stops and
shard 0 takes every stream (SIGHUP with `shard = "0/1"`, or a restart), the moved streams
continue from their checkpointed state exactly as if nothing had happened."""
import json
import os
import signal
import uuid

import pytest

from conftest import MACHINE_TEMPERATURE
from daemon_proc import DEFAULT_MODEL, Collector, DaemonProcess, publish_all, publisher, write_config
from service_support import NotifyListener, runtime_section
from statecast.daemon.anomaly import AnomalySettings
from statecast.daemon.engine.step_engine import Engine
from statecast.daemon.messages import Message
from statecast.daemon.model.step_model import StepModel
from statecast.daemon.mqtt.routing import shard_of
from statecast.daemon.service.runtime_setup import anomaly_factory_for
from statecast.daemon.tools.series_csv import read_series

SERIES = read_series(MACHINE_TEMPERATURE)
STREAMS = [f"unit{k}" for k in range(10)]
ROWS = 40                                                 # per stream; the handover is at ROWS // 2


def rows_of(k):
    start = 300 * k
    return [(float(SERIES.timestamps[i]), float(SERIES.values[i, 0])) for i in range(start, start + ROWS)]


def reference(stream_rows):
    model = StepModel(DEFAULT_MODEL)
    engine = Engine(model, anomaly_factory=anomaly_factory_for(model, AnomalySettings()))
    return [(r.forecast[:, 0].tolist(), r.anomaly_score, r.steps)
            for r in engine.process([Message("s", (v,), ts, ts) for ts, v in stream_rows])]


def sharded_config(tmp_path, broker, index, count, client_id, name=None):
    return write_config(tmp_path / (name or f"shard{index}.toml"), broker.port, str(tmp_path / "state"), client_id=client_id,
                        extra=f'forecast_topic = "shard{index}/{{stream}}"\n'
                              f'[cluster]\nshard = "{index}/{count}"\n' + runtime_section())


def published(collector, index, stream):
    return [(m["forecast"], m["anomaly_score"], m["step"]) for m in collector.json_on(f"shard{index}/{stream}")]


def send(pub, part):
    half = ROWS // 2
    span = range(0, half) if part == 0 else range(half, ROWS)
    data = {k: rows_of(k) for k in range(len(STREAMS))}
    publish_all(pub, [(f"sensors/{STREAMS[k]}/temperature", json.dumps({"value": data[k][i][1], "ts": data[k][i][0]}))
                      for i in span for k in range(len(STREAMS))])


def take_everything(tmp_path, broker, daemon, notify, client_id, how):
    """Reconfigure shard 0's daemon to `0/1`: by SIGHUP, or by a restart; returns the daemon."""
    if how == "sighup":
        sharded_config(tmp_path, broker, 0, 1, client_id)
        daemon.process.send_signal(signal.SIGHUP)
        notify.wait_for("READY=1", count=2, timeout=30)
        return daemon
    assert daemon.stop() == 0
    daemon = DaemonProcess(sharded_config(tmp_path, broker, 0, 1, client_id, name="all.toml"))
    daemon.wait_serving()
    return daemon


@pytest.mark.parametrize("takeover", ["sighup", "restart"])
def test_two_shards_then_one_takes_over_from_the_checkpoint(tmp_path, broker, takeover):
    owner = {s: shard_of(s, 2) for s in STREAMS}
    assert set(owner.values()) == {0, 1}, "the stream ids must land on both shards"
    tag = uuid.uuid4().hex[:8]
    collector = Collector(broker.port, topics=("shard0/#", "shard1/#"))
    pub = publisher(broker.port, client_id=f"pub-shards-{tag}")
    notify = NotifyListener(str(tmp_path / "notify.sock"))
    daemons = [DaemonProcess(sharded_config(tmp_path, broker, 0, 2, f"shard0-{tag}"), env=notify.env),
               DaemonProcess(sharded_config(tmp_path, broker, 1, 2, f"shard1-{tag}"))]
    try:
        for daemon in daemons:
            daemon.wait_serving()
        notify.wait_for("READY=1")
        send(pub, 0)
        half = ROWS // 2
        for s in STREAMS:
            collector.wait_for(lambda: len(published(collector, owner[s], s)) == half, what=f"first half of {s}")
        for s in STREAMS:                                 # exactly one daemon served each stream
            assert published(collector, 1 - owner[s], s) == [], s

        assert daemons[1].stop() == 0                     # final checkpoint: temperature.shard1of2.ckpt
        assert "temperature.shard1of2.ckpt" in os.listdir(tmp_path / "state")
        daemons[0] = take_everything(tmp_path, broker, daemons[0], notify, f"shard0-{tag}", takeover)
        # A reload adds the streams that moved; a restart restores all of them (from both files).
        restored = sum(owner[s] == 1 for s in STREAMS) if takeover == "sighup" else len(STREAMS)
        assert f"restored {restored} streams of shard 0/1" in daemons[0].log()

        send(pub, 1)
        for s in STREAMS:
            collector.wait_for(lambda: len(published(collector, 0, s)) == (ROWS if owner[s] == 0 else half),
                               what=f"second half of {s}")
        for k, s in enumerate(STREAMS):
            served = published(collector, 1, s) + published(collector, 0, s) if owner[s] == 1 \
                else published(collector, 0, s)
            assert served == reference(rows_of(k)), s       # steps 1..ROWS, no reset at the handover
        daemons[0].stop()
        state = sorted(os.listdir(tmp_path / "state"))
        assert {"temperature.shard0of2.ckpt", "temperature.shard1of2.ckpt", "temperature.ckpt"} <= set(state), state
    finally:
        for daemon in daemons:
            daemon.stop()
        pub.disconnect()
        collector.close()
        notify.close()

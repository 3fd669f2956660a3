"""Broker restart and broker unreachable: the daemon reconnects with backoff, the persistent
session delivers what was queued meanwhile, what the daemon publishes while disconnected waits in
a bounded buffer, and the status topic tells the truth."""
import json
import time
from types import SimpleNamespace

from broker import Mosquitto
from daemon_proc import Collector, DaemonProcess, publish_all, publisher, write_config
from statecast.daemon.mqtt.mqtt_link import MqttLink


def persistent_broker(tmp_path, port=None):
    data = tmp_path / "mosquitto-db"
    data.mkdir(exist_ok=True)
    return Mosquitto(extra_config=f"user root\npersistence true\npersistence_location {data}/\n", port=port)


def test_broker_restart_reconnects_and_delivers_the_queued_session(tmp_path):
    server = persistent_broker(tmp_path).start()
    port = server.port
    path = write_config(tmp_path / "b.toml", port, str(tmp_path / "state"), client_id="statecast-restart")
    daemon = DaemonProcess(path)
    daemon.wait_serving()
    pub = publisher(port, client_id="pub-restart")
    publish_all(pub, [("sensors/b1/temperature", json.dumps({"value": 60.0 + i % 3, "ts": float(i)}))
                      for i in range(20)])
    time.sleep(1.0)
    pub.disconnect()
    server.stop()                                     # broker goes away (saves its database)
    time.sleep(3.0)                                   # unreachable for a while: the daemon keeps retrying
    assert daemon.process.poll() is None
    assert "cannot connect to broker" in daemon.log() or "disconnected from broker" in daemon.log()
    # The broker comes back on the same port with the sessions it saved; a sensor publishes
    # while the daemon has not yet reconnected.
    server2 = persistent_broker(tmp_path, port=port)
    server2.directory = server.directory
    server2.config_path, server2.log_path = server.config_path, server.log_path
    server2.start()
    try:
        status = Collector(port, topics=("statecast/status", "statecast/forecast/#"))
        pub = publisher(port, client_id="pub-restart-2")
        publish_all(pub, [("sensors/b1/temperature", json.dumps({"value": 61.0, "ts": float(i)}))
                          for i in range(20, 40)])
        status.wait_for(lambda: len(status.json_on("statecast/forecast/b1")) == 20, timeout=60,
                        what="forecasts for what was published around the reconnect")
        assert [m["step"] for m in status.json_on("statecast/forecast/b1")] == list(range(21, 41))
        status.wait_for(lambda: status.payloads_on("statecast/status")[-1:] == [b"online"], what="online")
        log = daemon.log()
        assert log.count("connected to 127.0.0.1") >= 2, "the daemon did not reconnect"
        daemon.stop()
        status.wait_for(lambda: status.payloads_on("statecast/status")[-1:] == [b"offline"], what="offline")
        status.close()
        pub.disconnect()
    finally:
        daemon.stop()
        server2.cleanup()


def test_publishes_while_disconnected_wait_in_a_bounded_buffer(tmp_path):
    server = Mosquitto().start()
    broker_settings = SimpleNamespace(
        host="127.0.0.1", port=server.port, client_id="statecast-buffer", protocol="5", keepalive_seconds=5,
        session_expiry_seconds=3600, clean_start=False, username=None, password=None, tls=False, ca_file=None,
        cert_file=None, key_file=None, tls_server_name=None, reconnect_min_seconds=1, reconnect_max_seconds=1,
        max_queued_messages=50, max_inflight_messages=20)
    link = MqttLink(broker_settings, "statecast/status", [("sensors/+/x", 1)], lambda message: None)
    link.start()
    assert link.subscribed.wait(10)
    server.stop()
    deadline = time.monotonic() + 10
    while link.connected.is_set() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not link.connected.is_set()
    infos = [link.publish("statecast/forecast/buf", json.dumps({"n": i}), qos=1) for i in range(120)]
    accepted = [info for info in infos if info is not None]
    assert len(accepted) <= 50 and link.publish_refused == 120 - len(accepted)   # bounded, and counted
    collector_server = Mosquitto(port=server.port)
    collector_server.config_path = server.config_path
    collector_server.start()
    try:
        collector = Collector(server.port, topics=("statecast/forecast/buf",))
        # the collector subscribes before the link is back: the link's first reconnect retry is >= 1 s away
        deadline = time.monotonic() + 20
        while len(collector.payloads_on("statecast/forecast/buf")) < len(accepted) and time.monotonic() < deadline:
            time.sleep(0.05)
        got = [json.loads(p)["n"] for p in collector.payloads_on("statecast/forecast/buf")]
        assert got == list(range(len(accepted))), "the buffered publishes were not delivered in order"
        collector.close()
    finally:
        link.stop()
        collector_server.cleanup()
        server.cleanup()

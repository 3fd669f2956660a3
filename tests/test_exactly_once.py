"""The broker behaviour exactly-once publishing relies on, checked against the real mosquitto with
the daemon's own MQTT link in processes that end with os._exit (no DISCONNECT, like kill -9):
- a QoS 2 message is delivered on the PUBREL, not before: held messages of a crashed process
  are never delivered;
- a PUBREL sent again by the next process (resume_releases) delivers a message at most once;
- the next process's new messages reuse the dead one's packet ids without losing or mixing them.
The kill -9 test (test_reliability_kill.py) shows the whole daemon on top of this."""
import json
import subprocess
import sys
import textwrap
import time

from daemon_proc import Collector

SCRIPT = textwrap.dedent("""
    import json, os, sys, time
    from statecast.daemon.config import BrokerConfig
    from statecast.daemon.mqtt.mqtt_link import MqttLink
    from statecast.daemon.mqtt.paho_io import acknowledged
    port, phase, resume = int(sys.argv[1]), sys.argv[2], json.loads(sys.argv[3])
    link = MqttLink(BrokerConfig(host="127.0.0.1", port=port, client_id="exactly-once"), "eo/status",
                    [("eo/in", 1)], lambda m: None, manual_ack=True)
    resumed = link.resume_releases(resume)
    link.start()
    assert link.subscribed.wait(10), "no SUBACK"
    infos = [link.publish("eo/out", f"{phase}{i}", qos=2) for i in range(4)]
    deadline = time.monotonic() + 10
    while not all(link.pubrec_held(i.mid) for i in infos) and time.monotonic() < deadline:
        time.sleep(0.01)
    link.release([i.mid for i in infos[:2]])          # the first two are committed; two are not
    while not all(acknowledged(i) for i in infos[:2] + resumed) and time.monotonic() < deadline:
        time.sleep(0.01)
    print(json.dumps({"mids": [i.mid for i in infos], "complete": [acknowledged(i) for i in infos[:2] + resumed]}))
    sys.stdout.flush()
    os._exit(0)                                        # no DISCONNECT, nothing cleaned up
""")


def run_phase(port: int, phase: str, resume: list[int]) -> dict:
    out = subprocess.run([sys.executable, "-c", SCRIPT, str(port), phase, json.dumps(resume)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_qos2_released_once_held_never_and_packet_ids_reused_safely(broker):
    collector = Collector(broker.port, topics=("eo/out",), qos=2)
    first = run_phase(broker.port, "a", [])
    assert all(first["complete"])
    # The second process re-sends the PUBRELs of a0 and a1 (already delivered): nothing may be
    # delivered again.
    second = run_phase(broker.port, "b", first["mids"][:2])
    assert all(second["complete"])
    # The third starts its packet ids afresh: its QoS 2 messages take ids under which the broker
    # still holds the first process's unreleased a2 (never to be delivered) and must replace it.
    third = run_phase(broker.port, "c", [])
    assert first["mids"][2] in third["mids"], (first, third)
    time.sleep(0.5)
    got = sorted(p.decode() for p in collector.payloads_on("eo/out"))
    collector.close()
    assert got == ["a0", "a1", "b0", "b1", "c0", "c1"], (got, first, second, third)

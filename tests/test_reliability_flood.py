"""A flood of 100,000 distinct stream ids: the table stays within max_streams, evictions and
refusals are counted, memory stays bounded, and established streams keep being served."""
import json
import threading
import time

from daemon_proc import Collector, DaemonProcess, publisher, write_config

FLOOD = 100_000
MAX_STREAMS = 2_000


def rss_mb(pid: int) -> float:
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def test_flood_of_new_stream_ids_is_bounded_and_established_streams_keep_working(broker, tmp_path):
    collector = Collector(broker.port, topics=("statecast/stats", "statecast/forecast/keep0", "statecast/forecast/keep1"))
    path = write_config(tmp_path / "flood.toml", broker.port, str(tmp_path / "state"), client_id="statecast-flood",
                        extra="[batching]\nmax_batch = 1024\nqueue_size = 200000\n")
    with open(path, "a") as handle:          # bounded table; streams idle for 2 s may be evicted
        handle.write("\n[anomaly]\nenabled = false\n")
    text = open(path).read().replace("checkpoint_interval_seconds = 1",
                                     f"checkpoint_interval_seconds = 5\nmax_streams = {MAX_STREAMS}\n"
                                     "idle_eviction_seconds = 2")
    open(path, "w").write(text)
    daemon = DaemonProcess(path)
    try:
        daemon.wait_serving()
        baseline_mb = rss_mb(daemon.process.pid)
        keeper = publisher(broker.port, client_id="keeper")
        stop = threading.Event()
        sent = {"keep0": 0, "keep1": 0}

        def keep_alive():                     # two established streams keep talking during the flood
            t = 1.0
            while not stop.is_set():
                for name in sent:
                    keeper.publish(f"sensors/{name}/temperature", json.dumps({"value": 20.0 + t % 5, "ts": t}), qos=1)
                    sent[name] += 1
                t += 1.0
                time.sleep(0.05)

        worker = threading.Thread(target=keep_alive)
        worker.start()
        collector.wait_for(lambda: all(collector.json_on(f"statecast/forecast/{n}") for n in sent),
                           what="the established streams' first forecasts")
        flood = publisher(broker.port, client_id="flooder")
        for i in range(FLOOD):
            flood.publish(f"sensors/flood{i}/temperature", b'{"value": 1.0}', qos=0)
            if i % 2000 == 0:
                time.sleep(0.01)              # let paho's network thread drain
        # messages_in counts everything that reached the engine, admitted or refused
        collector.wait_for(lambda: (collector.json_on("statecast/stats") or [{}])[-1].get("messages_in", 0) >= FLOOD,
                           timeout=180, what="the flood to be processed")
        stop.set()
        worker.join()
        time.sleep(1.5)
        stats = collector.json_on("statecast/stats")[-1]
        peak_mb = rss_mb(daemon.process.pid)
        assert stats["streams_live"] <= MAX_STREAMS
        assert stats["evicted"] > 0 and stats["rejected"].get("stream_table_full", 0) > 0
        for name, count in sent.items():          # every keep-alive message is served (QoS 1 in)
            collector.wait_for(lambda: len(collector.json_on(f"statecast/forecast/{name}")) >= count,
                               timeout=60, what=f"{name}'s {count} forecasts")
        # The table is preallocated up to max_streams; the flood must not grow memory with it.
        assert peak_mb - baseline_mb < 60, f"RSS grew from {baseline_mb:.0f} to {peak_mb:.0f} MB"
        assert daemon.process.poll() is None
    finally:
        daemon.stop()
        collector.close()

"""Power loss during a checkpoint write and a full disk, with the real daemon."""
import json
import os
import subprocess

import pytest

from daemon_proc import Collector, DaemonProcess, publish_all, publisher, write_config


def feed(port, stream, start, stop, client_id):
    pub = publisher(port, client_id=client_id)
    publish_all(pub, [(f"sensors/{stream}/temperature", json.dumps({"value": 60.0 + (i % 7), "ts": float(i)}))
                      for i in range(start, stop)])
    pub.disconnect()


def test_torn_checkpoint_falls_back_to_the_previous_generation(broker, tmp_path):
    collector = Collector(broker.port)
    state = tmp_path / "state"
    path = write_config(tmp_path / "c.toml", broker.port, str(state), client_id="statecast-torn")
    daemon = DaemonProcess(path)
    daemon.wait_serving()
    feed(broker.port, "t1", 0, 50, "pub-torn-1")
    collector.wait_for(lambda: len(collector.json_on("statecast/forecast/t1")) == 50, what="50 forecasts")
    assert daemon.stop() == 0                         # final checkpoint: generation with 50 steps
    daemon = DaemonProcess(path)
    daemon.wait_serving()
    feed(broker.port, "t1", 50, 80, "pub-torn-2")
    collector.wait_for(lambda: len(collector.json_on("statecast/forecast/t1")) == 80, what="80 forecasts")
    assert daemon.stop() == 0                         # now: current = 80 steps, .prev = 50 steps
    current = state / "temperature.ckpt"
    blob = current.read_bytes()
    current.write_bytes(blob[: len(blob) * 2 // 3])   # power loss mid-write
    daemon = DaemonProcess(path)
    daemon.wait_serving()
    assert "checksum mismatch" in daemon.log() and "restored 1 streams" in daemon.log()
    feed(broker.port, "t1", 80, 81, "pub-torn-3")
    collector.wait_for(lambda: len(collector.json_on("statecast/forecast/t1")) == 81, what="one more")
    assert collector.json_on("statecast/forecast/t1")[-1]["step"] == 51   # continued from the 50-step generation
    assert daemon.stop() == 0
    # both generations garbage: start fresh rather than on garbage
    current.write_bytes(b"STATECAST-CKPT/1\n" + b"0" * 64 + b"\nnot an npz")
    (state / "temperature.ckpt.prev").write_bytes(b"\x00" * 100)
    daemon = DaemonProcess(path)
    daemon.wait_serving()
    assert "restored 0 streams" in daemon.log()
    daemon.stop()
    collector.close()


@pytest.fixture
def tiny_state_dir(tmp_path):
    mountpoint = tmp_path / "tiny"
    mountpoint.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mountpoint)],
                      capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    yield mountpoint
    subprocess.run(["umount", "-l", str(mountpoint)])


def test_full_disk_fails_checkpoints_loudly_and_serving_continues(broker, tmp_path, tiny_state_dir):
    collector = Collector(broker.port)
    path = write_config(tmp_path / "d.toml", broker.port, str(tiny_state_dir), client_id="statecast-full")
    daemon = DaemonProcess(path)
    daemon.wait_serving()
    filler = tiny_state_dir / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT)    # fill the state filesystem
    try:
        while os.write(fd, b"\0" * 4096):
            pass
    except OSError:
        pass
    finally:
        os.close(fd)
    streams = [f"d{i}" for i in range(20)]
    pub = publisher(broker.port, client_id="pub-full")
    publish_all(pub, [(f"sensors/{s}/temperature", json.dumps({"value": 50.0, "ts": float(t)}))
                      for t in range(3) for s in streams])
    collector.wait_for(lambda: sum(len(collector.json_on(f"statecast/forecast/{s}")) for s in streams) == 60,
                       what="forecasts while the disk is full")
    collector.wait_for(lambda: (collector.json_on("statecast/stats") or [{}])[-1].get("checkpoint_errors", 0) > 0,
                       what="a failed checkpoint to be counted")
    assert "checkpoint" in daemon.log() and "No space left on device" in daemon.log()
    assert daemon.process.poll() is None
    os.unlink(filler)                                  # space again: checkpoints succeed again
    collector.wait_for(lambda: (tiny_state_dir / "temperature.ckpt").exists(), what="a good checkpoint")
    assert not (tiny_state_dir / "temperature.ckpt.tmp").exists()
    assert daemon.stop() == 0
    pub.disconnect()
    collector.close()

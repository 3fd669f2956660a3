"""Checkpoint files written off the engine loop.

The loop only takes the snapshot (copies of the stream tables' arrays, Pipeline.begin_checkpoint);
a CheckpointRound writes, hashes and fsyncs the files on a thread of its own while the loop goes
on stepping. At 10,000 streams the write is ~40 ms here, and seconds on an SD card, that the loop
spent blocked before. One round at a time: the loop starts the next only after collecting this
one, and collects it (end_checkpoint per pipeline: the journal's pending file goes) only once
every file of that pipeline is durable.
"""
from __future__ import annotations

import logging
import threading
import time

from .checkpoint import write_snapshot

log = logging.getLogger("statecast.checkpoint")


class CheckpointRound:
    def __init__(self, jobs: list[tuple[object, list[tuple[str, dict]]]], snapshot_seconds: float):
        """jobs: (owner, [(path, snapshot arrays), ...]) per pipeline; snapshot_seconds: what
        taking them cost the loop."""
        self._jobs = jobs
        self.started = time.monotonic()
        self.snapshot_seconds = snapshot_seconds
        self.write_seconds = 0.0
        self.written: list = []                                  # owners whose files are all durable
        self.failures: list[tuple[object, str, BaseException]] = []   # (owner, path, error)
        self._thread = threading.Thread(target=self._write, name="statecast-checkpoint", daemon=True)

    def start(self) -> "CheckpointRound":
        self._thread.start()
        return self

    def done(self) -> bool:
        return not self._thread.is_alive()

    def wait(self) -> None:
        self._thread.join()

    def _write(self) -> None:
        started = time.monotonic()
        for owner, files in self._jobs:
            path = None
            try:
                for path, arrays in files:
                    write_snapshot(path, arrays)
            except OSError as error:                             # disk full etc.: reported by the loop
                self.failures.append((owner, path, error))
            except Exception as error:  # noqa: BLE001 - a bug must not end the thread unreported
                log.exception("checkpoint %s failed", path)
                self.failures.append((owner, path, error))
            else:
                self.written.append(owner)
        self._jobs = []                                          # the snapshots' memory goes now
        self.write_seconds = time.monotonic() - started

"""Write-ahead journal of engine steps, so a kill -9 or power loss loses no acknowledged input.

Each engine batch appends one record (group commit: one write, optionally one fsync, per batch)
holding the inputs it stepped and what each step published:
[[stream_id, ts, [values...], [[topic, payload, qos], ...]], ...]. The outputs are kept because
a step may already be in the checkpoint when its input comes back from the broker: the state
has moved on, so the forecast can no longer be recomputed, only re-sent. A checkpoint makes the
journal redundant: when the checkpoint's snapshot is taken (every batch settled), the file is
moved aside to <path>.pending and a new one started, since the engine goes on while the snapshot
is written; <path>.pending is deleted once that checkpoint is durable. At start-up the daemon
restores the checkpoint and replays <path>.pending, then <path>, through the engine; the
engine's "older or equal timestamp is a duplicate" rule makes replaying a step that the
checkpoint already holds a no-op, so a crash before the deletion is harmless.

Records:
- {"seq": n, "steps": [...]}: a batch, before any of its inputs is acknowledged;
- {"committed": [[n, [[output index, packet id], ...]], ...]}: the broker has received (PUBREC)
  these QoS 2 outputs of batch n (index: position among the batch's outputs, flattened over its
  steps); their PUBRELs, the broker's go-ahead to deliver, are sent only after this record is
  durable. Group commit: one record and one fsync for all that arrived in one engine turn;
- {"settled": n}: every publish of batch n is complete (PUBACK / PUBCOMP).
After a crash: a batch's committed outputs get their PUBRELs again (never their PUBLISH: the
broker may have delivered them already); its other outputs are published again when their
inputs come back (the broker never delivered those QoS 2 ones; QoS 1 ones it may have). A
settled batch needs nothing. A step may appear again in a later batch (outputs re-sent after a
restart are journaled with the batch that re-sends them): the latest record decides.
The settled marker is not fsynced (the next commit's fsync carries it): losing one costs a
PUBREL that the broker answers without delivering anything (QoS 2), or a duplicate (QoS 1).

Record layout: b"SJ" + uint32 length + uint32 crc32 + JSON payload. A torn tail (power loss in
the middle of an append) fails its length or CRC check and ends the replay there.
"""
from __future__ import annotations

import json
import logging
import os
import struct
import zlib

from .checkpoint import fsync_directory

MAGIC = b"SJ"
HEADER = struct.Struct("<2sII")
PENDING = ".pending"     # suffix of the journal file whose steps a checkpoint being written holds
log = logging.getLogger("statecast.journal")


class Journal:
    def __init__(self, path: str, fsync: bool = True):
        self.path = path
        self.fsync = fsync
        self._name_unsynced = not os.path.exists(path)   # a new file's directory entry is not durable yet
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self.records_written = 0
        # Batch ids must not collide with those of a previous process still in the file.
        self._epoch = os.urandom(6).hex()

    def _write(self, record: dict, sync: bool) -> None:
        payload = json.dumps(record, separators=(",", ":")).encode()
        os.write(self._fd, HEADER.pack(MAGIC, len(payload), zlib.crc32(payload)) + payload)
        if sync:
            os.fsync(self._fd)       # power loss; a kill -9 alone is covered by the page cache
            if self._name_unsynced:  # a rotated-in file: its name must outlive a power loss too
                fsync_directory(os.path.dirname(os.path.abspath(self.path)))
                self._name_unsynced = False

    def append(self, steps: list[tuple[str, float, tuple[float, ...], list]], sync: bool = True) -> str:
        """Record one batch of steps before their inputs are acknowledged; returns its id.
        sync=False for a batch no acknowledgement waits for (QoS 0 inputs: the broker will not
        redeliver them, so an fsync would only add its latency to their forecasts); a kill -9
        still loses nothing of it, a power loss may lose its steps."""
        self.records_written += 1
        seq = f"{self._epoch}:{self.records_written}"
        self._write({"seq": seq,
                     "steps": [[sid, ts, list(values), outputs] for sid, ts, values, outputs in steps]},
                    self.fsync and sync)
        return seq

    def committed(self, batches: list[tuple[str, list[list[int]]]]) -> None:
        """The broker received these QoS 2 outputs: (seq, [[output index, packet id], ...])."""
        self._write({"committed": [[seq, pairs] for seq, pairs in batches]}, self.fsync)

    def settled(self, seq: str) -> None:
        """The broker acknowledged everything batch `seq` published."""
        self._write({"settled": seq}, sync=False)

    def rotate(self) -> bool:
        """A checkpoint snapshot was just taken while every batch here was settled: move this
        file aside to <path>.pending (drop_pending deletes it once that checkpoint is durable)
        and go on in a new, empty file. Returns False, rotating nothing, while an older pending
        file exists: its checkpoint failed, so its steps stay until a later one succeeds."""
        pending = self.path + PENDING
        if os.path.exists(pending):
            return False
        # No fsync here: the file keeps the durability its appends had (what acknowledgements
        # waited for is synced already), so the loop pays no I/O for the rotation.
        os.close(self._fd)
        self._fd = -1                # a failure below must not leave a number another file may reuse
        os.replace(self.path, pending)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self._name_unsynced = True
        return True

    def drop_pending(self) -> None:
        """A checkpoint whose snapshot was taken after the pending file's last record is durable."""
        try:
            os.unlink(self.path + PENDING)
        except FileNotFoundError:
            pass

    def close(self) -> None:
        os.close(self._fd)


def read_journal(path: str) -> list[tuple[str, bool, list[tuple[str, float, tuple[float, ...], list]], dict[int, int]]]:
    """(seq, settled, steps, {output index: packet id} of its committed QoS 2 outputs) per batch,
    in order, from <path>.pending (if a checkpoint was being written) and then <path>; each file
    is read up to its first torn or corrupt record."""
    batches, committed, settled = [], {}, set()
    for candidate in (path + PENDING, path):
        if os.path.exists(candidate):
            _read_records(candidate, batches, committed, settled)
    return [(seq, seq in settled, steps, committed.get(seq, {})) for seq, steps in batches]


def _read_records(path: str, batches: list, committed: dict, settled: set) -> None:
    with open(path, "rb") as handle:
        blob = handle.read()
    offset = 0
    while offset + HEADER.size <= len(blob):
        magic, length, crc = HEADER.unpack_from(blob, offset)
        payload = blob[offset + HEADER.size: offset + HEADER.size + length]
        if magic != MAGIC or len(payload) != length or zlib.crc32(payload) != crc:
            log.warning("journal %s: torn or corrupt record at byte %d; replaying what precedes it", path, offset)
            break
        record = json.loads(payload)
        if "settled" in record:
            settled.add(record["settled"])
        elif "committed" in record:
            for seq, pairs in record["committed"]:
                committed.setdefault(seq, {}).update((int(index), int(mid)) for index, mid in pairs)
        else:
            batches.append((record["seq"], [(sid, float(ts), tuple(values), [tuple(o) for o in outputs])
                                            for sid, ts, values, outputs in record["steps"]]))
        offset += HEADER.size + length

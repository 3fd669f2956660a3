"""Write-ahead journal of engine steps, so a kill -9 or power loss loses no acknowledged input.

Each engine batch appends one record (group commit: one write, optionally one fsync, per batch)
holding the inputs it stepped: [[stream_id, ts, [values...]], ...]. A checkpoint makes the
journal redundant, so it is truncated right after a checkpoint is durable. At start-up the
daemon restores the checkpoint and replays the journal through the engine; the engine's
"older or equal timestamp is a duplicate" rule makes replaying a step that the checkpoint
already holds a no-op, so a crash between checkpoint and truncation is harmless.

Record layout: b"SJ" + uint32 length + uint32 crc32 + JSON payload. A torn tail (power loss in
the middle of an append) fails its length or CRC check and ends the replay there.
"""
from __future__ import annotations

import json
import logging
import os
import struct
import zlib

MAGIC = b"SJ"
HEADER = struct.Struct("<2sII")
log = logging.getLogger("statecast.journal")


class Journal:
    def __init__(self, path: str, fsync: bool = True):
        self.path = path
        self.fsync = fsync
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self.records_written = 0

    def append(self, steps: list[tuple[str, float, tuple[float, ...]]]) -> None:
        """Durably record one batch of steps before their inputs are acknowledged."""
        payload = json.dumps([[sid, ts, list(values)] for sid, ts, values in steps],
                             separators=(",", ":")).encode()
        os.write(self._fd, HEADER.pack(MAGIC, len(payload), zlib.crc32(payload)) + payload)
        if self.fsync:
            os.fsync(self._fd)       # power loss; a kill -9 alone is covered by the page cache
        self.records_written += 1

    def truncate(self) -> None:
        """Called once a checkpoint holding every journaled step is durable."""
        os.ftruncate(self._fd, 0)
        if self.fsync:
            os.fsync(self._fd)

    def close(self) -> None:
        os.close(self._fd)


def read_journal(path: str) -> list[list[tuple[str, float, tuple[float, ...]]]]:
    """All complete records, in order; stops at the first torn or corrupt one."""
    if not os.path.exists(path):
        return []
    with open(path, "rb") as handle:
        blob = handle.read()
    batches, offset = [], 0
    while offset + HEADER.size <= len(blob):
        magic, length, crc = HEADER.unpack_from(blob, offset)
        payload = blob[offset + HEADER.size: offset + HEADER.size + length]
        if magic != MAGIC or len(payload) != length or zlib.crc32(payload) != crc:
            log.warning("journal %s: torn or corrupt record at byte %d; replaying what precedes it", path, offset)
            break
        batches.append([(sid, float(ts), tuple(values)) for sid, ts, values in json.loads(payload)])
        offset += HEADER.size + length
    return batches

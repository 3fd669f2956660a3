"""Checkpoint files per shard, and a shard's streams gathered from every checkpoint of an entry.

A [[streams]] entry checkpoints to `<name>.ckpt` when one daemon serves every stream, and to
`<name>.shard<i>of<N>.ckpt` as shard i of N, so daemons sharing a state directory never write
the same file. At start-up, and when a reload changes the shard, a daemon reads every checkpoint
of its entries in the directory (its own, other shards', older layouts) and keeps the streams
that hash to its shard. Where several files hold one stream, the copy that saw the latest
message wins (then the one with more steps), so a stale file from an old layout cannot roll a
stream back.
"""
from __future__ import annotations

import logging
import os
import re

from statecast.daemon.mqtt.routing import shard_of
from .checkpoint import restore
from .stream_table import StreamTable

log = logging.getLogger("statecast.takeover")
_SCRATCH_MAX_STREAMS = 10_000_000          # a scratch table only grows as far as a file needs


def checkpoint_name(entry: str, shard_index: int = 0, shard_count: int = 1) -> str:
    return f"{entry}.ckpt" if shard_count == 1 else f"{entry}.shard{shard_index}of{shard_count}.ckpt"


def checkpoint_files(directory: str, entry: str) -> list[str]:
    """Every checkpoint of `entry` in `directory`, by the name restore() takes (it tries `.prev`)."""
    pattern = re.compile(re.escape(entry) + r"(\.shard[0-9]+of[0-9]+)?\.ckpt")
    try:
        names = os.listdir(directory)
    except OSError:
        return []
    bases = {name.removesuffix(".prev") for name in names}
    return [os.path.join(directory, base) for base in sorted(bases) if pattern.fullmatch(base)]


def owned(stream_id: str, shard_index: int, shard_count: int) -> bool:
    return shard_count == 1 or shard_of(stream_id, shard_count) == shard_index


def restore_shard(table: StreamTable, directory: str, entry: str, model_sha256: str, shard_index: int = 0,
                  shard_count: int = 1, anomaly_restore=None) -> tuple[int, list[str]]:
    """Add to `table` the newest checkpointed copy of each stream of this shard that it lacks.

    Returns (streams added, files that contributed). Rejected files are logged by restore().
    """
    best: dict[str, tuple[tuple[float, int], StreamTable, str]] = {}
    for path in checkpoint_files(directory, entry):
        scratch = StreamTable(table.state_shapes, _SCRATCH_MAX_STREAMS, forecast_width=table.forecasts.shape[1])
        scratch.scaler_restore = table.scaler_restore        # online models: their streams' normalisers
        scratch.guard_restore = table.guard_restore          # models with a forecast guard
        count, _source = restore(path, scratch, model_sha256, anomaly_restore)
        if not count:
            continue
        for stream_id, info in scratch.streams.items():
            if stream_id in table or not owned(stream_id, shard_index, shard_count):
                continue
            key = (info.last_ts if info.last_ts is not None else float("-inf"), info.steps)
            if stream_id not in best or key > best[stream_id][0]:
                best[stream_id] = (key, scratch, path)
    added, sources = 0, set()
    for stream_id, (_key, scratch, path) in best.items():
        info = scratch.streams[stream_id]
        slot = table.add(stream_id, info.last_seen)
        if slot is None:
            log.warning("%s: stream table full (max_streams %d); %d checkpointed streams not restored",
                        entry, table.max_streams, len(best) - added)
            break
        for target, source in zip(table.arrays, scratch.arrays):
            target[slot.slot] = source[info.slot]                     # (units,) per state tensor
        table.forecasts[slot.slot] = scratch.forecasts[info.slot]
        slot.take_over(info)
        added += 1
        sources.add(path)
    return added, sorted(sources)


def drop_other_shards(table: StreamTable, shard_index: int, shard_count: int) -> int:
    """Remove the streams that now belong to another daemon; returns how many."""
    leaving = [sid for sid in table.streams if not owned(sid, shard_index, shard_count)]
    for stream_id in leaving:
        table.remove(stream_id)
    return len(leaving)

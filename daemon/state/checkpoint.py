"""Atomic, checksummed checkpoints of a stream table.

File layout: b"STATECAST-CKPT/1\n" + sha256(payload) hex + b"\n" + payload, payload an .npz
(allow_pickle=False: a checkpoint is data, never code). Writing goes to a temporary file that
is fsynced and renamed over the current one after the current one became `.prev`, so a power
loss at any moment leaves at least one complete, verifiable generation. Loading verifies the
checksum and the model identity and falls back to `.prev`.

Inside the .npz: `meta` (JSON: model sha256, state shapes, the stream ids and the window
engine's per-stream extras by row), `stream_last_ts`, `stream_steps`, `stream_last_seen` and
`stream_last_interval` (float64, NaN for none), one array per state tensor and `last_forecast`,
row r being stream r of meta's ids. Checkpoints before these columns kept a JSON object per
stream in meta (`streams`); they still load. Per-stream anomaly, online-scaler and forecast-guard
statistics are stacked across streams, one array per field (`anomaly0.count`, `anomaly0.blocks`, ...) plus
`anomaly0.rows`, the rows they belong to; streams whose statistics have another layout (settings
changed by a reload) form group 1, 2, ... A 10,000-stream checkpoint is a few MB of arrays, not
JSON lists. (Commits 1c1d77e..40bc311 kept the forecast guard inside the scaler's statistics,
`scaler<g>.guard`; such checkpoints still restore it.)
Checkpoints written before the stacked layout keep those statistics in meta; they still load
(anomaly statistics of a STATE_VERSION before 5 are refused and restart, with one warning;
version 5's are upgraded, anomaly/state.py).
"""
from __future__ import annotations

import hashlib
import io
import json
import logging
import math
import os
import zipfile
from typing import Iterable

import numpy as np

from statecast.daemon.protocols import ScalerRestore, ScorerRestore, StackableState

from .stream_table import StreamTable

MAGIC = b"STATECAST-CKPT/1\n"
log = logging.getLogger("statecast.checkpoint")


class CheckpointError(Exception):
    """A checkpoint that is torn, corrupt, or from another model (one-line reason)."""


def encode(table: StreamTable, model_sha256: str) -> bytes:
    buffer = io.BytesIO()
    write(buffer, snapshot(table, model_sha256))
    return buffer.getvalue()


def write(handle, arrays: dict[str, np.ndarray]) -> None:
    """Header + payload of a snapshot into a seekable binary file. The payload streams straight
    into it while being hashed and the digest goes into the header last, so no copy of the whole
    payload is ever held in memory (at 100,000 streams that is ~190 MB, more while a buffer grows)."""
    start = handle.tell()
    handle.write(MAGIC + b"0" * 64 + b"\n")                    # digest placeholder: sha256 hex is 64
    hashing = _HashingWriter(handle)
    # np.savez's own layout (one .npy member per array, zip64), written through the hasher
    with zipfile.ZipFile(hashing, mode="w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
        for name, array in arrays.items():
            with archive.open(f"{name}.npy", mode="w", force_zip64=True) as member:
                np.lib.format.write_array(member, array, allow_pickle=False)
    end = handle.tell()
    handle.seek(start + len(MAGIC))
    handle.write(hashing.sha256.hexdigest().encode())
    handle.seek(end)


class _HashingWriter:
    """Passes writes through and hashes them. It has no tell()/seek(), so zipfile writes the
    archive strictly in order (sizes in data descriptors): the hash is of the bytes as stored."""

    def __init__(self, handle):
        self.handle, self.sha256 = handle, hashlib.sha256()

    def write(self, data) -> int:
        self.sha256.update(data)
        return self.handle.write(data)

    def flush(self) -> None:
        self.handle.flush()


def snapshot(table: StreamTable, model_sha256: str) -> dict[str, np.ndarray]:
    """Everything a checkpoint holds, as the .npz's named arrays: copies, so the engine may go on
    stepping the table while they are written (write / write_snapshot, on another thread)."""
    ids = list(table.streams)
    infos = [table.streams[sid] for sid in ids]
    slots = np.asarray([info.slot for info in infos], np.intp)
    forecasts = table.forecasts[slots]                     # NaN rows: no forecast yet
    # Columns rather than an object per stream: JSON-encoding 10,000 small objects took 18 ms of
    # the ~40 ms the engine loop spends on a snapshot.
    meta = {"model_sha256": model_sha256, "state_shapes": [list(s) for s in table.state_shapes],
            "stream_ids": ids, "extras": {str(row): i.extra for row, i in enumerate(infos) if i.extra is not None}}

    def column(values) -> np.ndarray:
        return np.fromiter(values, np.float64, len(infos))
    arrays = {"meta": np.frombuffer(json.dumps(meta).encode(), np.uint8), "last_forecast": forecasts,
              "stream_last_ts": column(math.nan if i.last_ts is None else i.last_ts for i in infos),
              "stream_steps": column(i.steps for i in infos),
              "stream_last_seen": column(i.last_seen for i in infos),
              "stream_last_interval": column(math.nan if i.last_interval is None else i.last_interval
                                             for i in infos)}
    arrays.update({f"state_{k}": array[slots] for k, array in enumerate(table.arrays)})
    arrays.update(stack_by_layout("anomaly", ((row, i.anomaly) for row, i in enumerate(infos)
                                              if i.anomaly is not None)))
    arrays.update(stack_by_layout("scaler", ((row, i.scaler) for row, i in enumerate(infos)
                                             if i.scaler is not None)))
    arrays.update(stack_by_layout("guard", ((row, i.guard) for row, i in enumerate(infos)
                                            if i.guard is not None)))
    return arrays


def stack_by_layout(prefix: str, items: Iterable[tuple[int, StackableState]]) -> dict[str, np.ndarray]:
    """Per-stream states (items: (row, obj)) -> one stacked array per to_state() key, by group of
    streams of equal layout (obj.layout(); groups in order of first appearance):
    {"<prefix><g>.rows": (n,) int64, "<prefix><g>.<key>": (n, ...)}. Numbers are float64 (exact
    for floats, bools and integers below 2**53), arrays keep their dtype. Each type stacks its
    own states column-wise (type(obj).stack_states), so no dict per stream is built."""
    groups: dict[tuple, tuple[list[int], list]] = {}
    for row, obj in items:
        rows, objects = groups.setdefault(obj.layout(), ([], []))
        rows.append(row)
        objects.append(obj)
    arrays = {}
    for g, (rows, objects) in enumerate(groups.values()):
        arrays[f"{prefix}{g}.rows"] = np.asarray(rows, np.int64)
        for key, column in type(objects[0]).stack_states(objects).items():
            arrays[f"{prefix}{g}.{key}"] = column
    return arrays


def unstack_states(prefix: str, data) -> dict[int, tuple[dict[str, np.ndarray], int]]:
    """Where each row's state is in the stacked arrays of stack_by_layout: {row: (columns, index)}."""
    groups: dict[str, dict[str, np.ndarray]] = {}
    for name in data.files:
        group, dot, key = name.partition(".")
        if dot and group.startswith(prefix) and group[len(prefix):].isdigit():
            groups.setdefault(group, {})[key] = data[name]
    where = {}
    for columns in groups.values():
        for index, row in enumerate(columns.pop("rows").tolist()):
            where[row] = (columns, index)
    return where


def state_at(where: dict, row: int) -> dict | None:
    """One row's state dict (numpy scalars and row views), built only when that stream is restored,
    so a restore never holds every stream's dict at once."""
    if row not in where:
        return None
    columns, index = where[row]
    return {key: column[index] for key, column in columns.items()}


def decode(blob: bytes, model_sha256: str, table: StreamTable, anomaly_restore: ScorerRestore | None = None,
           scaler_restore: ScalerRestore | None = None) -> int:
    """Fill `table` from a checkpoint blob; returns the number of streams restored."""
    if not blob.startswith(MAGIC):
        raise CheckpointError("not a statecast checkpoint (bad header)")
    end = blob.find(b"\n", len(MAGIC))
    digest, payload = blob[len(MAGIC): end], blob[end + 1:]      # one copy of the payload, not two
    if hashlib.sha256(payload).hexdigest().encode() != digest:
        raise CheckpointError("checksum mismatch (torn or corrupt write)")
    try:
        data = np.load(io.BytesIO(payload), allow_pickle=False)
        meta = json.loads(bytes(data["meta"]).decode())
        states = [data[f"state_{k}"] for k in range(len(table.state_shapes))]
        forecasts = data["last_forecast"]
        anomalies, scalers = unstack_states("anomaly", data), unstack_states("scaler", data)
        guards = unstack_states("guard", data)
        streams = _stream_rows(meta, data)
    except (ValueError, KeyError, OSError) as error:
        raise CheckpointError(f"unreadable checkpoint ({error})") from None
    if meta.get("model_sha256") != model_sha256:
        raise CheckpointError("checkpoint belongs to another model (sha256 differs)")
    if [tuple(s) for s in meta["state_shapes"]] != table.state_shapes:
        raise CheckpointError("checkpoint state shapes do not match the model")
    scaler_restore = scaler_restore or table.scaler_restore
    restored, refused = 0, []
    for row, (stream_id, last_ts, steps, last_seen, last_interval, extra, item) in enumerate(streams):
        info = table.add(stream_id, last_seen)
        if info is None:
            log.warning("checkpoint holds more streams than max_streams; %d not restored", len(streams) - row)
            break
        for array, saved in zip(table.arrays, states):
            array[info.slot] = saved[row]
        info.last_ts, info.steps, info.last_interval, info.extra = last_ts, steps, last_interval, extra
        width = min(forecasts.shape[1], table.forecasts.shape[1])   # a horizon change keeps what fits
        table.forecasts[info.slot, :width] = forecasts[row, :width]
        scaler = state_at(scalers, row) or _legacy_scaler(item.get("scaler"))
        if scaler is not None and scaler_restore is not None:
            info.scaler = scaler_restore(scaler)
        guard = state_at(guards, row) or _guard_in_scaler(scaler)
        if guard is not None and table.guard_restore is not None:
            try:
                info.guard = table.guard_restore(guard)
            except ValueError:              # saved for another horizon or targets: starts fresh
                info.guard = None
        anomaly = state_at(anomalies, row) or item.get("anomaly")   # meta: before the stacked layout
        if anomaly is not None and anomaly_restore is not None:
            try:
                info.anomaly = anomaly_restore(anomaly)
            except (ValueError, KeyError, TypeError) as error:   # e.g. anomaly settings changed
                refused.append((stream_id, error))
        restored += 1
    if refused:
        log.warning("anomaly statistics of %d stream(s) not restored (%s: %s); they restart",
                    len(refused), *refused[0])
    return restored


def _stream_rows(meta: dict, data) -> list[tuple]:
    """(id, last_ts, steps, last_seen, last_interval, extra, legacy meta object) per stream;
    the last is {} except in checkpoints that kept a JSON object per stream."""
    if "streams" in meta:                  # before the columns
        return [(item["id"], item["last_ts"], item["steps"], item.get("last_seen", 0.0), item.get("last_interval"),
                 item.get("extra"), item) for item in meta["streams"]]
    extras = meta["extras"]
    columns = zip(meta["stream_ids"], data["stream_last_ts"].tolist(), data["stream_steps"].tolist(),
                  data["stream_last_seen"].tolist(), data["stream_last_interval"].tolist())
    return [(stream_id, None if math.isnan(last_ts) else last_ts, int(steps), last_seen,
             None if math.isnan(interval) else interval, extras.get(str(row)), {})
            for row, (stream_id, last_ts, steps, last_seen, interval) in enumerate(columns)]


def _legacy_scaler(data) -> dict | None:
    """An online scaler saved in meta as [mean, var, count] (before the stacked layout)."""
    return None if data is None else {"mean": data[0], "var": data[1], "count": data[2]}


def _guard_in_scaler(scaler: dict | None) -> dict | None:
    """A forecast guard kept inside the scaler's statistics (commits 1c1d77e..40bc311)."""
    return None if scaler is None or "guard" not in scaler else {"values": scaler["guard"]}


def write_atomic(path: str, fill) -> None:
    """fill(handle) writes the content: tmp + fsync + (current -> .prev) + rename + fsync(dir);
    files are 0600."""
    directory = os.path.dirname(os.path.abspath(path))
    tmp = f"{path}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            fill(handle)
            handle.flush()
            os.fsync(handle.fileno())
        if os.path.exists(path):
            os.replace(path, path + ".prev")
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    fsync_directory(directory)


def fsync_directory(directory: str) -> None:
    """Make a rename or a new file's name in `directory` durable."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_snapshot(path: str, arrays: dict[str, np.ndarray]) -> None:
    write_atomic(path, lambda handle: write(handle, arrays))


def save(path: str, table: StreamTable, model_sha256: str) -> int:
    write_snapshot(path, snapshot(table, model_sha256))
    return len(table)


def restore(path: str, table: StreamTable, model_sha256: str, anomaly_restore: ScorerRestore | None = None,
            scaler_restore: ScalerRestore | None = None) -> tuple[int, str]:
    """Restore from `path`, else from `path.prev`; returns (streams, which file or reason)."""
    reasons = []
    for candidate in (path, path + ".prev"):
        if not os.path.exists(candidate):
            continue
        try:
            with open(candidate, "rb") as handle:
                blob = handle.read()
            for sid in list(table.streams):
                table.remove(sid)
            return decode(blob, model_sha256, table, anomaly_restore, scaler_restore), candidate
        except (CheckpointError, OSError) as error:
            log.warning("checkpoint %s rejected: %s", candidate, error)
            reasons.append(f"{os.path.basename(candidate)}: {error}")
    return 0, "; ".join(reasons) or "no checkpoint"

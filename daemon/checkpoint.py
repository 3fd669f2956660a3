"""Atomic, checksummed checkpoints of a stream table.

File layout: b"STATECAST-CKPT/1\n" + sha256(payload) hex + b"\n" + payload, payload an .npz
(allow_pickle=False: a checkpoint is data, never code). Writing goes to a temporary file that
is fsynced and renamed over the current one after the current one became `.prev`, so a power
loss at any moment leaves at least one complete, verifiable generation. Loading verifies the
checksum and the model identity and falls back to `.prev`.
"""
from __future__ import annotations

import hashlib
import io
import json
import logging
import os

import numpy as np

from .stream_table import StreamTable

MAGIC = b"STATECAST-CKPT/1\n"
log = logging.getLogger("statecast.checkpoint")


class CheckpointError(Exception):
    """A checkpoint that is torn, corrupt, or from another model (one-line reason)."""


def encode(table: StreamTable, model_sha256: str) -> bytes:
    ids = list(table.streams)
    infos = [table.streams[sid] for sid in ids]
    slots = np.asarray([info.slot for info in infos], np.intp)
    width = max((len(i.last_forecast) for i in infos if i.last_forecast is not None), default=0)
    forecasts = np.full((len(ids), width), np.nan, np.float32)
    for row, info in enumerate(infos):
        if info.last_forecast is not None:
            forecasts[row, : len(info.last_forecast)] = info.last_forecast
    meta = {"model_sha256": model_sha256, "state_shapes": [list(s) for s in table.state_shapes],
            "streams": [{"id": i.stream_id, "last_ts": i.last_ts, "steps": i.steps, "last_seen": i.last_seen,
                         "last_interval": i.last_interval,
                         "anomaly": i.anomaly.to_state() if i.anomaly is not None else None,
                         "scaler": i.scaler.to_state() if i.scaler is not None else None,
                         "extra": i.extra} for i in infos]}
    arrays = {f"state_{k}": array[slots] for k, array in enumerate(table.arrays)}
    buffer = io.BytesIO()
    np.savez(buffer, meta=np.frombuffer(json.dumps(meta).encode(), np.uint8), last_forecast=forecasts, **arrays)
    payload = buffer.getvalue()
    return MAGIC + hashlib.sha256(payload).hexdigest().encode() + b"\n" + payload


def decode(blob: bytes, model_sha256: str, table: StreamTable, anomaly_restore=None, scaler_restore=None) -> int:
    """Fill `table` from a checkpoint blob; returns the number of streams restored."""
    if not blob.startswith(MAGIC):
        raise CheckpointError("not a statecast checkpoint (bad header)")
    digest, _, payload = blob[len(MAGIC):].partition(b"\n")
    if hashlib.sha256(payload).hexdigest().encode() != digest:
        raise CheckpointError("checksum mismatch (torn or corrupt write)")
    try:
        data = np.load(io.BytesIO(payload), allow_pickle=False)
        meta = json.loads(bytes(data["meta"]).decode())
        states = [data[f"state_{k}"] for k in range(len(table.state_shapes))]
        forecasts = data["last_forecast"]
    except (ValueError, KeyError, OSError) as error:
        raise CheckpointError(f"unreadable checkpoint ({error})") from None
    if meta.get("model_sha256") != model_sha256:
        raise CheckpointError("checkpoint belongs to another model (sha256 differs)")
    if [tuple(s) for s in meta["state_shapes"]] != table.state_shapes:
        raise CheckpointError("checkpoint state shapes do not match the model")
    scaler_restore = scaler_restore or table.scaler_restore
    restored = 0
    for row, item in enumerate(meta["streams"]):
        info = table.add(item["id"], item.get("last_seen", 0.0))
        if info is None:
            log.warning("checkpoint holds more streams than max_streams; %d not restored", len(meta["streams"]) - row)
            break
        for array, saved in zip(table.arrays, states):
            array[info.slot] = saved[row]
        info.last_ts, info.steps = item["last_ts"], item["steps"]
        info.last_interval, info.extra = item.get("last_interval"), item.get("extra") or {}
        forecast = forecasts[row] if forecasts.shape[1] else None
        info.last_forecast = None if forecast is None or np.isnan(forecast).all() else forecast.copy()
        if item.get("scaler") is not None and scaler_restore is not None:
            info.scaler = scaler_restore(item["scaler"])
        if item.get("anomaly") is not None and anomaly_restore is not None:
            try:
                info.anomaly = anomaly_restore(item["anomaly"])
            except (ValueError, KeyError, TypeError) as error:   # e.g. anomaly settings changed
                log.warning("stream %s: anomaly statistics not restored (%s); they restart", item["id"], error)
        restored += 1
    return restored


def write_atomic(path: str, blob: bytes) -> None:
    """tmp + fsync + (current -> .prev) + rename + fsync(dir); files are 0600."""
    directory = os.path.dirname(os.path.abspath(path))
    tmp = f"{path}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(blob)
            handle.flush()
            os.fsync(handle.fileno())
        if os.path.exists(path):
            os.replace(path, path + ".prev")
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def save(path: str, table: StreamTable, model_sha256: str) -> int:
    write_atomic(path, encode(table, model_sha256))
    return len(table)


def restore(path: str, table: StreamTable, model_sha256: str, anomaly_restore=None,
            scaler_restore=None) -> tuple[int, str]:
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

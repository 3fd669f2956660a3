"""Candidate hot-path fixes, applied by monkeypatching, and measured against the unpatched daemon.

    .venv/bin/python bench/bench_patches.py compare [--variants base,drain,route,json,all] [--repeats 3]
    .venv/bin/python bench/bench_patches.py serve --patches drain,route --config FILE   (what compare runs)

Nothing here changes daemon/: each patch is the recommended code change written as a replacement
function, so its effect can be measured end to end (same closed-loop throughput run as
bench_e2e.py, interleaved with the unpatched daemon and the echo baseline) before anyone applies
it. The patches keep behaviour identical (same forecasts, same rejections and counters).
"""
from __future__ import annotations

import argparse
import json
import os
import queue
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


# --- the patches ---------------------------------------------------------------------------
def patch_drain() -> None:
    """serve.Daemon._drain: after the first message, sleep max_wait_ms once and take what has
    arrived, instead of polling get_nowait + sleep(0.2 ms) until the deadline (up to 10 GIL
    round trips per batch, each competing with the network thread)."""
    from statecast.daemon import serve

    def _drain(self) -> list:
        try:
            items = [self.inbox.get(timeout=self.idle_wait_seconds)]
        except queue.Empty:
            return []
        limit = self.config.batching.max_batch
        if self.inbox.qsize() < limit - 1:
            time.sleep(self.config.batching.max_wait_ms / 1000.0)
        take = self.inbox.get_nowait
        try:
            while len(items) < limit:
                items.append(take())
        except queue.Empty:
            pass
        return items

    serve.Daemon._drain = _drain


def patch_route() -> None:
    """routing.Router.route: remember topic -> (route, stream id) (bounded; cleared when the routes
    change on reload), so per message only the payload is decoded. Today every message builds a
    paho MQTTMatcher (topic_matches_sub), re-validates the filter and matches the topic again in
    stream_id_from_topic, and runs the sanitising regex."""
    from statecast.daemon import routing
    from statecast.daemon.engine import Message
    from statecast.daemon.payload import PayloadError, decode_payload

    original_resolve_limit = 100_000

    def _resolve(self, topic: str):
        for route in self.routes:
            pattern = routing.match_filter(route.topic_filter)
            if routing.topic_matches_sub(pattern, topic):
                break
        else:
            return "topic_not_matched", "matches no configured stream filter"
        raw_id = routing.stream_id_from_topic(pattern, topic, route.wildcard_index)
        stream_id = routing.sanitize_stream_id(raw_id) if raw_id is not None else None
        if stream_id is None:
            return "bad_stream_id", "no usable stream id in topic"
        return route, stream_id

    def route(self, topic: str, payload: bytes, token=None):
        cache = self.__dict__.get("_topic_cache")
        if cache is None or self.__dict__.get("_cached_routes") is not self.routes:
            cache = self.__dict__["_topic_cache"] = {}
            self.__dict__["_cached_routes"] = self.routes
        hit = cache.get(topic)
        if hit is None:
            hit = _resolve(self, topic)
            if isinstance(hit[0], str):                        # rejected: not cached (rare, and logged)
                return self._reject(hit[0], topic, hit[1])
            if len(cache) >= original_resolve_limit:
                cache.clear()
            cache[topic] = hit
        route_, stream_id = hit
        if self.shard_count > 1 and routing.shard_of(stream_id, self.shard_count) != self.shard_index:
            self.other_shard += 1
            return None
        try:
            reading = decode_payload(payload, route_.payload_format, route_.fields, self.max_payload_bytes)
        except PayloadError as error:
            return self._reject(error.reason, topic, str(error))
        return route_, Message(stream_id, reading.values, reading.ts, time.time(), token)

    routing.Router.route = route


def patch_json() -> None:
    """payload._load_json: one module-level JSONDecoder (json.loads with hooks builds a new
    decoder per call) and the bracket-depth regex scan only when the text has more than
    MAX_JSON_DEPTH opening brackets (it cannot be too deep otherwise). outputs.forecast_message:
    one module-level JSONEncoder (json.dumps with separators= builds one per call)."""
    from statecast.daemon import outputs, payload

    decoder = json.JSONDecoder(parse_constant=payload._reject_constant,
                               parse_float=lambda s: payload._finite(float(s), "JSON number"),
                               parse_int=lambda s: payload._finite(float(s), "JSON number"))

    def _load_json(text: str) -> object:
        if text.count("[") + text.count("{") > payload.MAX_JSON_DEPTH:
            payload._check_depth(text)
        try:
            return decoder.decode(text)
        except RecursionError:
            raise payload.PayloadError("too_deep", "JSON nested too deeply") from None
        except ValueError as error:
            raise payload.PayloadError("bad_json", f"invalid JSON ({(str(error).splitlines() or ['?'])[0][:80]})") from None

    payload._load_json = _load_json
    encoder = json.JSONEncoder(separators=(",", ":"))
    real_dumps = json.dumps

    class _Json:                                   # outputs' view of json: dumps via the shared encoder
        @staticmethod
        def dumps(obj, separators=None, **kwargs):
            return encoder.encode(obj) if separators == (",", ":") and not kwargs else real_dumps(obj, separators=separators, **kwargs)

    outputs.json = _Json


def patch_fmt() -> None:
    """outputs.forecast_message: write the (fixed-shape) forecast JSON with one f-string instead of
    building a dict for the JSON encoder. Byte-identical output: stream ids are already sanitised
    to [A-Za-z0-9._-], floats use repr() exactly as json does, non-finite values become null as
    _num does. Anything unusual (several targets or values, an unsanitised id) takes the old path."""
    import math
    import re

    from statecast.daemon import outputs

    original = outputs.forecast_message
    safe_id = re.compile(r"[A-Za-z0-9._-]+")
    names: dict[str, str] = {}

    def num(value) -> str:
        if value is None:
            return "null"
        value = float(value)
        return repr(value) if math.isfinite(value) else "null"

    def forecast_message(result, model_name, targets):
        if len(targets) > 1 or len(result.value) != 1 or not safe_id.fullmatch(result.stream_id):
            return original(result, model_name, targets)
        name = names.get(model_name) or names.setdefault(model_name, json.dumps(model_name))
        path = ",".join(num(v) for v in result.forecast[:, 0].tolist())
        return (f'{{"stream":"{result.stream_id}","ts":{num(result.ts)},"value":{num(result.value[0])},'
                f'"forecast":[{path}],"anomaly_score":{num(result.anomaly_score)},'
                f'"expected":{num(result.expected)},"model":{name},"step":{int(result.steps)}}}')

    outputs.forecast_message = forecast_message
    from statecast.daemon import pipeline, serve
    for module in (pipeline, serve):                   # wherever it was imported by name
        if hasattr(module, "forecast_message"):
            module.forecast_message = forecast_message


def patch_nodelay() -> None:
    """mqtt_link.MqttLink._handle_connect: set TCP_NODELAY on paho's socket once connected. paho
    leaves Nagle's algorithm on, so at low rates a forecast waits for the ACK of the previous
    segment (delayed ACK) before it leaves the daemon."""
    import socket

    from statecast.daemon import mqtt_link

    original = mqtt_link.MqttLink._handle_connect

    def _handle_connect(self, client, *args):
        sock = client.socket()
        if sock is not None and getattr(sock, "family", None) in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return original(self, client, *args)

    mqtt_link.MqttLink._handle_connect = _handle_connect


# Configuration, not code: "+nojournal" / "+nofsync" in a variant name set these [state] keys.
CONFIG_VARIANTS = {"nojournal": "journal = false\n", "nofsync": "journal_fsync = false\n"}
PATCHES = {"drain": patch_drain, "route": patch_route, "json": patch_json, "fmt": patch_fmt,
           "nodelay": patch_nodelay}


def apply(names: list[str]) -> None:
    for name in names:
        if name == "all":
            for patch in PATCHES.values():
                patch()
        elif name not in ("", "base"):
            PATCHES[name]()


# --- comparison ------------------------------------------------------------------------------
def compare(variants: list[str], repeats: int, qos: int, streams: int, window_seconds: float) -> dict:
    import bench_e2e
    from bench_common import machine, median
    from bench_mqtt import DaemonOptions

    runs = {name: [] for name in dict.fromkeys(["echo"] + variants)}
    for repeat in range(repeats):
        order = list(runs) if repeat % 2 == 0 else list(reversed(runs))
        for name in order:
            patches, _, protocol = name.partition("@")              # "all@3.1.1": MQTT 3.1.1 instead of 5
            code = "+".join(p for p in patches.split("+") if p not in CONFIG_VARIANTS) or "base"
            state = "".join(CONFIG_VARIANTS[p] for p in patches.split("+") if p in CONFIG_VARIANTS)
            command = [sys.executable, os.path.abspath(__file__), "serve", "--patches", code]
            options = DaemonOptions(model=bench_e2e.DEFAULT_MODEL, command=command, protocol=protocol or "5",
                                    extra_state=state)
            kind = "echo" if patches == "echo" else "daemon"
            result = bench_e2e.throughput_run(kind, qos, streams, 2.0, window_seconds, options)
            runs[name].append(result)
            print(f"bench_patches: repeat {repeat} {name}: {result['messages_per_second']:,.0f} msg/s, "
                  f"{result['sut_cpu_us_per_message']:.1f} us CPU/msg", file=sys.stderr)
    summary = {}
    for name, results in runs.items():
        summary[name] = {
            "msgs_per_s": median([r["messages_per_second"] for r in results]),
            "cpu_us_per_msg": median([r["sut_cpu_us_per_message"] for r in results]),
            "vs_echo": median([r["messages_per_second"] / e["messages_per_second"]
                               for r, e in zip(results, runs["echo"])]),
            "echo_cpu_over_cpu": median([e["sut_cpu_us_per_message"] / r["sut_cpu_us_per_message"]
                                         for r, e in zip(results, runs["echo"])]),
            "vs_base": (median([r["messages_per_second"] / b["messages_per_second"]
                                for r, b in zip(results, runs["base"])]) if "base" in runs else None),
            "lost": sum(r["lost"] for r in results),
        }
    return {"machine": machine(), "qos": qos, "streams": streams, "repeats": repeats, "summary": summary,
            "runs": runs}


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "serve":
        parser = argparse.ArgumentParser()
        parser.add_argument("--patches", default="base")
        args, rest = parser.parse_known_args(argv[1:])
        apply(args.patches.split("+"))
        from statecast.daemon.cli import main as cli_main
        return cli_main(["serve"] + rest)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["compare"])
    parser.add_argument("--variants", default="base,drain,route+json,all")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--qos", type=int, default=0)
    parser.add_argument("--streams", type=int, default=1000)
    parser.add_argument("--window-seconds", type=float, default=4.0)
    parser.add_argument("--out", default="-")
    args = parser.parse_args(argv)
    result = compare(args.variants.split(","), args.repeats, args.qos, args.streams, args.window_seconds)
    from bench_common import write_result
    write_result(result, args.out)
    for name, row in result["summary"].items():
        print(name, {k: (round(v, 2) if isinstance(v, float) else v) for k, v in row.items()}, file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

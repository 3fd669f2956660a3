"""Acknowledge QoS 1/2 inputs only once what they caused is safe; release QoS 2 outputs only once
that is recorded.

The order per engine round (all its pipelines' batches):
1. step -> journal append of the steps and their outputs (durable) -> publish the outputs;
2. as the broker receives each QoS 2 publish (PUBREC): a commit record in the journal naming it
   (durable; one record for all that arrived in the same engine turn), then its PUBREL; once
   every publish of the round is received (and QoS 1 ones acknowledged): the inputs' acks;
3. once every publish is complete (PUBCOMP for QoS 2): the journal's settled marker.
A crash makes the broker redeliver the inputs not yet acknowledged; the journal replay has
restored their steps, and the outputs not committed are published again (the broker never
delivered those QoS 2 ones: it only does on the PUBREL). Committed outputs get their PUBRELs
sent again, never their PUBLISH.
So nothing is lost, nothing is stepped twice, and QoS 2 outputs are delivered exactly once.
QoS 1 outputs are at least once: a forecast whose PUBACK and input acknowledgement were both
still in flight at the crash goes out again, identical (same stream, ts and step).
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from .paho_io import acknowledged


@dataclass(slots=True)
class Publish:
    info: object                 # paho MQTTMessageInfo
    qos: int
    index: int                   # position among its journal batch's outputs (flattened over steps)
    committed: bool = False      # QoS 2: PUBREC recorded in the journal, PUBREL sent


@dataclass
class Round:
    # (pipeline, journal seq or None, its QoS > 0 publishes) per pipeline that stepped or published
    parts: list[tuple[object, str | None, list[Publish]]]
    tokens: list[tuple[int, int]]          # the inputs' (mid, qos), acknowledged once all is received
    uncommitted: int = field(init=False)   # QoS 2 publishes not yet committed
    flat: list[Publish] = field(init=False)
    complete: int = field(init=False)      # flat[:complete] are known complete (PUBACK / PUBCOMP)

    def __post_init__(self):
        self.flat = [p for _, _, publishes in self.parts for p in publishes]
        self.uncommitted = sum(1 for p in self.flat if p.qos == 2 and not p.committed)
        self.complete = 0

    def advance(self) -> bool:
        """Move `complete` past the publishes completed since the last look; True when all are.
        Completions arrive mostly in order, so a round of hundreds of publishes polled on every
        engine turn costs one check per turn, not one per publish per turn."""
        flat, i = self.flat, self.complete
        while i < len(flat) and acknowledged(flat[i].info):
            i += 1
        self.complete = i
        return i == len(flat)

    def received(self) -> bool:
        """Everything this round published is safe: QoS 2 ones committed, the rest complete."""
        return self.uncommitted == 0 and (self.advance() or all(
            p.qos == 2 or acknowledged(p.info) for p in self.flat[self.complete:]))


class Delivery:
    def __init__(self, link):
        self._link = link                         # MqttLink: take_pubrecs(), release(), ack()
        self._waiting: deque[Round] = deque()     # inputs not yet acknowledged, in order
        self._completing: deque[Round] = deque()  # inputs acknowledged; waiting for PUBACK/PUBCOMP
        # QoS 2 publishes waiting for their PUBREC, by packet id: a PUBREC finds its publish
        # without a scan over everything outstanding (which cost more than the rest of serving)
        self._uncommitted: dict[int, tuple[Round, object, str | None, Publish]] = {}
        self.acked = 0

    def settle(self, parts: list, tokens: list) -> None:
        """One engine round: per pipeline its journal seq and QoS > 0 publishes, and its inputs' tokens."""
        tokens = [t for t in tokens if t is not None]
        if not tokens and not any(seq is not None or publishes for _, seq, publishes in parts):
            return
        round_ = Round(parts, tokens)
        early = []
        for pipeline, seq, publishes in parts:
            for p in publishes:
                if p.qos == 2 and not p.committed:
                    self._uncommitted[p.info.mid] = (round_, pipeline, seq, p)
                    if self._link.pubrec_held(p.info.mid):   # its PUBREC beat this registration
                        early.append(p.info.mid)
        self._waiting.append(round_)
        self._commit(early)
        self.poll()

    def resume(self, pipeline, seq: str, infos: list) -> None:
        """A batch committed by a previous process: settle it once its re-sent PUBRELs complete."""
        self._completing.append(Round([(pipeline, seq, [Publish(info, 2, -1, True) for info in infos])], []))

    def poll(self) -> None:
        self._commit_received()
        # Inputs are acknowledged in order, once everything their round published is safe.
        while self._waiting and self._waiting[0].received():
            round_ = self._waiting.popleft()
            for mid, qos in round_.tokens:
                self._link.ack(mid, qos)
            self.acked += len(round_.tokens)
            self._completing.append(round_)
        while self._completing and self._completing[0].advance():
            for pipeline, seq, _ in self._completing.popleft().parts:
                pipeline.settled(seq)

    def _commit_received(self) -> None:
        self._commit(self._link.take_pubrecs())

    def _commit(self, mids: list[int]) -> None:
        """QoS 2 publishes the broker has received (PUBREC): one commit record per pipeline
        (durable), then their PUBRELs. Per publish, not per round: paho keeps at most
        max_inflight_messages unreleased, so a round larger than that must release some before
        the broker can receive the rest."""
        fresh: dict[object, dict[str, list[list[int]]]] = {}
        release = []
        for mid in mids:
            entry = self._uncommitted.pop(mid, None)
            if entry is None:                   # already committed, or not one of ours
                continue
            round_, pipeline, seq, p = entry
            p.committed = True
            round_.uncommitted -= 1
            release.append(mid)
            if seq is not None:
                fresh.setdefault(pipeline, {}).setdefault(seq, []).append([p.index, mid])
        for pipeline, batches in fresh.items():
            pipeline.committed(list(batches.items()))     # durable before the PUBRELs
        self._link.release(release)

    @property
    def outstanding(self) -> int:
        return len(self._waiting) + len(self._completing)

"""Missing-step detection (daemon/engine/gaps.py) through the real engine, and its log rate limit."""
import logging

import numpy as np

from daemon_proc import DEFAULT_MODEL
from statecast.daemon.engine import gaps
from statecast.daemon.engine.step_engine import Engine
from statecast.daemon.messages import Message
from statecast.daemon.model.step_model import StepModel
from statecast.daemon.state.stream_table import StreamTable

STEP_SECONDS = 300.0


def engine():
    return Engine(StepModel(DEFAULT_MODEL))


def messages(stamps, stream="s", own_ts=True):
    return [Message(stream, (20.0 + 0.1 * i,), float(ts) if own_ts else None, float(ts)) for i, ts in enumerate(stamps)]


def missing_of(e, stream="s"):
    gap_log = e.table.get(stream).gap_log
    return 0 if gap_log is None else gap_log.missing_steps


def test_skipped_rows_are_counted_exactly():
    e = engine()
    stamps = [i * STEP_SECONDS for i in range(40) if not 10 <= i < 15]      # rows 10..14 never sent
    before = gaps.Totals.missing_steps
    e.process(messages(stamps))
    assert missing_of(e) == 5
    assert gaps.Totals.missing_steps - before == 5


def test_regular_and_jittered_intervals_count_nothing():
    rng = np.random.default_rng(0)
    e = engine()
    # +-30% jitter: every interval stays below GAP_FACTOR (1.75) times the learned one
    stamps = np.cumsum(STEP_SECONDS * (1 + rng.uniform(-0.3, 0.3, 500)))
    e.process(messages(stamps))
    assert missing_of(e) == 0
    assert abs(e.table.get("s").learned_interval - STEP_SECONDS) < 0.2 * STEP_SECONDS


def test_a_lost_second_message_does_not_hide_later_gaps():
    """The first interval is itself a gap (2 steps); the faster cadence is adopted at once."""
    e = engine()
    stamps = [0, 2 * STEP_SECONDS] + [k * STEP_SECONDS for k in range(3, 20)] + [k * STEP_SECONDS for k in range(24, 30)]
    e.process(messages(stamps))
    assert missing_of(e) == 4                     # 20..23; the first hole predates any learned interval


def test_receive_times_are_not_judged():
    """No payload timestamp: the receive time's jitter says nothing about loss."""
    e = engine()
    e.process(messages([0, 1, 2, 10, 11], own_ts=False))
    assert missing_of(e) == 0


def test_one_log_line_per_stream_per_minute(caplog):
    info = StreamTable([(2,)], 10).add("s", 0.0)
    info.last_ts, info.last_interval, info.learned_interval, info.intervals = 0.0, STEP_SECONDS, STEP_SECONDS, 1
    with caplog.at_level(logging.WARNING, logger="statecast.gaps"):
        for k, now in enumerate([0.0, 10.0, 30.0, 61.0]):          # four gaps of 2 missing steps each
            info.last_ts = k * 10 * STEP_SECONDS
            gaps.observe_step(info, info.last_ts + 3 * STEP_SECONDS, True, now=now)
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2, lines                  # at once, then not before 60 s have passed
    assert "stream s: 2 step(s) missing" in lines[0]
    assert "8 missing in total (6 since the last line)" in lines[1]
    assert info.gap_log.missing_steps == 8
    with caplog.at_level(logging.WARNING, logger="statecast.gaps"):
        gaps.observe_step(info, info.last_ts + 6 * STEP_SECONDS, True, now=70.0)   # held back (5 steps)
        gaps.flush_held(now=100.0)                                               # minute not up yet
        assert len(caplog.records) == 2
        gaps.flush_held(now=121.0)
    assert caplog.records[-1].getMessage() == ("stream s: 5 more step(s) missing since the last line, the latest "
                                               "before 1970-01-01T03:00:00Z; 13 missing in total")


def test_iso_time():
    assert gaps.iso_time(1385996400.0) == "2013-12-02T15:00:00Z"
    assert gaps.iso_time(1385996400.25) == "2013-12-02T15:00:00.250Z"

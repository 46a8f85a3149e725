"""The exec output log: order, offsets, replay, the bound, and waiting readers."""

from __future__ import annotations

import threading

from sandpool.sandbox.models import OutputEvent
from sandpool.sandbox.output import OutputLog


def _events(log: OutputLog, out: int = 0, err: int = 0) -> list[tuple[str, int, bytes, int]]:
    return [(e.stream, e.offset, e.data, e.dropped) for e in log.follow(out, err) if e]


def test_streams_keep_their_order_and_offsets() -> None:
    log = OutputLog(100)
    log.append("stdout", b"ab")
    log.append("stderr", b"E")
    log.append("stdout", b"cd")
    log.close()
    assert _events(log) == [("stdout", 0, b"ab", 0), ("stderr", 0, b"E", 0),
                            ("stdout", 2, b"cd", 0)]  # fmt: skip
    assert log.contents() == (b"abcd", b"E")


def test_replay_from_an_offset_inside_a_chunk() -> None:
    log = OutputLog(100)
    log.append("stdout", b"hello ")
    log.append("stdout", b"world")
    log.append("stderr", b"oops")
    log.close()
    assert _events(log, out=8, err=4) == [("stdout", 8, b"rld", 0)]


def test_past_the_bound_the_oldest_bytes_go_and_are_counted() -> None:
    log = OutputLog(10)
    log.append("stdout", b"0123456789")
    log.append("stderr", b"abc")
    log.append("stdout", b"XYZ")
    log.close()
    assert log.contents() == (b"6789XYZ", b"abc")
    assert log.dropped() == {"stdout": 6, "stderr": 0}
    assert log.ends() == {"stdout": 13, "stderr": 3}
    assert _events(log)[0] == ("stdout", 6, b"6789", 6)  # a late reader learns what it lost


def test_a_reader_waits_for_output_and_ends_at_close() -> None:
    log = OutputLog(100)
    seen: list[OutputEvent | None] = []
    reader = threading.Thread(target=lambda: seen.extend(log.follow()))
    reader.start()
    log.append("stdout", b"late")
    log.close()
    reader.join(5)
    assert not reader.is_alive()
    assert [(e.data if e else None) for e in seen] == [b"late"]


def test_poll_yields_none_while_quiet() -> None:
    log = OutputLog(100)
    events = log.follow(poll=0.01)
    assert next(events) is None
    log.append("stderr", b"x")
    assert next(events) == OutputEvent("stderr", 0, b"x", 0)

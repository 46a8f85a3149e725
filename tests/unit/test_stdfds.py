"""Closed standard descriptors and gone readers (``sandpool.stdfds``, ``oneshot.stdout_relay``)."""

from __future__ import annotations

import ast
import os
import subprocess
import sys

import pytest

from sandpool.oneshot.stdout_relay import StdoutRelay
from sandpool.stdfds import write_all


def test_closed_std_fds_become_dev_null() -> None:
    code = (
        "import os, sys; from sandpool.stdfds import fill_closed_std_fds, reopen_std_streams;"
        "filled = fill_closed_std_fds(); reopen_std_streams(filled);"
        "spare = os.open(os.devnull, os.O_RDONLY);"
        "os.write(9, repr((filled, spare > 2, [os.readlink(f'/proc/self/fd/{fd}') for fd in"
        " (0, 1, 2)], sys.stdout is not None and sys.stderr is not None,"
        " all(os.get_inheritable(fd) for fd in filled))).encode())"
    )
    for closing, filled in (("0<&- 1>&- 2>&-", [0, 1, 2]), ("2>&-", [2]), ("1>&-", [1]), ("", [])):
        read, write = os.pipe()
        script = f'exec 9>&{write} {closing}; exec "{sys.executable}" -c "$CODE"'
        subprocess.run(["bash", "-c", script], env={**os.environ, "CODE": code},
                       pass_fds=(write,), check=True, timeout=60)  # fmt: skip
        os.close(write)
        got_filled, spare_ok, targets, streams, inheritable = ast.literal_eval(
            os.read(read, 4096).decode()
        )
        os.close(read)
        assert got_filled == filled and spare_ok and streams and inheritable
        assert all(targets[fd] == "/dev/null" for fd in filled)


def test_write_all_to_a_gone_reader_is_false_not_an_error() -> None:
    read, write = os.pipe()
    os.close(read)
    assert write_all(write, b"x" * 100000) is False
    os.close(write)
    read, write = os.pipe()
    assert write_all(write, b"abc") is True
    assert os.read(read, 10) == b"abc"
    os.close(read)
    os.close(write)


def test_the_relay_copies_and_knows_whether_a_line_ended() -> None:
    read, write = os.pipe()
    relay = StdoutRelay(write)
    os.write(relay.write_fd, b"abc\ndef")
    assert relay.finish() is False
    os.close(write)
    assert os.read(read, 100) == b"abc\ndef"
    os.close(read)
    read, write = os.pipe()
    empty = StdoutRelay(write)
    assert empty.finish() is True


def test_the_relay_closes_its_pipe_when_the_reader_has_gone() -> None:
    read, write = os.pipe()
    os.close(read)
    relay = StdoutRelay(write)
    os.write(relay.write_fd, b"first")
    relay._thread.join(timeout=10)  # it saw EPIPE and closed the pipe's read end
    with pytest.raises(BrokenPipeError):
        os.write(relay.write_fd, b"second")
    relay.finish()
    os.close(write)

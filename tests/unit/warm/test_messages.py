"""Every protocol message is checked field by field (``warm.messages``)."""

from __future__ import annotations

import json

import pytest

from sandpool.warm.messages import (
    MAX_CONFIG_FILES,
    BadMessage,
    parse_exit,
    parse_run,
    parse_signal,
)
from sandpool.warm.protocol import MAX_MESSAGE

GOOD = {"run": {"pool": "p", "command": ["echo", "hi"]}, "config": ["c.yaml"], "cwd": "/srv",
        "env": {"SANDPOOL_X": "1"}}  # fmt: skip


def encoded(**changes: object) -> bytes:
    return json.dumps({**GOOD, **changes}).encode()


def test_a_good_run_message_is_kept_as_sent() -> None:
    message = parse_run(encoded())
    assert message.run == {"pool": "p", "command": ["echo", "hi"]}
    assert message.config == ("c.yaml",)
    assert (message.cwd, message.env) == ("/srv", {"SANDPOOL_X": "1"})


@pytest.mark.parametrize(
    ("data", "needle"),
    [(b"", "not JSON"), (b"\xff", "not JSON"), (b"[" * 50000, "nested too deeply"),
     (b"1" * 5000, "not JSON"), (b"[]", "a JSON list, not an object"),
     (encoded(more=1), "expected config, cwd, env, run"),
     (json.dumps({"argv": []}).encode(), "expected config, cwd, env, run"),
     (encoded(run=["--pool", "p"]), "run must be an object of fields, not list"),
     (encoded(config={"a": 1}), "config must be a list of strings, not dict"),
     (encoded(config=["ok", None]), "entry 1 of config must be a string, not NoneType"),
     (encoded(config=["a\0b"]), "entry 0 of config contains a NUL byte"),
     (encoded(config=["\udc80"]), "entry 0 of config is not valid UTF-8 text"),
     (encoded(config=[""] * (MAX_CONFIG_FILES + 1)), f"more than {MAX_CONFIG_FILES}"),
     (encoded(cwd="rel/dir"), "cwd must be an absolute path"),
     (encoded(cwd="/" * 4097), "at most 4096 bytes"),
     (encoded(cwd=7), "cwd must be a string, not int"),
     (encoded(env=["SANDPOOL_X=1"]), "env must be an object of strings, not list"),
     (encoded(env={"HOME": "/root"}), "env name 'HOME' is not a SANDPOOL_* variable name"),
     (encoded(env={"SANDPOOL_A=B": "1"}), "is not a SANDPOOL_* variable name"),
     (encoded(env={"SANDPOOL_X": ["1"]}), "env SANDPOOL_X must be a string, not list"),
     (encoded(env={"SANDPOOL_X": "a\0b"}), "env SANDPOOL_X contains a NUL byte"),
     (b" " * MAX_MESSAGE, "bytes or more")],
)  # fmt: skip
def test_a_bad_run_message_is_one_clear_line(data: bytes, needle: str) -> None:
    with pytest.raises(BadMessage) as caught:
        parse_run(data)
    assert needle in str(caught.value)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("signum", [1, 2, 15])
def test_the_forwarded_signals_are_accepted(signum: int) -> None:
    assert parse_signal(json.dumps({"signal": signum}).encode()) == signum


@pytest.mark.parametrize("value", [-128, 0, 9, 10**30, 2.0, True, "2", None, float("nan"), [2]])
def test_any_other_signal_is_refused(value: object) -> None:
    with pytest.raises(BadMessage, match="signal must be one of 1, 2, 15"):
        parse_signal(json.dumps({"signal": value}).encode())


def test_exit_statuses_are_0_to_255() -> None:
    assert parse_exit(b'{"exit": 0}') == 0 and parse_exit(b'{"exit": 255}') == 255
    for bad in (b'{"exit": 256}', b'{"exit": -1}', b'{"exit": 1e30}', b'{"exit": false}'):
        with pytest.raises(BadMessage, match="exit must be one of 0-255"):
            parse_exit(bad)

"""Sandbox data: the on-disk record round trip, the TTL deadline, the JSON views."""

from __future__ import annotations

from sandpool.sandbox.models import EndReason, ExecResult, OutputEvent, SandboxInfo, SandboxState


def test_record_round_trip_and_deadline_from_ready() -> None:
    info = SandboxInfo("sp-1", "default", "gvisor", "ptrace", "builtin:default",
                       labels={"job": "7"}, ttl=30.0, env=("A=1",))  # fmt: skip
    assert info.deadline is None  # not ready: the TTL has not started
    info.state, info.ready_at, info.reason = SandboxState.TERMINATED, 100.0, EndReason.TTL
    again = SandboxInfo.from_record(info.to_record())
    assert again == info
    assert again.deadline == 130.0
    shown = again.to_json()
    assert (shown["state"], shown["reason"], shown["labels"]) == ("terminated", "ttl",
                                                                  {"job": "7"})  # fmt: skip
    assert "env" not in shown


def test_exec_result_json() -> None:
    result = ExecResult("ex-1", "sp-1", exit_code=137, oom_killed=True, started_at=1.0,
                        finished_at=1.5, stdout_dropped=3)  # fmt: skip
    shown = result.to_json()
    assert (shown["exitCode"], shown["oomKilled"], shown["durationMs"],
            shown["stdoutDroppedBytes"]) == (137, True, 500.0, 3)  # fmt: skip


def test_output_event_json_is_binary_safe() -> None:
    shown = OutputEvent("stderr", 7, b"\xff\x00ok", dropped=2).to_json()
    assert shown == {"type": "stderr", "offset": 7, "dropped": 2, "data": "/wBvaw=="}


def test_network_fields_round_trip_and_show() -> None:
    info = SandboxInfo("sp-1", "default", "runc", None, "img", network="allow",
                       allow=("10.0.0.0/8", "*.example.com:443"), network_bytes_in=5,
                       network_bytes_out=7, ports=((9000, "127.0.0.1", 40001),))  # fmt: skip
    again = SandboxInfo.from_record(info.to_record())
    assert again == info and isinstance(again.allow, tuple)
    shown = again.to_json()
    assert (shown["network"], shown["allow"]) == ("allow", ["10.0.0.0/8", "*.example.com:443"])
    assert (shown["networkBytesIn"], shown["networkBytesOut"]) == (5, 7)
    assert shown["ports"] == [{"port": 9000, "host": "127.0.0.1", "hostPort": 40001}]
    old = info.to_record()
    for key in ("network", "allow", "network_bytes_in", "network_bytes_out", "ports"):
        del old[key]  # a sandbox saved by a sandpool from before these fields
    assert SandboxInfo.from_record(old).network == "none"

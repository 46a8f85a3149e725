"""``RunResult.to_json``: the object ``sandpool run --json`` prints (SPEC §4)."""

from __future__ import annotations

from sandpool.worker.request import RunResult

SPEC_KEYS = {
    "id", "pool", "containerRuntime", "gvisorPlatform", "image", "exitCode", "oomKilled",
    "timedOut", "startedAt", "finishedAt", "durationMs", "startLatencyMs", "error",
    # captured output past the output limit (always false/0 for the CLI, which streams)
    "stdoutTruncated", "stderrTruncated", "stdoutDroppedBytes", "stderrDroppedBytes",
    # the network policy's mode and bytes on the container's veth (null for none)
    "network", "networkBytesIn", "networkBytesOut",
}  # fmt: skip


def test_exactly_the_spec_keys_with_the_values_used() -> None:
    result = RunResult("sp-1", "default", "gvisor", "systrap", "builtin:busybox",
                       exit_code=137, oom_killed=True, started_at=1700000000.0,
                       finished_at=1700000001.5, start_latency_ms=80.5)  # fmt: skip
    data = result.to_json()
    assert set(data) == SPEC_KEYS
    assert data["containerRuntime"] == "gvisor"
    assert data["gvisorPlatform"] == "systrap"
    assert (data["exitCode"], data["oomKilled"], data["timedOut"]) == (137, True, False)
    assert data["startedAt"] == "2023-11-14T22:13:20.000Z"
    assert data["finishedAt"] == "2023-11-14T22:13:21.500Z"
    assert data["durationMs"] == 1500.0
    assert data["startLatencyMs"] == 80.5
    assert data["error"] is None


def test_captured_streams_are_not_in_the_json() -> None:
    result = RunResult("sp-1", "performance", "runc", None, "img", stdout=b"x", stderr=b"y")
    data = result.to_json()
    assert set(data) == SPEC_KEYS
    assert data["gvisorPlatform"] is None


def test_dropped_output_is_reported() -> None:
    result = RunResult("sp-1", "performance", "runc", None, "img", stdout=b"x" * 4,
                       stdout_dropped=10)  # fmt: skip
    data = result.to_json()
    assert (data["stdoutTruncated"], data["stdoutDroppedBytes"]) == (True, 10)
    assert (data["stderrTruncated"], data["stderrDroppedBytes"]) == (False, 0)
    assert result.output_truncated is True

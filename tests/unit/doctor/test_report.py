"""Rendering: one line per check, the fix under every non-ok line, exit status, JSON."""

from __future__ import annotations

from sandpool.doctor.report import HOST, exit_status, fail, ok, render_text, warn


def test_ok_lines_carry_no_fix_and_non_ok_lines_do() -> None:
    text = render_text(
        [
            ok(HOST, "cgroups", "cgroup v1"),
            warn("gpu", "podRuntime", "no runtime", "add runtime: nvidia\n  more"),
            fail("secure", "platform", "no systrap", "use ptrace"),
        ]
    )
    assert text.splitlines() == [
        "ok    -            cgroups      cgroup v1",
        "warn  gpu          podRuntime   no runtime",
        "      fix: add runtime: nvidia",
        "        more",
        "fail  secure       platform     no systrap",
        "      fix: use ptrace",
        "1 ok, 1 warn, 1 fail: problems found",
    ]


def test_exit_status_is_1_only_on_failure() -> None:
    assert exit_status([ok(HOST, "a", "x"), warn(HOST, "b", "y", "z")]) == 0
    assert exit_status([ok(HOST, "a", "x"), fail(HOST, "b", "y", "z")]) == 1


def test_json_names_the_pool_or_null_for_the_host() -> None:
    assert fail("p", "smoke", "hang", "use ptrace").to_json() == {
        "pool": "p",
        "check": "smoke",
        "status": "fail",
        "message": "hang",
        "fix": "use ptrace",
    }
    assert ok(HOST, "config", "valid").to_json()["pool"] is None

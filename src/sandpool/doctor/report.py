"""One doctor finding per line: status, pool, check, what was found, and the fix when not ok."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

__all__ = ["HOST", "Check", "Status", "exit_status", "fail", "ok", "render_text", "warn"]

HOST = "-"  # the "pool" column of checks about the host or the whole configuration


class Status(StrEnum):
    """How one check came out; FAIL makes ``sandpool doctor`` exit 1."""

    OK = "ok"
    WARN = "warn"
    FAIL = "fail"


@dataclass(frozen=True)
class Check:
    """The outcome of one check for one pool (or the host)."""

    pool: str
    name: str
    status: Status
    message: str
    fix: str | None = None

    @property
    def failed(self) -> bool:
        """Whether this check failed."""
        return self.status is Status.FAIL

    def line(self) -> str:
        """``fail  default  platform  <message>`` followed by ``fix: …`` lines when not ok."""
        head = f"{self.status.value:<5} {self.pool:<12} {self.name:<12} {self.message}"
        if self.status is Status.OK or not self.fix:
            return head
        fix_lines = self.fix.splitlines()
        indent = " " * 6
        return "\n".join(
            [head, f"{indent}fix: {fix_lines[0]}", *(indent + f for f in fix_lines[1:])]
        )

    def to_json(self) -> dict[str, Any]:
        """The object printed for this check by ``--json``."""
        return {
            "pool": None if self.pool == HOST else self.pool,
            "check": self.name,
            "status": self.status.value,
            "message": self.message,
            "fix": self.fix,
        }


def ok(pool: str, name: str, message: str) -> Check:
    """A passing check."""
    return Check(pool, name, Status.OK, message)


def warn(pool: str, name: str, message: str, fix: str) -> Check:
    """A check that passed with something the operator should change."""
    return Check(pool, name, Status.WARN, message, fix)


def fail(pool: str, name: str, message: str, fix: str) -> Check:
    """A check that failed: the pool will not work on this host until ``fix`` is done."""
    return Check(pool, name, Status.FAIL, message, fix)


def exit_status(checks: list[Check]) -> int:
    """1 if any check failed, else 0."""
    return 1 if any(check.failed for check in checks) else 0


def render_text(checks: list[Check]) -> str:
    """Every check's lines and a summary line."""
    counts = {status: sum(c.status is status for c in checks) for status in Status}
    summary = ", ".join(f"{counts[s]} {s.value}" for s in Status)
    verdict = "problems found" if counts[Status.FAIL] else "no failures"
    return "\n".join([*(c.line() for c in checks), f"{summary}: {verdict}"])

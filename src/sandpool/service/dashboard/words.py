"""What the dashboard says in words: why a sandbox is in its state, and what each failure
cause means with the fix an operator would try first."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["CAUSES", "Cause", "reason_in_words"]

_REASONS = {
    "ttl": "its time to live ran out",
    "idle": "it was idle longer than its idle timeout",
    "oom": "it ran out of memory (the kernel killed a process)",
    "killed": "it was terminated on request",
    "error": "it failed: it could not start, died on its own or could not be adopted",
    "worker_lost": "its worker stopped answering (the machine or process was lost)",
}


def reason_in_words(reason: str | None) -> str:
    """A state reason (``ttl``, ``idle``, ``oom``, ...) as a sentence part; '' for none."""
    if not reason:
        return ""
    return _REASONS.get(reason, reason)


@dataclass(frozen=True)
class Cause:
    """One group of the failures page."""

    key: str
    title: str
    fix: str


CAUSES: tuple[Cause, ...] = (
    Cause("oom", "Out of memory",
          "raise the pool's memory limit (worker.pools.NAME.memory) or the sandbox's "
          "`memory`, or make the program use less"),
    Cause("timeout", "Timed out",
          "raise the exec's `timeout` (or the pool's `timeout`), or split the work"),
    Cause("start", "Start failures",
          "read the runtime's message; `sandpool doctor --pool NAME` checks the pool's "
          "runtime on this host and names the fix"),
    Cause("worker_lost", "Worker lost",
          "check the worker's machine and its `sandpool worker` process; sandboxes on it "
          "are gone, create them again"),
)  # fmt: skip

"""An exec's output so far, as the sandbox page shows it (the end of each stream, without
waiting), and an exec listing in JSON both ways: the server reads its own manager, a
gateway asks the worker holding the sandbox (``dispatch.worker_public``), which answers
with the same functions."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sandpool.sandbox.manager import SandboxManager
from sandpool.sandbox.models import ExecResult, ExecSummary

__all__ = ["OUTPUT_SHOWN", "ExecOutput", "exec_snapshot", "summaries_from_json",
           "summaries_to_json"]  # fmt: skip

OUTPUT_SHOWN = 64 * 1024  # bytes of each stream a page shows (the end of it)


@dataclass(frozen=True)
class ExecOutput:
    """The end of an exec's output so far, and whether it has ended."""

    exec_id: str
    stdout: str
    stderr: str
    done: bool
    exit_code: int | None

    def to_json(self) -> dict[str, Any]:
        """As a worker sends it to a gateway."""
        return {"execId": self.exec_id, "stdout": self.stdout, "stderr": self.stderr,
                "done": self.done, "exitCode": self.exit_code}  # fmt: skip

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ExecOutput:
        """Read ``to_json``'s output back (KeyError, TypeError if malformed)."""
        code = data["exitCode"]
        return cls(str(data["execId"]), str(data["stdout"]), str(data["stderr"]),
                   bool(data["done"]), None if code is None else int(code))  # fmt: skip


def exec_snapshot(manager: SandboxManager, sandbox_id: str, exec_id: str) -> ExecOutput:
    """What the exec wrote so far (the end of each stream), without waiting."""
    chunks: dict[str, list[bytes]] = {"stdout": [], "stderr": []}
    done = True
    for event in manager.exec_events(sandbox_id, exec_id, poll=0.0):
        if event is None:
            done = False
            break
        chunks[event.stream].append(event.data)
    result = manager.exec_wait(sandbox_id, exec_id, timeout=0) if done else None
    text = {k: b"".join(v)[-OUTPUT_SHOWN:].decode(errors="replace") for k, v in chunks.items()}
    return ExecOutput(exec_id, text["stdout"], text["stderr"], result is not None,
                      result.exit_code if result else None)  # fmt: skip


def summaries_to_json(summaries: list[ExecSummary]) -> list[dict[str, Any]]:
    """A sandbox's execs as the page lists them (no output: ``exec_snapshot`` has it)."""
    return [{"execId": s.exec_id, "argv": list(s.argv), "startedAt": s.started_at,
             "result": None if s.result is None else _result_to_json(s.result)}
            for s in summaries]  # fmt: skip


def _result_to_json(result: ExecResult) -> dict[str, Any]:
    return {"exitCode": result.exit_code, "oomKilled": result.oom_killed,
            "timedOut": result.timed_out, "startedAt": result.started_at,
            "finishedAt": result.finished_at}  # fmt: skip


def summaries_from_json(sandbox_id: str, data: list[dict[str, Any]]) -> list[ExecSummary]:
    """Read ``summaries_to_json``'s output back (KeyError, TypeError if malformed)."""
    found = []
    for item in data:
        done = item.get("result")
        result = None if done is None else ExecResult(
            str(item["execId"]), sandbox_id, exit_code=int(done["exitCode"]),
            oom_killed=bool(done["oomKilled"]), timed_out=bool(done["timedOut"]),
            started_at=float(done["startedAt"]), finished_at=float(done["finishedAt"]))  # fmt: skip
        found.append(ExecSummary(str(item["execId"]), tuple(map(str, item["argv"])),
                                 float(item["startedAt"]), result))  # fmt: skip
    return found

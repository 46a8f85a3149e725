"""gVisor's exec stub without containers (``sandbox.exec_stub``, ``init.c`` mode ``stub``):
the init binary runs as the stub on this host, started by ``ExecStub`` through a stand-in
runtime whose ``exec`` is the stub itself. The request is read exactly (the rest of stdin is
the command's), ``R`` comes before any output, env entries go on top of the stub's own,
126/127 as ``exec`` gives them, end of file before a request ends it quietly; a stub that
died before taking a command is refused; a slot starts, hands out and reaps its stubs."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import cast

import pytest

from sandpool.runtime.base import Capability, ContainerRuntime
from sandpool.sandbox import exec_stub
from sandpool.sandbox.exec_stub import ExecStub, StubSlot, stub_request
from sandpool.sandbox.execs import ExecProcess
from sandpool.sandbox.init_binary import init_binary
from sandpool.sandbox.models import ExecRequest


@pytest.fixture(scope="module")
def stub_binary(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return init_binary(tmp_path_factory.mktemp("state"))


class _Runtime:
    """A stand-in runtime: its ``exec`` runs ``command`` on this host (no sandbox)."""

    capabilities = frozenset({Capability.USERSPACE_KERNEL})  # a gVisor-like one

    def __init__(self, command: Sequence[str]) -> None:
        self.command = list(command)

    def argv(self, *args: str, extra_global: Sequence[str] = ()) -> list[str]:
        assert args[0] == "exec" and args[-2:] == ("/.sandpool/init", "stub")
        return self.command


def _runtime(*command: str) -> ContainerRuntime:
    return cast(ContainerRuntime, _Runtime(command))


def _run_stub(binary: Path, data: bytes, env: dict[str, str]) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([str(binary), "stub"], input=data, capture_output=True, env=env,
                          timeout=30, check=False)  # fmt: skip


def test_the_request_is_read_exactly_and_env_goes_on_top(stub_binary: Path) -> None:
    request = stub_request(["sh", "-c", "pwd; echo $KEEP $FOO; cat; exit 3"], ["FOO=bar"], "/tmp")
    env = {"PATH": os.environ["PATH"], "KEEP": "kept", "FOO": "old"}
    done = _run_stub(stub_binary, request + b"the command's stdin\n", env)
    assert (done.returncode, done.stdout) == (3, b"R/tmp\nkept bar\nthe command's stdin\n")


def test_exit_codes_when_the_command_cannot_start(stub_binary: Path) -> None:
    env = {"PATH": os.environ["PATH"]}
    missing = _run_stub(stub_binary, stub_request(["no-such-command"], [], "/"), env)
    assert missing.returncode == 127 and b"no-such-command" in missing.stderr
    no_dir = _run_stub(stub_binary, stub_request(["true"], [], "/nonexistent"), env)
    assert no_dir.returncode == 126 and b"/nonexistent" in no_dir.stderr
    unused = _run_stub(stub_binary, b"", env)
    assert (unused.returncode, unused.stdout, unused.stderr) == (0, b"", b"")
    bad = _run_stub(stub_binary, b"\x05\x00\x00\x00abcde", env)
    assert bad.returncode == 125 and bad.stdout == b""


def test_hand_over_gives_the_command_its_pipes(stub_binary: Path, tmp_path: Path) -> None:
    stub = ExecStub(_runtime(str(stub_binary), "stub"), "sb", tmp_path)
    assert stub.hand_over(["sh", "-c", "cat; echo err >&2"], [], "/", stdin=True)
    assert stub.proc.stdin is not None and stub.proc.stdout is not None
    stub.proc.stdin.write(b"in\n")
    stub.proc.stdin.close()
    assert stub.proc.stdout.read() == b"in\n"  # the R was read by hand_over
    assert stub.proc.wait(30) == 0
    stub.close()


def test_a_stub_that_ended_first_is_refused(tmp_path: Path) -> None:
    stub = ExecStub(_runtime("true"), "sb", tmp_path)  # ends without taking anything
    assert not stub.hand_over(["echo", "never"], [], "/", stdin=False)
    stub.close()
    assert stub.proc.returncode == 0


def test_a_slot_starts_hands_out_and_reaps(stub_binary: Path, tmp_path: Path) -> None:
    slot = StubSlot(_runtime(str(stub_binary), "stub"), "sb", tmp_path)
    slot.fill()
    first = slot.take()
    assert first is not None and slot.take() is None
    first.close()
    assert first.proc.returncode == 0  # end of file before a request: it ends quietly
    slot.fill()
    slot.fill()  # one at a time
    slot.close()
    slot.fill()  # closed: no more
    assert slot.take() is None
    assert list(tmp_path.iterdir()) == []


def test_a_stub_slow_to_start_takes_the_command_late(stub_binary: Path, tmp_path: Path) -> None:
    """Past the wait, the exec goes on with that stub; its late ``R`` is to be dropped."""
    slow = _runtime("sh", "-c", f"sleep 0.5; exec {stub_binary} stub")
    stub = ExecStub(slow, "sb", tmp_path)
    assert stub.hand_over(["echo", "late"], [], "/", stdin=False, wait_s=0.05)
    assert stub.taken_unread and stub.proc.stdout is not None
    assert stub.proc.stdout.read() == b"Rlate\n"
    stub.close()


def test_an_exec_drops_a_late_r_and_refills_its_slot(
    stub_binary: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An exec whose stub took its command after the wait: the output has no ``R``, the exit
    code is the command's, and the slot has a stub again once the exec ended."""
    monkeypatch.setattr(exec_stub, "TAKEN_WAIT_S", 0.05)
    slow = _runtime("sh", "-c", f"sleep 0.5; exec {stub_binary} stub")
    slot = StubSlot(slow, "sb", tmp_path)
    slot.fill()
    process = ExecProcess(slow, "sb", ExecRequest(("sh", "-c", "echo late; exit 4")), env=(),
                          cwd="/", user=None, pid_dir=tmp_path, output_limit=1 << 20,
                          stubs=slot)  # fmt: skip
    process.start()
    result = process.wait(30)
    assert result is not None and result.exit_code == 4
    assert process.output.contents() == (b"late\n", b"")
    again = slot.take()
    assert again is not None
    again.close()
    slot.close()

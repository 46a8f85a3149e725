"""Checkpoint/restore without a kernel: CRIU's log lines in the error, the refusals, and a
checkpointed sandbox's life (only its TTL can end it; a failed dump leaves it running)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from sandpool.errors import CheckpointFailed, OperationNotSupported, RuntimeCommandFailed
from sandpool.runtime.base import Capability
from sandpool.runtime.fake import FakeRuntime
from sandpool.runtime.runc import RuncRuntime
from sandpool.sandbox.checkpoint import (
    CHECKPOINT_DIR,
    criu_errors,
    dump,
    require_checkpoints,
    undump,
)
from sandpool.sandbox.live import LiveSandbox
from sandpool.sandbox.models import EndReason, SandboxInfo, SandboxState
from sandpool.worker.records import KILLED_FILE

# The end of a real dump.log (CRIU 3.17.1 on kernel 6.18 and, before the VM loaded
# nf_conntrack_netlink, on 6.1).
DUMP_LOG = """\
(00.000483) Version: 3.17.1 (gitid 0)
(00.010001) Warning: Extension mark revision 0 not supported, missing kernel module?
(06.851417) Error (criu/libnetlink.c:54): -22 reported by netlink: Invalid argument
(06.868185) Error (criu/namespaces.c:1171): Namespaces dumping finished with error 59904
(06.877613) Unlock network
(07.313144) Error (criu/cr-dump.c:2053): Dumping FAILED.
"""


class FailingRunc(RuncRuntime):
    """runc whose checkpoint and restore fail as runc does, after CRIU wrote its log."""

    def __init__(self, root: Path) -> None:
        super().__init__("/nonexistent/runc", root)
        self.capabilities = self.capabilities | {Capability.CHECKPOINT_RESTORE}

    def checkpoint(self, container_id: str, image_dir: Path) -> None:
        (image_dir / "dump.log").write_text(DUMP_LOG)
        raise RuntimeCommandFailed(["runc", "checkpoint"], 1, "criu failed: type NOTIFY")

    def restore(self, container_id: str, bundle: Path, image_dir: Path,
                pid_file: Path | None = None) -> None:  # fmt: skip
        raise RuntimeCommandFailed(["runc", "restore"], 1, "criu failed: type RESTORE")


def test_criu_errors_are_the_last_error_lines_without_timestamps(tmp_path: Path) -> None:
    log = tmp_path / "dump.log"
    log.write_text(DUMP_LOG)
    assert criu_errors(log, limit=2) == [
        "Error (criu/namespaces.c:1171): Namespaces dumping finished with error 59904",
        "Error (criu/cr-dump.c:2053): Dumping FAILED.",
    ]
    assert criu_errors(tmp_path / "missing.log") == []


def test_a_failed_dump_quotes_criu_and_names_its_log(tmp_path: Path) -> None:
    with pytest.raises(CheckpointFailed) as failed:
        dump(FailingRunc(tmp_path), "sp-1", tmp_path)
    text = str(failed.value)
    assert text.startswith("cannot checkpoint sandbox sp-1: CRIU failed: Error (criu/libnetlink")
    assert "-22 reported by netlink" in text and "Dumping FAILED." in text
    assert str(tmp_path / CHECKPOINT_DIR / "dump.log") in text


def test_a_failed_restore_keeps_the_images(tmp_path: Path) -> None:
    (tmp_path / CHECKPOINT_DIR).mkdir()
    with pytest.raises(CheckpointFailed, match="cannot restore sandbox sp-1: CRIU failed: "
                       "runc restore… exited 1: criu failed: type RESTORE"):  # fmt: skip
        undump(FailingRunc(tmp_path), "sp-1", tmp_path)
    assert (tmp_path / CHECKPOINT_DIR).is_dir()


def test_runtimes_that_cannot_checkpoint_say_so_and_the_fix(tmp_path: Path) -> None:
    fake = FakeRuntime(tmp_path)  # as gVisor: no CHECKPOINT_RESTORE (tested for real there)
    with pytest.raises(OperationNotSupported, match=f"not supported by {fake.name}.*runc"):
        require_checkpoints(fake, "sp-1")
    runc = RuncRuntime("/nonexistent/runc", tmp_path)
    runc.capabilities = frozenset()
    with pytest.raises(OperationNotSupported, match=r"needs CRIU.*apt-get install criu"):
        require_checkpoints(runc, "sp-1")


def _live(tmp_path: Path, runtime: RuncRuntime | FakeRuntime, ttl: float) -> LiveSandbox:
    info = SandboxInfo("sp-1", "p", runtime.name, None, "img", workdir="/", env=())
    info.state, info.ready_at, info.ttl = SandboxState.RUNNING, time.time(), ttl
    return LiveSandbox(info, runtime, tmp_path, tmp_path, 0, 0, 1 << 20)


def test_a_checkpointed_sandbox_ends_only_at_its_ttl_or_a_kill(tmp_path: Path) -> None:
    """Nothing of it runs (its pid is gone): not a death; past the TTL, or killed, it ends."""
    sandbox = _live(tmp_path, FakeRuntime(tmp_path), ttl=60)
    sandbox.info.state = SandboxState.CHECKPOINTED
    assert not sandbox.alive()
    assert sandbox.due(time.time()) is None
    assert sandbox.due(time.time() + 61) is EndReason.TTL
    (tmp_path / KILLED_FILE).touch()  # what `sandpool kill <id>` leaves
    assert sandbox.due(time.time()) is EndReason.KILLED


def test_a_failed_checkpoint_leaves_the_sandbox_running(tmp_path: Path) -> None:
    sandbox = _live(tmp_path, FailingRunc(tmp_path), ttl=60)
    with pytest.raises(CheckpointFailed):
        sandbox.checkpoint()
    assert sandbox.info.state is SandboxState.RUNNING

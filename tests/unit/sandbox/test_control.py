"""The owner's side of the init's control socket (``sandbox.control``, no containers): the
request encoding, wait statuses, waiting with a timeout or past the init's end; the env a
command gets (``merged_env``); which one-shot runs may claim a warm container
(``sandbox.warm_run.warm_claim``)."""

from __future__ import annotations

import os
import socket
import struct
from dataclasses import dataclass
from typing import Any

import pytest

from sandpool.config.models import SandpoolConfig
from sandpool.config.resolved import ResolvedPool, resolve
from sandpool.runtime.spec import DEFAULT_PATH, BindMount
from sandpool.sandbox.control import ControlSocket, decode_status
from sandpool.sandbox.control_exec import merged_env
from sandpool.sandbox.warm_run import warm_claim
from sandpool.worker.container import Stdio
from sandpool.worker.request import RunRequest


def test_a_run_request_is_header_fds_and_nul_separated_fields() -> None:
    control = ControlSocket()
    passed = os.open(os.devnull, os.O_RDONLY)
    try:
        control.run(["sh", "-c", "echo hi"], ["A=1"], "/work", (passed, passed, passed))
        data, fds, _, _ = socket.recv_fds(control.child, 8, 3)
        payload = b"/work\0" + b"3\0sh\0-c\0echo hi\0A=1\0"
        assert data == b"SPR1" + struct.pack("=I", len(payload)) and len(fds) == 3
        assert control.child.recv(1000) == payload
        for fd in fds:
            os.close(fd)
    finally:
        os.close(passed)
        control.close()


def test_wait_reads_the_status_and_tells_a_timeout_from_the_inits_end() -> None:
    control = ControlSocket()
    try:
        assert control.wait(0.05) is None
        control.child.sendall(b"X 7")
        control.child.sendall(b"68\n")
        assert control.wait(1) == 768 and decode_status(768) == 3
        control.child.close()
        with pytest.raises(EOFError):
            control.wait(1)
    finally:
        control.close()
    assert control.closed()


def test_wait_statuses_are_exit_codes_as_a_shell_gives_them() -> None:
    assert decode_status(0) == 0
    assert decode_status(127 << 8) == 127
    assert decode_status(9) == 137  # SIGKILL


def test_the_env_has_a_default_path_and_later_names_win_in_place() -> None:
    assert merged_env() == (DEFAULT_PATH,)
    assert merged_env("PATH=/bin", "A=1", "B=2", "A=3") == ("PATH=/bin", "A=3", "B=2")


def _pool(warm: dict[str, Any], **defaults: Any) -> ResolvedPool:
    pool = {"warmPool": warm, "containerDefaults": {"memory": "256Mi", **defaults}}
    return resolve(SandpoolConfig.model_validate({"worker": {"pools": {"p": pool}}})).pool("p")


@dataclass
class _Image:
    entrypoint: tuple[str, ...] = ()
    cmd: tuple[str, ...] = ()


def test_only_runs_without_network_gpus_mounts_may_claim() -> None:
    image: Any = _Image()  # an ImageLike's parts that the check reads
    pool, stdio = _pool({"size": 2}), Stdio(capture=True)
    claim = warm_claim(pool, RunRequest(("true",), memory="256Mi"), image, stdio)
    assert claim is not None and (claim.pool, claim.memory) == ("p", "256Mi")
    for request in (
        RunRequest(("true",), network="open"),
        RunRequest(("true",), allow=("10.0.0.0/8",)),
        RunRequest(("true",), gpus=1),
        RunRequest(("true",), mounts=(BindMount("/tmp", "/mnt"),)),
        RunRequest(()),  # no command and the image has none: the cold path says so
        RunRequest(("true",), network="bogus"),  # the cold path names the bad policy
    ):
        assert warm_claim(pool, request, image, stdio) is None, request
    assert warm_claim(_pool({"size": 0}), RunRequest(("true",)), image, stdio) is None
    networked = _pool({"size": 1}, network="open")
    assert warm_claim(networked, RunRequest(("true",)), image, stdio) is None

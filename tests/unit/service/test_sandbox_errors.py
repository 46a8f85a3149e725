"""A sandbox's errors as the API states them (status and code), whatever layer raised them."""

from __future__ import annotations

import errno

import pytest

from sandpool.errors import SandboxError, SandboxFileError, SandboxNotFound, SandboxStateError
from sandpool.service.problems import as_service_error


@pytest.mark.parametrize(
    ("error", "status", "code"),
    [
        (SandboxNotFound("no exec"), 404, "not_found"),
        (SandboxStateError("paused"), 409, "conflict"),
        (SandboxFileError("read /x: ENOENT", errno=errno.ENOENT), 404, "not_found"),
        (SandboxFileError("mkdir /x: EEXIST", errno=errno.EEXIST), 409, "conflict"),
        (SandboxFileError("rm /x: ENOTEMPTY", errno=errno.ENOTEMPTY), 409, "conflict"),
        (SandboxFileError("write /x: ENOSPC", errno=errno.ENOSPC), 413, "payload_too_large"),
        (SandboxFileError("ls /x: ENOTDIR", errno=errno.ENOTDIR), 400, "invalid_request"),
        (SandboxFileError("write /proc/x: EACCES", errno=errno.EACCES), 403, "permission_denied"),
        (SandboxError("exec needs a command"), 400, "invalid_request"),
    ],
)
def test_sandbox_errors_map_to_statuses(error: SandboxError, status: int, code: str) -> None:
    answer = as_service_error(error)
    assert (answer.status, answer.code, answer.message) == (status, code, error.message)

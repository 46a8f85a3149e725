"""A sandbox's errors as the API states them: an unknown sandbox or exec is 404, a wrong
state 409, and a failed file operation by the errno it got inside the sandbox (a missing
path 404, one that exists 409, a full disk 413, a bad path 400); a network change on an
ended sandbox or one created without a network 409 (``check_network_change``)."""

from __future__ import annotations

import errno

from sandpool.errors import (
    Conflict,
    InvalidRequest,
    NotFound,
    PayloadTooLarge,
    PermissionDenied,
    SandboxError,
    SandboxFileError,
    SandboxNotFound,
    SandboxStateError,
    ServiceError,
)
from sandpool.sandbox.models import SandboxInfo, SandboxState

__all__ = ["check_network_change", "sandbox_error"]

_BY_ERRNO: dict[int, type[ServiceError]] = {
    errno.ENOENT: NotFound,
    errno.EEXIST: Conflict,
    errno.ENOTEMPTY: Conflict,
    errno.EBUSY: Conflict,
    errno.ENOSPC: PayloadTooLarge,
    errno.EDQUOT: PayloadTooLarge,
    errno.EFBIG: PayloadTooLarge,
    errno.EACCES: PermissionDenied,
    errno.EPERM: PermissionDenied,
    errno.EROFS: PermissionDenied,
}


def sandbox_error(error: SandboxError) -> ServiceError:
    """The API's error for ``error`` (message and hint kept)."""
    if isinstance(error, SandboxNotFound):
        return NotFound(error.message, hint=error.hint)
    if isinstance(error, SandboxStateError):
        return Conflict(error.message, hint=error.hint)
    if isinstance(error, SandboxFileError):
        kind = _BY_ERRNO.get(error.errno, InvalidRequest)
        if kind is InvalidRequest:
            return InvalidRequest(error.message, hint=error.hint, field="path")
        return kind(error.message, hint=error.hint)
    return InvalidRequest(error.message, hint=error.hint)


def check_network_change(info: SandboxInfo, network: str | None) -> None:
    """Conflict (409) for a sandbox that has ended or was created without a network (the
    network is chosen at create), InvalidRequest naming ``network`` for a change to
    ``none``; each with the fix. The end comes first: it is what is wrong with an ended
    sandbox, whatever its network was."""
    if info.state in (SandboxState.TERMINATING, SandboxState.TERMINATED):
        why = f" ({info.reason.value})" if info.reason else ""
        raise Conflict(f"sandbox {info.id} is {info.state.value}{why}; its network cannot be "
                       "changed", hint="create a new sandbox")  # fmt: skip
    if info.network == "none":
        raise Conflict(f"sandbox {info.id} was created without a network (network 'none'); "
                       "its network cannot be changed",
                       hint="the network is chosen at create: create a sandbox with "
                       '"network": "allow" (and "allow" entries) or "open"')  # fmt: skip
    if network == "none":
        raise InvalidRequest("network: a running sandbox cannot go to 'none'", field="network",
                             hint='use "network": "allow" with no "allow" entries: nothing '
                             "is reachable")  # fmt: skip

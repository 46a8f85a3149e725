"""Every exception sandpool raises, in one tree.

    SandpoolError                       root; the CLI catches it once and prints ``Type: message``
    ├── ConfigError                     the configuration cannot be used          (exit 2 / 125)
    │   ├── ConfigFileError             missing file, unreadable file, malformed YAML
    │   ├── ConfigValidationError       one or more bad keys or values (``.problems``)
    │   └── UnknownPool                 a pool name that the configuration lacks
    ├── ContainerRuntimeError           the OCI runtime layer failed
    │   ├── RuntimeNotAvailable         the binary is missing or does not run
    │   ├── PlatformNotSupported        gVisor platform the installed runsc lacks, or no /dev/kvm
    │   ├── RuntimeCommandFailed        a runtime CLI call exited non-zero (argv, status, stderr)
    │   ├── RuntimeTimeout              a runtime CLI call or a start did not finish in time
    │   └── OperationNotSupported       e.g. checkpoint on gVisor
    ├── ContainerError                  one container's lifecycle
    │   ├── ContainerStartFailed        the container never ran its command
    │   │   └── CgroupUnavailable       a cgroup controller sandpool needs cannot be delegated
    │   ├── ContainerNotFound           no such container id
    │   ├── InvalidNetworkPolicy        a network mode or allow entry that cannot be enforced
    │   ├── NetworkSetupFailed          a container's namespace, veth or nftables set-up failed
    │   └── SandboxError                a long-lived sandbox (``sandpool.sandbox``)
    │       ├── SandboxNotFound         no sandbox (or exec of it) with that id
    │       ├── SandboxStateError       not in this state (exec when paused or terminated)
    │       ├── CheckpointFailed        CRIU could not checkpoint or restore it (its log's errors)
    │       └── SandboxFileError        a file operation failed inside (``.errno``)
    ├── ImageError                      image references, pulls and unpacking
    │   ├── ImageNotFound               the reference names nothing
    │   └── InvalidImage                it names something that is not a usable image
    ├── KubernetesError                 the cluster half
    │   ├── ClusterUnreachable          no kubeconfig / API server did not answer
    │   └── RuntimeClassNotFound        a pool names a RuntimeClass the cluster lacks
    ├── ServeError                      ``sandpool serve`` cannot listen (socket in use, bad path)
    │   └── DeploymentError             ``sandpool up`` cannot start a part (redis-server missing)
    └── ServiceError                    an answer of the HTTP API that is not a success (exit 1)
        ├── InvalidRequest              400 bad input; ``field`` names it
        ├── Unauthenticated             401 no key, or an unknown, revoked or expired one
        ├── PermissionDenied            403 the key may not do this (an admin operation)
        ├── NotFound                    404 no such thing, or another tenant's
        ├── Conflict                    409 the thing's state forbids it (name taken, busy)
        ├── PayloadTooLarge             413 the request body is over the server's limit
        ├── HeadersTooLarge             431 the request headers are over the server's limit
        ├── QuotaExceeded               429 a tenant quota or rate; ``retry_after`` seconds
        ├── ServiceUnavailable          503 a pool's runtime is missing, the server is stopping
        │   └── DispatchError           the gateway could not get a request run by a worker
        │       ├── BacklogFull         the dispatch backlog holds its maximum already
        │       ├── PlacementTimeout    no worker of the pool took it before its deadline
        │       └── WorkerLost          the worker holding it stopped heartbeating
        ├── InternalServerError         500 a server bug (the server's log has the details)
        └── ServiceUnreachable          the client got no answer (connection refused, timeout)

The service answers every ServiceError as ``{"code", "message", "hint"}`` with its ``status``;
the SDK (``sandpool.client``) raises the class whose ``code`` the answer carries.

Foreign exceptions (pydantic, ruamel.yaml, subprocess, httpx) are translated into these at
the module that calls the foreign code, always ``raise ... from exc``.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = [
    "BacklogFull",
    "CgroupUnavailable",
    "CheckpointFailed",
    "ClusterUnreachable",
    "ConfigError",
    "ConfigFileError",
    "ConfigValidationError",
    "Conflict",
    "ContainerError",
    "ContainerNotFound",
    "ContainerRuntimeError",
    "ContainerStartFailed",
    "DeploymentError",
    "DispatchError",
    "HeadersTooLarge",
    "ImageError",
    "ImageNotFound",
    "InternalServerError",
    "InvalidImage",
    "InvalidNetworkPolicy",
    "InvalidRequest",
    "KubernetesError",
    "NetworkSetupFailed",
    "NotFound",
    "OperationNotSupported",
    "PayloadTooLarge",
    "PermissionDenied",
    "PlacementTimeout",
    "PlatformNotSupported",
    "QuotaExceeded",
    "RuntimeClassNotFound",
    "RuntimeCommandFailed",
    "RuntimeNotAvailable",
    "RuntimeTimeout",
    "SandboxError",
    "SandboxFileError",
    "SandboxNotFound",
    "SandboxStateError",
    "SandpoolError",
    "ServeError",
    "ServiceError",
    "ServiceUnavailable",
    "ServiceUnreachable",
    "Unauthenticated",
    "UnknownPool",
    "WorkerLost",
]

# Exit statuses of `sandpool run` (SPEC §4): 125 means "the container could not be started".
EXIT_CANNOT_START = 125
EXIT_CONFIG = 2


class SandpoolError(Exception):
    """Root of every error sandpool raises on purpose."""

    exit_code: int = EXIT_CANNOT_START

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message} ({self.hint})"
        return self.message


class ConfigError(SandpoolError):
    """The configuration cannot be used."""

    exit_code = EXIT_CONFIG


class ConfigFileError(ConfigError):
    """A configuration file is missing, unreadable or not valid YAML."""


class ConfigValidationError(ConfigError):
    """One or more keys or values are wrong; ``problems`` holds one line for each."""

    def __init__(self, problems: Sequence[str], *, total: int | None = None) -> None:
        self.problems = list(problems)
        count = len(self.problems) if total is None else total  # more than are listed
        head = "invalid configuration"
        if count > 1:
            head += f" ({count} problems)"
        super().__init__(head + ":\n  " + "\n  ".join(self.problems))


class UnknownPool(ConfigError):
    """A pool name that the configuration does not define."""


class ContainerRuntimeError(SandpoolError):
    """The OCI runtime layer failed."""


class RuntimeNotAvailable(ContainerRuntimeError):
    """The runtime binary is missing or does not run."""


class PlatformNotSupported(ContainerRuntimeError):
    """The gVisor platform asked for cannot be used with the installed runsc on this host."""


class RuntimeCommandFailed(ContainerRuntimeError):
    """A runtime CLI invocation exited non-zero."""

    def __init__(self, argv: Sequence[str], status: int, stderr: str) -> None:
        self.argv = list(argv)
        self.status = status
        self.stderr = stderr
        tail = stderr.strip().splitlines()[-3:] if stderr.strip() else ["(no stderr)"]
        super().__init__(f"{' '.join(self.argv[:3])}… exited {status}: {' / '.join(tail)}")


class RuntimeTimeout(ContainerRuntimeError):
    """A runtime CLI invocation or a container start did not finish in time."""


class OperationNotSupported(ContainerRuntimeError):
    """The runtime does not offer this operation (e.g. checkpoint under gVisor)."""


class ContainerError(SandpoolError):
    """One container's lifecycle went wrong."""


class ContainerStartFailed(ContainerError):
    """The container never got to run its command. ``runtime_said``: the runtime's own error
    line, when the message is built on it (the runtime has printed it on the run's stderr)."""

    def __init__(self, message: str, *, hint: str | None = None,
                 runtime_said: str | None = None) -> None:  # fmt: skip
        super().__init__(message, hint=hint)
        self.runtime_said = runtime_said


class CgroupUnavailable(ContainerStartFailed):
    """A cgroup controller sandpool needs cannot be made available to its containers (names
    the cgroup and the controller)."""


class ContainerNotFound(ContainerError):
    """No container with that id is known."""


class InvalidNetworkPolicy(ContainerError):
    """A network mode or allow entry that cannot be enforced (the message names the fix)."""


class NetworkSetupFailed(ContainerError):
    """A container's network namespace, veth, nftables table or DNS filter could not be set up."""


class SandboxError(ContainerError):
    """A long-lived sandbox or one of its execs went wrong."""


class SandboxNotFound(SandboxError):
    """No sandbox, or no exec of that sandbox, with that id."""


class SandboxStateError(SandboxError):
    """The operation needs another state (e.g. exec in a paused or terminated sandbox)."""


class CheckpointFailed(SandboxError):
    """CRIU (through ``runc checkpoint`` / ``restore``) failed; the message quotes its log."""


class SandboxFileError(SandboxError):
    """A file operation failed inside the sandbox; ``errno`` is the error it got there."""

    def __init__(self, message: str, *, errno: int = 0, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.errno = errno


class ImageError(SandpoolError):
    """An image reference could not be turned into a rootfs."""


class ImageNotFound(ImageError):
    """The image reference names nothing that exists."""


class InvalidImage(ImageError):
    """The reference names something that is not a usable image."""


class KubernetesError(SandpoolError):
    """The Kubernetes half failed."""


class ServeError(SandpoolError):
    """``sandpool serve`` cannot listen: another server holds its socket, or a bad path."""


class DeploymentError(ServeError):
    """``sandpool up`` cannot start a part of the deployment (redis-server missing, failing,
    or another ``sandpool up`` already running with the same state dir)."""


class ClusterUnreachable(KubernetesError):
    """No cluster configuration, or the API server did not answer."""


class RuntimeClassNotFound(KubernetesError):
    """A pool names a RuntimeClass that the cluster does not have."""


class ServiceError(SandpoolError):
    """An answer of the HTTP API that is not a success; ``status`` and ``code`` are the wire
    form (``code`` is what the SDK maps back to the class)."""

    exit_code = 1
    status = 500
    code = "error"

    def __init__(self, message: str, *, hint: str | None = None, field: str | None = None,
                 retry_after: float | None = None) -> None:  # fmt: skip
        super().__init__(message, hint=hint)
        self.field = field  # the request field at fault (InvalidRequest)
        self.retry_after = retry_after  # seconds to wait before trying again (QuotaExceeded)


class InvalidRequest(ServiceError):
    """The request is malformed or a field holds a bad value (``field`` names it)."""

    status, code = 400, "invalid_request"


class Unauthenticated(ServiceError):
    """No API key, or one that is unknown, revoked or expired."""

    status, code = 401, "unauthenticated"


class PermissionDenied(ServiceError):
    """The key is valid but may not do this (an admin operation with a tenant key)."""

    status, code = 403, "permission_denied"


class NotFound(ServiceError):
    """No such resource, or one of another tenant (whose existence is never revealed)."""

    status, code = 404, "not_found"


class Conflict(ServiceError):
    """The resource's state forbids the operation (a name taken, a tenant still busy)."""

    status, code = 409, "conflict"


class PayloadTooLarge(ServiceError):
    """The request body is larger than the server accepts."""

    status, code = 413, "payload_too_large"


class HeadersTooLarge(ServiceError):
    """The request headers are larger than the server accepts."""

    status, code = 431, "headers_too_large"


class QuotaExceeded(ServiceError):
    """A tenant quota or rate would be exceeded; ``retry_after`` says when to try again."""

    status, code = 429, "quota_exceeded"
    reason = ""  # which quota: concurrent, cpu, memory, rate (the metrics' label)


class ServiceUnavailable(ServiceError):
    """The service cannot do it now: a pool's runtime is missing, the server is stopping."""

    status, code = 503, "unavailable"


class DispatchError(ServiceUnavailable):
    """The gateway could not have a request run by a worker (Redis down, no worker)."""


class BacklogFull(DispatchError):
    """The dispatch backlog is at its bound: nothing more is queued until it drains."""


class PlacementTimeout(DispatchError):
    """No worker of the pool took the request before its backlog deadline."""


class WorkerLost(DispatchError):
    """The worker holding the sandbox (or the request) stopped heartbeating."""


class InternalServerError(ServiceError):
    """A server-side bug; the answer carries a request id to find it in the server's log."""

    status, code = 500, "internal"


class ServiceUnreachable(ServiceError):
    """The client got no answer from the server (refused, reset, timed out)."""

    status, code = 0, "unreachable"


SERVICE_ERRORS: dict[str, type[ServiceError]] = {
    cls.code: cls
    for cls in (
        InvalidRequest,
        Unauthenticated,
        PermissionDenied,
        NotFound,
        Conflict,
        PayloadTooLarge,
        HeadersTooLarge,
        QuotaExceeded,
        ServiceUnavailable,
        InternalServerError,
    )
}
